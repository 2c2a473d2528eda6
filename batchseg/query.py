"""The query language: safe, vectorised boolean expressions over table columns.

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
with a :class:`~batchseg.errors.QueryError`. Nothing is ever passed to ``eval``: a small
recursive evaluator applies each node to pandas Series, elementwise.

Missing values (NaN / NA) never satisfy a comparison: ``x != 1`` and
``x not in (1, 2)`` are False where ``x`` is missing, like every other comparison.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from batchseg.errors import QueryError, one_line
from batchseg.query_names import parse_columns, unknown_column

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Expression",
    "apply_binop",
    "filter_table",
    "parse",
    "parse_columns",
    "scalar_equal",
]

MAX_LENGTH = 2000
"""Longest accepted query, in characters."""

MAX_DEPTH = 100
"""Deepest accepted nesting of expression nodes."""

_BINOPS: dict[type[ast.operator], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
    ast.FloorDiv: ("//", operator.floordiv),
    ast.Mod: ("%", operator.mod),
    ast.Pow: ("**", operator.pow),
}
_REFUSED_BINOPS: dict[type[ast.operator], str] = {
    ast.BitAnd: "operator '&' is not allowed in queries; use 'and'",
    ast.BitOr: "operator '|' is not allowed in queries; use 'or'",
    ast.BitXor: "operator '^' is not allowed in queries",
    ast.LShift: "operator '<<' is not allowed in queries",
    ast.RShift: "operator '>>' is not allowed in queries",
    ast.MatMult: "operator '@' is not allowed in queries",
}
_CMPOPS: dict[type[ast.cmpop], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
}
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

    Build one with :func:`parse`; evaluate it against any table that has
    :attr:`columns` with :meth:`evaluate`.
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

    def evaluate(self, table: pd.DataFrame) -> pd.Series:
        """Boolean mask, aligned with ``table.index``, of the rows where the query holds."""
        self.check_columns([str(c) for c in table.columns])
        with np.errstate(all="ignore"):
            value = _Evaluator(table).eval(self.tree.body)
        mask = _as_mask(value, self.tree.body, table)
        if isinstance(mask, pd.Series):
            return pd.Series(mask.to_numpy(dtype=bool), index=table.index, dtype=bool)
        return pd.Series(bool(mask), index=table.index, dtype=bool)


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
        if type(node.op) not in _BINOPS:
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
                _literal_items(operand)
            else:
                self.check(operand, depth + 1)
        return _BOOL

    def _check_Tuple(self, node: ast.AST, depth: int) -> str:
        raise QueryError("lists and tuples are only allowed after 'in' or 'not in'")

    _check_List = _check_Tuple


def _literal_items(node: ast.Tuple | ast.List) -> list[Any]:
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


# ------------------------------------------------------------------------ evaluation


class _Evaluator:
    """Applies checked nodes to the table's columns; values are Series or Python scalars."""

    def __init__(self, table: pd.DataFrame) -> None:
        self.table = table

    def eval(self, node: ast.AST) -> Any:
        try:
            method = getattr(self, f"_eval_{type(node).__name__}")
        except AttributeError:  # pragma: no cover - the checker refuses these first
            raise QueryError(f"{type(node).__name__} expressions are not allowed") from None
        return method(node)

    def _eval_Constant(self, node: ast.Constant) -> Any:
        return node.value

    def _eval_Name(self, node: ast.Name) -> Any:
        column = self.table[node.id]
        if isinstance(column, pd.DataFrame):
            raise QueryError(f"column {node.id!r} is ambiguous: the table has it more than once")
        return column

    def _eval_BoolOp(self, node: ast.BoolOp) -> Any:
        combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
        result: Any = None
        for value_node in node.values:
            value = _as_mask(self.eval(value_node), value_node, self.table)
            result = value if result is None else combine(result, value)
        return result

    def _eval_UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.eval(node.operand)
        if isinstance(node.op, ast.Not):
            value = _as_mask(value, node.operand, self.table)
            return ~value if isinstance(value, pd.Series) else not value
        value = _numeric(value, node.operand)
        return -value if isinstance(node.op, ast.USub) else value

    def _eval_BinOp(self, node: ast.BinOp) -> Any:
        left = _numeric(self.eval(node.left), node.left)
        right = _numeric(self.eval(node.right), node.right)
        return apply_binop(node, left, right)

    def _eval_Compare(self, node: ast.Compare) -> Any:
        operand_nodes = [node.left, *node.comparators]
        values = [
            _literal_items(n) if isinstance(n, ast.Tuple | ast.List) else self.eval(n)
            for n in operand_nodes
        ]
        result: Any = None
        for i, op in enumerate(node.ops):
            part = self._compare(op, values[i], values[i + 1], node)
            result = part if result is None else result & part
        return result

    def _compare(self, op: ast.cmpop, left: Any, right: Any, node: ast.Compare) -> Any:
        try:
            if isinstance(op, ast.In | ast.NotIn):
                if isinstance(left, pd.Series):
                    hit = _clean_bool(left.isin(right))
                    if isinstance(op, ast.In):
                        return hit
                    return ~hit & left.notna()
                found = any(scalar_equal(left, item) for item in right)
                return found if isinstance(op, ast.In) else not found and not _is_missing(left)
            symbol, func = _CMPOPS[type(op)]
            result = func(left, right)
        except QueryError:
            raise
        except Exception as exc:  # pandas/numpy raise assorted types for bad comparisons
            raise QueryError(f"cannot evaluate {ast.unparse(node)!r}: {one_line(exc)}") from None
        if isinstance(result, pd.Series):
            result = _clean_bool(result)
            if symbol == "!=":
                for side in (left, right):
                    if isinstance(side, pd.Series):
                        result = result & side.notna()
            return result
        if _is_missing(left) or _is_missing(right):
            return False
        return bool(result)


