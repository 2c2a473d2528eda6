"""The query language's grammar: parsing and checking safe boolean expressions.

A query is a Python-like boolean expression over column names and literals::

    fraction_road > 0.3 and n_regions > 4
    0.1 < fraction_road < 0.5 or status in ("failed", "done")
    not (image_id == "img_001") and (width * height) // 2 >= 1e5

It is parsed with :func:`ast.parse` and checked against a strict whitelist of node
types: boolean operators (``and``, ``or``, ``not``), comparisons (``< <= > >= == !=``,
chained), ``in`` / ``not in`` with a literal list or tuple, arithmetic
(``+ - * / // % **``, unary ``-`` and ``+``), parentheses, column names and int,
float, str and bool literals. Everything else (calls, attributes, subscripts,
lambdas, comprehensions, f-strings, ``:=``, names starting with ``__``, ...) is refused
with a :class:`~batchseg.errors.QueryError`. Nothing is ever passed to ``eval``: the one
evaluator (:mod:`batchseg.query.arrow`) translates checked trees to Arrow compute expressions.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from batchseg.errors import QueryError, one_line
from batchseg.query.names import unknown_column

__all__ = ["BINOPS", "MAX_DEPTH", "MAX_LENGTH", "Expression", "literal_items", "parse"]

MAX_LENGTH = 2000
"""Longest accepted query, in characters."""

MAX_DEPTH = 100
"""Deepest accepted nesting of expression nodes."""

#: The arithmetic operators of the language.
BINOPS: tuple[type[ast.operator], ...] = (
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow
)  # fmt: skip
_REFUSED_BINOPS: dict[type[ast.operator], str] = {
    ast.BitAnd: "operator '&' is not allowed in queries; use 'and'",
    ast.BitOr: "operator '|' is not allowed in queries; use 'or'",
    ast.BitXor: "operator '^' is not allowed in queries",
    ast.LShift: "operator '<<' is not allowed in queries",
    ast.RShift: "operator '>>' is not allowed in queries",
    ast.MatMult: "operator '@' is not allowed in queries",
}
_CMPOPS: tuple[type[ast.cmpop], ...] = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)
_REFUSED_NODES: dict[type[ast.AST], str] = {
    ast.Call: "function calls are not allowed in queries",
    ast.Attribute: "attribute access ('.') is not allowed in queries",
    ast.Subscript: "indexing and slicing ('[...]') are not allowed in queries",
    ast.Lambda: "lambda expressions are not allowed in queries",
    ast.ListComp: "comprehensions are not allowed in queries",
    ast.SetComp: "comprehensions are not allowed in queries",
    ast.DictComp: "comprehensions are not allowed in queries",
    ast.GeneratorExp: "comprehensions are not allowed in queries",
    ast.Starred: "starred expressions ('*') are not allowed in queries",
    ast.JoinedStr: "f-strings are not allowed in queries",
    ast.FormattedValue: "f-strings are not allowed in queries",
    ast.NamedExpr: "assignment expressions (':=') are not allowed in queries",
    ast.IfExp: "conditional expressions ('x if c else y') are not allowed in queries",
    ast.Dict: "dict literals are not allowed in queries",
    ast.Set: "set literals are not allowed in queries; use a tuple, e.g. x in (1, 2)",
    ast.Await: "'await' is not allowed in queries",
    ast.Yield: "'yield' is not allowed in queries",
    ast.YieldFrom: "'yield' is not allowed in queries",
    ast.Slice: "indexing and slicing ('[...]') are not allowed in queries",
}

# Static kinds the checker assigns to nodes.
_BOOL, _NUM, _STR, _ANY = "boolean", "number", "string", "column"


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Expression:
    """A checked query: its source text, its ast and the column names it uses.

    Build one with :func:`parse`; evaluate it with :mod:`batchseg.query.arrow` against
    any table that has :attr:`columns`.
    """

    text: str
    tree: ast.Expression = field(repr=False, compare=False)
    columns: frozenset[str]

    def __str__(self) -> str:
        return self.text

    def check_columns(self, available: Sequence[str]) -> None:
        """Raise :class:`QueryError` if the query uses a column not in ``available``."""
        known = set(available)
        for name in sorted(self.columns):
            if name not in known:
                raise QueryError(unknown_column(name, available))


def parse(expr: str | Expression) -> Expression:
    """Parse and check ``expr`` (an Expression passes through); raise :class:`QueryError`."""
    if isinstance(expr, Expression):
        return expr
    if not isinstance(expr, str):
        raise QueryError(f"a query must be a string, not {type(expr).__name__}")
    text = expr.strip()
    if not text:
        raise QueryError("the query is empty")
    if len(text) > MAX_LENGTH:
        raise QueryError(f"the query is too long ({len(text)} characters; at most {MAX_LENGTH})")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        where = f" at column {exc.offset}" if exc.offset else ""
        raise QueryError(f"invalid query syntax{where}: {exc.msg}{syntax_hint(text)}") from None
    except (RecursionError, MemoryError):
        raise QueryError(f"the query is nested too deeply (at most {MAX_DEPTH} levels)") from None
    except ValueError as exc:  # e.g. null bytes
        raise QueryError(f"invalid query: {one_line(exc)}") from None
    checker = _Checker()
    kind = checker.check(tree.body, depth=1)
    if kind not in (_BOOL, _ANY):
        raise QueryError(
            f"query must be a boolean expression (a comparison such as x > 1), not a {kind}"
        )
    return Expression(text=text, tree=tree, columns=frozenset(checker.names))


#: Mistakes people make in queries (from SQL, C or shells) and the fix, checked in order.
_SYNTAX_HINTS: tuple[tuple[str, str], ...] = (
    (r"&&", "write 'and' instead of '&&'"),
    (r"\|\|", "write 'or' instead of '||'"),
    (r"<>", "write '!=' instead of '<>'"),
    (r"(?<![=<>!])=(?!=)", "compare with '==', not '='"),
    (r"\bAND\b", "write 'and' (lower case) instead of 'AND'"),
    (r"\bOR\b", "write 'or' (lower case) instead of 'OR'"),
    (r"\bNOT\b", "write 'not' (lower case) instead of 'NOT'"),
)


def syntax_hint(text: str) -> str:
    """``"; hint: ..."`` for a query with a common mistake outside quotes, else ``""``."""
    bare = re.sub(r"'[^']*'|\"[^\"]*\"", "''", text)  # the mistake is not inside a string
    for pattern, fix in _SYNTAX_HINTS:
        if re.search(pattern, bare):
            return f"; hint: {fix}"
    return ""


class _Checker:
    """Walks the ast once: refuses anything off the whitelist, infers static kinds."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def check(self, node: ast.AST, depth: int) -> str:
        if depth > MAX_DEPTH:
            raise QueryError(f"the query is nested too deeply (at most {MAX_DEPTH} levels)")
        refused = _REFUSED_NODES.get(type(node))
        if refused is not None:
            raise QueryError(refused)
        method = getattr(self, f"_check_{type(node).__name__}", None)
        if method is None:
            raise QueryError(f"{type(node).__name__} expressions are not allowed in queries")
        return method(node, depth)

    def _check_Constant(self, node: ast.Constant, depth: int) -> str:
        value = node.value
        if isinstance(value, bool):
            return _BOOL
        if isinstance(value, int | float):
            return _NUM
        if isinstance(value, str):
            return _STR
        if value is None:
            raise QueryError("None is not allowed in queries")
        raise QueryError(f"{type(value).__name__} literals are not allowed in queries")

    def _check_Name(self, node: ast.Name, depth: int) -> str:
        if node.id.startswith("__"):
            raise QueryError(f"names starting with '__' are not allowed in queries: {node.id!r}")
        self.names.add(node.id)
        return _ANY

    def _check_BoolOp(self, node: ast.BoolOp, depth: int) -> str:
        word = "and" if isinstance(node.op, ast.And) else "or"
        for value in node.values:
            if self.check(value, depth + 1) not in (_BOOL, _ANY):
                raise QueryError(
                    f"operands of '{word}' must be boolean expressions: {ast.unparse(value)!r}"
                )
        return _BOOL

    def _check_UnaryOp(self, node: ast.UnaryOp, depth: int) -> str:
        kind = self.check(node.operand, depth + 1)
        if isinstance(node.op, ast.Not):
            if kind not in (_BOOL, _ANY):
                raise QueryError(f"'not' needs a boolean expression: {ast.unparse(node.operand)!r}")
            return _BOOL
        if isinstance(node.op, ast.Invert):
            raise QueryError("operator '~' is not allowed in queries; use 'not'")
        if kind == _STR:
            raise QueryError("arithmetic on strings is not allowed in queries")
        return _NUM

    def _check_BinOp(self, node: ast.BinOp, depth: int) -> str:
        refused = _REFUSED_BINOPS.get(type(node.op))
        if refused is not None:
            raise QueryError(refused)
        if type(node.op) not in BINOPS:
            raise QueryError(f"operator {type(node.op).__name__} is not allowed in queries")
        for side in (node.left, node.right):
            if self.check(side, depth + 1) == _STR:
                raise QueryError("arithmetic on strings is not allowed in queries")
        return _NUM

    def _check_Compare(self, node: ast.Compare, depth: int) -> str:
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            left, right = operands[i], operands[i + 1]
            if isinstance(op, ast.In | ast.NotIn):
                word = "in" if isinstance(op, ast.In) else "not in"
                if isinstance(right, ast.Set):
                    raise QueryError(_REFUSED_NODES[ast.Set])
                if not isinstance(right, ast.Tuple | ast.List):
                    raise QueryError(
                        f"'{word}' needs a literal list or tuple on its right, "
                        f"e.g. status {word} ('done', 'failed')"
                    )
            elif isinstance(op, ast.Is | ast.IsNot):
                raise QueryError("'is' is not allowed in queries; use == or !=")
            elif type(op) not in _CMPOPS:
                raise QueryError(f"comparison {type(op).__name__} is not allowed in queries")
            elif isinstance(right, ast.Tuple | ast.List):
                raise QueryError("lists and tuples are only allowed after 'in' or 'not in'")
            if isinstance(left, ast.Tuple | ast.List):
                raise QueryError("lists and tuples are only allowed after 'in' or 'not in'")
        for operand in operands:
            if isinstance(operand, ast.Tuple | ast.List):
                literal_items(operand)
            else:
                self.check(operand, depth + 1)
        return _BOOL

    def _check_Tuple(self, node: ast.AST, depth: int) -> str:
        raise QueryError("lists and tuples are only allowed after 'in' or 'not in'")

    _check_List = _check_Tuple


def literal_items(node: ast.Tuple | ast.List) -> list[Any]:
    """The constants of a literal list/tuple (``-1`` allowed); anything else is refused."""
    items: list[Any] = []
    for elt in node.elts:
        sign = 1
        if (
            isinstance(elt, ast.UnaryOp)
            and isinstance(elt.op, ast.USub | ast.UAdd)
            and isinstance(elt.operand, ast.Constant)
        ):
            sign = -1 if isinstance(elt.op, ast.USub) else 1
            elt = elt.operand
            if isinstance(elt.value, bool) or not isinstance(elt.value, int | float):
                raise QueryError("a sign is only allowed before a number in a list")
        if isinstance(elt, ast.Starred):
            raise QueryError(_REFUSED_NODES[ast.Starred])
        if not isinstance(elt, ast.Constant):
            raise QueryError(
                f"lists after 'in' may only hold literals (numbers, strings): {ast.unparse(elt)!r}"
            )
        value = elt.value
        if value is None or not isinstance(value, bool | int | float | str):
            raise QueryError(f"{type(value).__name__} literals are not allowed in queries")
        items.append(sign * value if sign < 0 else value)
    return items
