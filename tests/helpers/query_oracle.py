"""A row-by-row Python evaluation of the query language (the oracle of tests/query), and
hypothesis strategies for random tables and random expressions over them.

The oracle is written from the documented semantics, not from the evaluator: missing values
(null, NaN) never satisfy a comparison (``!=`` and ``not in`` included), every comparison is
two-valued (``not (x > 1)`` holds where ``x`` is missing), booleans count as 0 and 1, strings
compare only with strings (``==`` with a number is False, ``!=`` True where present), an
integer divided by zero with ``//`` is the IEEE quotient and with ``%`` missing, constant parts
compute in Python. A query it cannot type raises :class:`Refused`.
"""

from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

__all__ = ["COLUMNS", "Refused", "expressions", "oracle_rows", "tables"]


class Refused(Exception):
    """The query is not well typed: the evaluator must refuse it too."""


@dataclass(frozen=True)
class V:
    """A value: its kind (num, str or bool), the value (None: missing), constant or not."""

    kind: str
    value: Any
    const: bool


#: The random tables' columns: name -> (Arrow type, values drawn from, nulls allowed).
COLUMNS: dict[str, tuple[pa.DataType, list[Any], bool]] = {
    "i": (pa.int64(), list(range(-5, 6)), False),
    "n": (pa.int64(), [-3, -1, 0, 1, 2, 7], True),
    "f": (pa.float64(), [-2.5, -1.0, -0.5, 0.0, 0.3, 1.0, 1.5, 2.0, 7.0, math.nan], True),
    "g": (pa.float64(), [-2.5, 0.0, 0.3, 1.0, 2.0, math.inf, -math.inf], False),
    "s": (pa.string(), ["a", "b", "ab", "", "Z", "é"], True),
    "b": (pa.bool_(), [True, False], False),
}
_KINDS = {"i": "num", "n": "num", "f": "num", "g": "num", "s": "str", "b": "bool"}
_ORDER = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}
_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def _ieee_div(a: float, b: float) -> float:
    if b != 0:
        return a / b
    if a == 0 or a != a:
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _number(v: V) -> Any:
    return int(v.value) if isinstance(v.value, bool) else v.value


class _Oracle:
    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row

    def eval(self, node: ast.AST) -> V:
        return getattr(self, type(node).__name__)(node)

    def Constant(self, node: ast.Constant) -> V:  # noqa: N802
        value = node.value
        kind = "bool" if isinstance(value, bool) else "str" if isinstance(value, str) else "num"
        return V(kind, value, True)

    def Name(self, node: ast.Name) -> V:  # noqa: N802
        value = self.row[node.id]
        missing = value is None or (isinstance(value, float) and value != value)
        return V(_KINDS[node.id], None if missing else value, False)

    def UnaryOp(self, node: ast.UnaryOp) -> V:  # noqa: N802
        v = self.eval(node.operand)
        if isinstance(node.op, ast.Not):
            return V("bool", not _truth(v), v.const)
        if v.kind == "str":
            raise Refused("arithmetic on strings")
        if v.value is None:
            return V("num", None, v.const)
        sign = -1 if isinstance(node.op, ast.USub) else 1
        return V("num", -_number(v) if sign < 0 else _number(v), v.const)

    def BinOp(self, node: ast.BinOp) -> V:  # noqa: N802
        a, b = self.eval(node.left), self.eval(node.right)
        if "str" in (a.kind, b.kind):
            raise Refused("arithmetic on strings")
        const = a.const and b.const
        if a.value is None or b.value is None:
            return V("num", None, const)
        x, y, op = _number(a), _number(b), type(node.op)
        if const:  # Python semantics (1 / 0 is refused)
            try:
                py = {ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv}
                return V("num", {**_ARITH, **py, ast.Mod: operator.mod}[op](x, y), True)
            except ZeroDivisionError:
                raise Refused("division by zero") from None
        if op in _ARITH:
            out = _ARITH[op](x, y)
        elif op is ast.Div:
            out = _ieee_div(float(x), float(y))
        elif op is ast.FloorDiv:
            out = _ieee_div(float(x), float(y)) if y == 0 else x // y
        elif op is ast.Mod:
            out = math.nan if y == 0 else x % y
        else:  # pragma: no cover - the strategies write no other operator
            raise AssertionError(op)
        missing = isinstance(out, float) and out != out
        return V("num", None if missing else out, False)

    def Compare(self, node: ast.Compare) -> V:  # noqa: N802
        operands = [node.left, *node.comparators]
        values: list[Any] = [
            [n.value if isinstance(n, ast.Constant) else -n.operand.value for n in o.elts]
            if isinstance(o, ast.Tuple | ast.List)
            else self.eval(o)
            for o in operands
        ]
        parts = [self.pair(op, values[k], values[k + 1]) for k, op in enumerate(node.ops)]
        const = all(v.const for v in values if isinstance(v, V))
        return V("bool", all(parts), const)

    def pair(self, op: ast.cmpop, left: V, right: Any) -> bool:
        if isinstance(op, ast.In | ast.NotIn):
            if left.value is None:
                return False
            found = any(left.value == item for item in right)
            return found if isinstance(op, ast.In) else not found
        mixed = (left.kind == "str") != (right.kind == "str")
        if mixed and not isinstance(op, ast.Eq | ast.NotEq):
            raise Refused("strings compare only with strings")
        if left.value is None or right.value is None:
            return False
        if mixed:
            return isinstance(op, ast.NotEq)
        if isinstance(op, ast.Eq | ast.NotEq):
            return (left.value == right.value) == isinstance(op, ast.Eq)
        return bool(_ORDER[type(op)](left.value, right.value))

    def BoolOp(self, node: ast.BoolOp) -> V:  # noqa: N802
        values = [self.eval(n) for n in node.values]
        truths = [_truth(v) for v in values]
        const = all(v.const for v in values)
        return V("bool", all(truths) if isinstance(node.op, ast.And) else any(truths), const)