def _as_mask(value: Any, node: ast.AST, table: pd.DataFrame) -> Any:
    """``value`` as a boolean Series (NA -> False) or Python bool; anything else is refused."""
    if isinstance(value, pd.Series):
        if pd.api.types.is_bool_dtype(value.dtype):
            return _clean_bool(value)
        what = f"column {node.id!r}" if isinstance(node, ast.Name) else repr(ast.unparse(node))
        raise QueryError(
            f"query must be a boolean expression; {what} has dtype {value.dtype}, "
            "compare it with something (e.g. x > 0)"
        )
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise QueryError(f"query must be a boolean expression, not {ast.unparse(node)!r}")


def _clean_bool(series: pd.Series) -> pd.Series:
    """Plain numpy-bool Series; NA (nullable results) becomes False."""
    if series.dtype == np.bool_:
        return series
    return pd.Series(
        series.to_numpy(dtype=bool, na_value=False), index=series.index, name=series.name
    )


def _numeric(value: Any, node: ast.AST) -> Any:
    """Check ``value`` can take part in arithmetic; bool Series become int8."""
    if isinstance(value, pd.Series):
        if pd.api.types.is_bool_dtype(value.dtype):
            return _clean_bool(value).astype(np.int8)
        if pd.api.types.is_numeric_dtype(value.dtype):
            return value
        what = f"column {node.id!r}" if isinstance(node, ast.Name) else repr(ast.unparse(node))
        raise QueryError(f"arithmetic needs numbers; {what} has dtype {value.dtype}")
    if isinstance(value, bool | int | float | np.number | np.bool_):
        return value
    raise QueryError(f"arithmetic needs numbers, not {ast.unparse(node)!r}")


def _is_missing(value: Any) -> bool:
    return not isinstance(value, pd.Series) and isinstance(value, float) and value != value


def scalar_equal(left: Any, right: Any) -> bool:
    """``left == right`` of two constants; False where they cannot be compared."""
    try:
        return bool(left == right)
    except Exception:  # pragma: no cover - plain Python scalars compare fine
        return False


def apply_binop(node: ast.BinOp, left: Any, right: Any) -> Any:
    """``left <op of node> right`` on Series or constants, with the language's errors:
    division by zero, overflow and type errors as one-line QueryErrors; constant integer
    powers that would build giant integers are taken in floats."""
    if (
        isinstance(node.op, ast.Pow)
        and isinstance(left, int)
        and isinstance(right, int)
        and right > 0
        and left.bit_length() * right > 4096
    ):
        left = float(left)
    try:
        return _BINOPS[type(node.op)][1](left, right)
    except ZeroDivisionError:
        raise QueryError(f"division by zero in {ast.unparse(node)!r}") from None
    except OverflowError:
        raise QueryError(f"numeric overflow in {ast.unparse(node)!r}") from None
    except (TypeError, ValueError) as exc:
        raise QueryError(f"cannot evaluate {ast.unparse(node)!r}: {one_line(exc)}") from None


# ----------------------------------------------------------------------------- API


def filter_table(table: pd.DataFrame, expr: str | Expression) -> pd.DataFrame:
    """The rows of ``table`` where ``expr`` holds (same columns, original index kept)."""
    mask = parse(expr).evaluate(table)
    return table.loc[mask.to_numpy()]


# ------------------------------------------------------------------------- helpers