def _truth(v: V) -> bool:
    if v.kind != "bool":
        raise Refused("not a boolean")
    return bool(v.value)


def oracle_rows(table: pa.Table, text: str) -> list[int]:
    """The rows (positions) of ``table`` where the query ``text`` holds, row by row."""
    tree = ast.parse(text, mode="eval").body
    rows = table.to_pylist()
    if not rows:  # pragma: no cover - the strategies draw at least one row
        raise AssertionError("the oracle needs a row to type the query")
    return [k for k, row in enumerate(rows) if _truth(_Oracle(row).eval(tree))]


# ------------------------------------------------------------------------------- strategies


@st.composite
def tables(draw: st.DrawFn, max_rows: int = 12) -> pa.Table:
    """A table of :data:`COLUMNS` with 1 to ``max_rows`` rows."""
    n = draw(st.integers(1, max_rows))
    arrays = {}
    for name, (type_, values, nulls) in COLUMNS.items():
        pool = st.sampled_from(values)
        cell = st.one_of(st.none(), pool) if nulls else pool
        arrays[name] = pa.array(draw(st.lists(cell, min_size=n, max_size=n)), type_)
    return pa.table(arrays)


_NUMBERS = ["0", "1", "2", "-1", "3", "0.5", "1.5", "-2.5", "True", "1e3", "7", "0.0"]
_STRINGS = ["'a'", "'b'", "'ab'", "''", "'é'", "'zz'"]
_ITEMS = ["1", "0", "-1", "2.0", "0.5", "True", "'a'", "'ab'", "''", "7", "-2.5", "1e3"]


@st.composite
def _num(draw: st.DrawFn, depth: int) -> str:
    r = draw(st.integers(0, 9))
    if depth <= 0 or r < 4:
        leaf = st.sampled_from(["i", "n", "f", "g"]) if r % 2 else st.sampled_from(_NUMBERS)
        return draw(leaf)
    if r == 4:
        return f"-{draw(_num(depth - 1))}"
    if r == 5:
        return "b"
    op = draw(st.sampled_from(["+", "-", "*", "/", "//", "%"]))
    return f"({draw(_num(depth - 1))} {op} {draw(_num(depth - 1))})"


@st.composite
def _compare(draw: st.DrawFn, depth: int) -> str:
    r = draw(st.integers(0, 9))
    cmp = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
    string = st.sampled_from(["s", "s", *_STRINGS])
    if r < 4:
        text = f"{draw(_num(depth))} {cmp} {draw(_num(depth))}"
        if r == 0:  # chained
            text += f" {draw(st.sampled_from(['<', '<=', '==']))} {draw(_num(depth))}"
        return text
    if r < 6:
        return f"{draw(string)} {cmp} {draw(string)}"
    if r < 7:  # a string and a number: == and != answer, the rest is refused
        return f"{draw(string)} {draw(st.sampled_from(['==', '!=', '<']))} {draw(_num(0))}"
    word = draw(st.sampled_from(["in", "not in"]))
    left = draw(string) if r == 7 else draw(_num(depth))
    items = draw(st.lists(st.sampled_from(_ITEMS), max_size=3))
    return f"{left} {word} ({', '.join(items)}{',' if len(items) == 1 else ''})"


@st.composite
def expressions(draw: st.DrawFn, depth: int = 3) -> str:
    """A random query over :data:`COLUMNS` (mostly well typed, some not)."""
    r = draw(st.integers(0, 19))
    if depth <= 0 or r < 9:
        return draw(_compare(max(depth - 1, 0)))
    if r < 12:
        return f"not ({draw(expressions(depth - 1))})"
    if r < 13:
        return draw(st.sampled_from(["b", "True", "False", "not b", "f", "s"]))
    if r < 14:  # a comparison used as a number
        return f"({draw(_compare(0))}) + 1 > {draw(st.sampled_from(['1', '0']))}"
    word = draw(st.sampled_from(["and", "or"]))
    return f"({draw(expressions(depth - 1))}) {word} ({draw(expressions(depth - 1))})"
