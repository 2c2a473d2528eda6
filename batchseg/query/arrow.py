"""The one query evaluator: a checked query as a pyarrow compute expression.

:func:`to_arrow` translates a checked query (:func:`batchseg.query.parse`) into a
:class:`pyarrow.compute.Expression` over the columns of a schema: pushed down to the Parquet
scan of the object tables (``pyarrow.dataset`` scanners), applied to an Arrow table built from
the statistics table otherwise (:mod:`batchseg.query.frames`). The semantics:

* missing values (null, NaN) never satisfy a comparison: ``x != 1`` and ``x not in (1, 2)`` are
  False where ``x`` is missing, and every comparison is two-valued (``not (x > 1)`` is True
  where ``x`` is missing);
* ``/`` is true division, ``//`` and ``%`` follow Python/numpy (floored; floats through
  ``fmod``); an integer divided by zero gives ``inf``/``nan`` with ``//`` and ``nan`` with
  ``%`` (as pandas always did); booleans in arithmetic count as 0 and 1;
* strings compare with strings; ``==`` between a string and a number is False, ``!=`` True
  where the column is present, ``<`` and friends are refused;
* ``in`` / ``not in`` match items of the column's kind (numbers, also ``True`` as 1, or strings).

Integers to negative integer powers and small-integer overflow compute in float64. Constant
parts are evaluated in Python (:mod:`batchseg.query.constants`). Errors are
:class:`~batchseg.errors.QueryError` one-liners.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from batchseg.errors import QueryError, one_line
from batchseg.query.constants import apply_binop, compare, is_missing, scalar_equal
from batchseg.query.grammar import Expression, parse
from batchseg.query.names import unknown_column

__all__ = ["filter_arrow", "to_arrow"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: Each comparison's Arrow function.
_CMPOPS: dict[type[ast.cmpop], str] = {
    ast.Lt: "less", ast.LtE: "less_equal", ast.Gt: "greater",
    ast.GtE: "greater_equal", ast.Eq: "equal", ast.NotEq: "not_equal",
}  # fmt: skip
_INT, _FLOAT, _BOOL, _STR, _OTHER = "int", "float", "bool", "str", "other"
_NUMERIC = (_INT, _FLOAT, _BOOL)


@dataclass(frozen=True)
class _Term:
    """A translated node: an Arrow expression (``expr``) or a Python constant (``value``)."""

    expr: pc.Expression | None
    value: Any
    kind: str  # int, float, bool, str or other
    what: str  # for messages: "column 'x' has type string" or the source text
    mask: bool = False  # a derived boolean (comparison, and/or/not) that may hold nulls

    @property
    def constant(self) -> bool:
        return self.expr is None


def _const(value: Any) -> _Term:
    kind = {bool: _BOOL, int: _INT, float: _FLOAT, str: _STR}.get(type(value), _OTHER)
    return _Term(None, value, kind, repr(value))


def _kind_of(type_: pa.DataType) -> str:
    if pa.types.is_boolean(type_):
        return _BOOL
    if pa.types.is_integer(type_):
        return _INT
    if pa.types.is_floating(type_):
        return _FLOAT
    strings = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
    return _STR if any(test(type_) for test in strings) else _OTHER


def _call(name: str, *args: Any) -> pc.Expression:
    """The compute function ``name`` applied to expressions (an expression itself)."""
    result: pc.Expression = getattr(pc, name)(*args)
    return result


def _f64(expr: pc.Expression) -> pc.Expression:
    return expr.cast(pa.float64(), safe=False)


def _not_missing(expr: pc.Expression) -> pc.Expression:
    return ~expr.is_null(nan_is_null=True)


class _Translator:
    """Turns checked nodes into terms over the columns of ``schema``."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema

    def term(self, node: ast.AST) -> _Term:
        method = getattr(self, f"_t_{type(node).__name__}", None)
        if method is None:  # pragma: no cover - the checker refuses these first
            raise QueryError(f"{type(node).__name__} expressions are not allowed in queries")
        return method(node)

    # ------------------------------------------------------------------- leaves

    def _t_Constant(self, node: ast.Constant) -> _Term:
        return _const(node.value)

    def _t_Name(self, node: ast.Name) -> _Term:
        indices = self.schema.get_all_field_indices(node.id)
        if not indices:
            raise QueryError(unknown_column(node.id, self.schema.names))
        if len(indices) > 1:
            raise QueryError(f"column {node.id!r} is ambiguous: the table has it more than once")
        type_ = self.schema.field(indices[0]).type
        expr = pc.field(node.id)
        if pa.types.is_dictionary(type_):
            type_ = type_.value_type
            expr = expr.cast(type_)
        return _Term(expr, None, _kind_of(type_), f"column {node.id!r} has type {type_}")

    # ------------------------------------------------------------------ boolean

    def mask(self, term: _Term, node: ast.AST) -> _Term:
        """``term`` as a boolean (expression or Python bool); anything else is refused."""
        if term.constant:
            if isinstance(term.value, bool):
                return term
            raise QueryError(f"query must be a boolean expression, not {ast.unparse(node)!r}")
        if term.kind != _BOOL:
            raise QueryError(
                f"query must be a boolean expression; {term.what}, "
                "compare it with something (e.g. x > 0)"
            )
        return term if term.mask else _Term(term.expr, None, _BOOL, term.what, mask=True)

    def _t_BoolOp(self, node: ast.BoolOp) -> _Term:
        is_and = isinstance(node.op, ast.And)
        parts = [self.mask(self.term(n), n) for n in node.values]  # every part: its errors too
        if any(p.constant and bool(p.value) != is_and for p in parts):
            return _const(not is_and)  # False in an 'and', True in an 'or'
        exprs = [p.expr for p in parts if p.expr is not None]
        if not exprs:
            return _const(is_and)
        return _Term(_combine(exprs, is_and), None, _BOOL, ast.unparse(node), mask=True)

    def _t_UnaryOp(self, node: ast.UnaryOp) -> _Term:
        operand = self.term(node.operand)
        if isinstance(node.op, ast.Not):
            part = self.mask(operand, node.operand)
            if part.constant:
                return _const(not part.value)
            return _Term(~self.value(part), None, _BOOL, ast.unparse(node), mask=True)
        self.numeric(operand, node.operand)
        if operand.constant:
            return _const(-operand.value if isinstance(node.op, ast.USub) else +operand.value)
        kind = _INT if operand.kind == _BOOL else operand.kind
        expr = self.value(operand, as_number=True)
        expr = _call("negate", expr) if isinstance(node.op, ast.USub) else expr
        return _Term(expr, None, kind, ast.unparse(node))

    def value(self, term: _Term, as_number: bool = False) -> pc.Expression:
        """The expression of ``term``; derived booleans without nulls, booleans as int64."""
        assert term.expr is not None
        expr = term.expr
        if term.mask:  # a boolean used as a value: missing is False
            expr = pc.coalesce(expr, pc.scalar(False))
        if as_number and term.kind == _BOOL:
            expr = expr.cast(pa.int64())
        return expr

    # --------------------------------------------------------------- arithmetic

    def numeric(self, term: _Term, node: ast.AST) -> None:
        if term.kind in _NUMERIC:
            return
        if term.constant:
            raise QueryError(f"arithmetic needs numbers, not {ast.unparse(node)!r}")
        raise QueryError(f"arithmetic needs numbers; {term.what}")

    def _t_BinOp(self, node: ast.BinOp) -> _Term:
        left, right = self.term(node.left), self.term(node.right)
        self.numeric(left, node.left)
        self.numeric(right, node.right)
        op = type(node.op)
        if left.constant and right.constant:
            return _const(apply_binop(node, left.value, right.value))
        kind = _FLOAT if _FLOAT in (left.kind, right.kind) or op is ast.Div else _INT
        a, b = self.operand(left, right, node), self.operand(right, left, node)
        if op is ast.Div:
            expr = _call("divide", _f64(a), _f64(b))
        elif op is ast.FloorDiv:
            expr, kind = _floordiv(a, b, kind, right.value if right.constant else None)
        elif op is ast.Mod:
            expr, kind = _modulo(a, b, kind, right.value if right.constant else None)
        elif op is ast.Pow:
            expr, kind = _power(a, b, kind, right.value if right.constant else None)
        else:
            name = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply"}[op]
            expr = _call(name, a, b)
        return _Term(expr, None, kind, ast.unparse(node))

    def operand(self, term: _Term, other: _Term, node: ast.AST) -> pc.Expression:
        """``term`` as a numeric expression (constants as Arrow scalars of a fitting type)."""
        if not term.constant:
            return self.value(term, as_number=True)
        value = int(term.value) if isinstance(term.value, bool) else term.value
        if isinstance(value, float):
            return pc.scalar(pa.scalar(value, pa.float64()))
        if _INT64_MIN <= value <= _INT64_MAX:
            return pc.scalar(pa.scalar(value, pa.int64()))
        if other.kind == _FLOAT:
            return pc.scalar(pa.scalar(float(value), pa.float64()))
        raise QueryError(f"numeric overflow in {ast.unparse(node)!r}")

    # --------------------------------------------------------------- comparisons

    def _t_Compare(self, node: ast.Compare) -> _Term:
        operand_nodes = [node.left, *node.comparators]
        terms: list[Any] = [
            _literal_list(n) if isinstance(n, ast.Tuple | ast.List) else self.term(n)
            for n in operand_nodes
        ]
        parts = [self.compare(op, terms[i], terms[i + 1], node) for i, op in enumerate(node.ops)]
        if any(p.constant and not p.value for p in parts):
            return _const(False)
        exprs = [p.expr for p in parts if p.expr is not None]
        if not exprs:
            return _const(True)
        return _Term(_combine(exprs, True), None, _BOOL, ast.unparse(node), mask=True)

    def compare(self, op: ast.cmpop, left: _Term, right: Any, node: ast.Compare) -> _Term:
        if isinstance(op, ast.In | ast.NotIn):
            return self.membership(isinstance(op, ast.In), left, right)
        if left.constant and right.constant:
            return _const(compare(op, left.value, right.value, node))
        # != is False where a side is missing
        guard = [self.value(t) for t in (left, right) if not t.constant]
        guard = guard if isinstance(op, ast.NotEq) else []
        kinds = {left.kind, right.kind}
        if _STR in kinds and kinds & set(_NUMERIC):  # a string and a number
            if isinstance(op, ast.Eq):
                return _const(False)
            if not isinstance(op, ast.NotEq):
                raise QueryError(
                    f"cannot evaluate {ast.unparse(node)!r}: strings compare only with strings"
                )
            present = _combine([_not_missing(g) for g in guard], True)
            return _Term(present, None, _BOOL, "", mask=True)
        a, b = self.comparable(left, right, node), self.comparable(right, left, node)
        result = _call(_CMPOPS[type(op)], a, b)
        for g in guard:
            result = result & _not_missing(g)
        return _Term(result, None, _BOOL, ast.unparse(node), mask=True)

    def comparable(self, term: _Term, other: _Term, node: ast.AST) -> pc.Expression:
        """``term`` ready to compare with ``other`` (booleans as int64, as numbers)."""
        if not term.constant:
            return self.value(term, as_number=True)
        value = term.value
        if isinstance(value, str):
            return pc.scalar(value)
        if isinstance(value, int | float) and other.kind in _NUMERIC:
            value = int(value) if isinstance(value, bool) else value
            if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
                value = float(value)  # beyond int64: compares as float
            return pc.scalar(pa.scalar(value, pa.int64() if isinstance(value, int) else None))
        try:
            return pc.scalar(value)
        except (pa.ArrowException, TypeError, ValueError) as exc:  # pragma: no cover
            raise QueryError(f"cannot evaluate {ast.unparse(node)!r}: {one_line(exc)}") from None

    def membership(self, inside: bool, left: _Term, items: list[Any]) -> _Term:
        """``left in items`` (or ``not in``): items of another kind never match."""
        if left.constant:
            found = any(scalar_equal(left.value, item) for item in items)
            return _const(found if inside else not found and not is_missing(left.value))
        expr = self.value(left, as_number=left.kind == _BOOL)
        hit = _is_in(expr, left.kind, items)
        if inside:
            return _Term(hit, None, _BOOL, "", mask=True)
        base = self.value(left)
        return _Term(~hit & _not_missing(base), None, _BOOL, "", mask=True)


# --------------------------------------------------------------------- pieces


def _combine(exprs: Sequence[pc.Expression], is_and: bool) -> pc.Expression:
    """``exprs`` joined with Kleene ``and`` / ``or`` (a null part reads as False in a filter)."""
    result = exprs[0]
    for expr in exprs[1:]:
        result = (result & expr) if is_and else (result | expr)
    return result


def _literal_list(node: ast.Tuple | ast.List) -> list[Any]:
    """The constants of a literal list (``-1`` allowed), as the checker accepted them."""
    items: list[Any] = []
    for elt in node.elts:
        if isinstance(elt, ast.UnaryOp) and isinstance(elt.operand, ast.Constant):
            value: Any = elt.operand.value
            items.append(-value if isinstance(elt.op, ast.USub) else value)
        elif isinstance(elt, ast.Constant):
            items.append(elt.value)
    return items


def _is_in(expr: pc.Expression, kind: str, items: Sequence[Any]) -> pc.Expression:
    """Where ``expr`` equals one of ``items`` (never where it is missing)."""
    if kind == _STR:
        strings = [i for i in items if isinstance(i, str)]
        if not strings:
            return pc.scalar(False)
        return pc.is_in(expr, value_set=pa.array(strings, pa.string()))
    if kind in _NUMERIC:
        numbers = [int(i) if isinstance(i, bool) else i for i in items if not isinstance(i, str)]
        whole = all(isinstance(i, int) or float(i).is_integer() for i in numbers)
        if kind != _FLOAT and whole:
            ints = sorted({int(i) for i in numbers if _INT64_MIN <= i <= _INT64_MAX})
            values = pa.array(ints, pa.int64())
        else:  # + 0.0: -0.0 hashes apart from 0.0 but equals it
            expr = _call("add", _f64(expr), pc.scalar(0.0))
            values = pa.array([float(i) for i in numbers], pa.float64())
        if len(values) == 0:
            return pc.scalar(False)
        return pc.is_in(expr, value_set=values)
    try:
        values = pa.array(list(items))
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise QueryError(f"cannot match this column against {list(items)!r}: {exc}") from None
    return pc.is_in(expr, value_set=values)


def _floordiv(
    a: pc.Expression, b: pc.Expression, kind: str, divisor: Any
) -> tuple[pc.Expression, str]:
    """``a // b`` as numpy computes it: floored; by zero ``inf``/``nan`` (pandas)."""
    if kind == _INT:
        if isinstance(divisor, int) and divisor != 0:
            return _int_floordiv(a, b), _INT
        zero = _call("equal", b, pc.scalar(0))
        safe = _call("if_else", zero, pc.scalar(1), b)
        by_zero = _call("divide", _f64(a), pc.scalar(0.0))
        return _call("if_else", zero, by_zero, _f64(_int_floordiv(a, safe))), _FLOAT
    a, b = _f64(a), _f64(b)
    mod = _call("remainder", a, b)  # C fmod: exact
    div = _call("divide", _call("subtract", a, mod), b)
    shift = _call("not_equal", mod, pc.scalar(0.0)) & _call(
        "not_equal", _call("less", b, pc.scalar(0.0)), _call("less", mod, pc.scalar(0.0))
    )
    div = _call("if_else", shift, _call("subtract", div, pc.scalar(1.0)), div)
    low = _call("floor", div)
    up = _call("greater", _call("subtract", div, low), pc.scalar(0.5))
    floored = _call("if_else", up, _call("add", low, pc.scalar(1.0)), low)
    quotient = _call("divide", a, b)
    negative = _call("less", _call("divide", pc.scalar(1.0), quotient), pc.scalar(0.0))
    signed_zero = _call("if_else", negative, pc.scalar(-0.0), pc.scalar(0.0))  # copysign
    floored = _call("if_else", _call("equal", floored, pc.scalar(0.0)), signed_zero, floored)
    zero = _call("equal", b, pc.scalar(0.0))
    return _call("if_else", zero, quotient, floored), _FLOAT


def _int_floordiv(a: pc.Expression, b: pc.Expression) -> pc.Expression:
    """Floored integer division (``b`` never zero): truncate, then step down on mixed signs."""
    rem = _call("remainder", a, b)
    down = _call("not_equal", rem, pc.scalar(0)) & _call(
        "not_equal", _call("less", rem, pc.scalar(0)), _call("less", b, pc.scalar(0))
    )
    return _call("subtract", _call("divide", a, b), down.cast(pa.int64()))


def _modulo(
    a: pc.Expression, b: pc.Expression, kind: str, divisor: Any
) -> tuple[pc.Expression, str]:
    """``a % b`` with the divisor's sign (Python/numpy); by zero ``nan`` (pandas)."""
    if kind == _INT:
        if isinstance(divisor, int) and divisor != 0:
            return _call("modulo", a, b), _INT
        zero = _call("equal", b, pc.scalar(0))
        safe = _call("if_else", zero, pc.scalar(1), b)
        nan = pc.scalar(pa.scalar(float("nan"), pa.float64()))
        return _call("if_else", zero, nan, _f64(_call("modulo", a, safe))), _FLOAT
    return _call("modulo", _f64(a), _f64(b)), _FLOAT


def _power(
    a: pc.Expression, b: pc.Expression, kind: str, exponent: Any
) -> tuple[pc.Expression, str]:
    """``a ** b``; missing values act as NaN (pandas reads them so): ``nan ** 0`` is 1."""
    if kind == _INT and isinstance(exponent, int) and exponent >= 0:
        power = _call("power", a, b)
        return (pc.coalesce(power, pc.scalar(1)) if exponent == 0 else power), _INT
    # in float64 also where pandas refuses integers to negative integer powers
    nan = pc.scalar(pa.scalar(float("nan"), pa.float64()))
    if isinstance(exponent, float) and exponent == 0.5:  # numpy takes sqrt: (-inf) ** 0.5 nan
        return _call("sqrt", pc.coalesce(_f64(a), nan)), _FLOAT
    return _call("power", pc.coalesce(_f64(a), nan), pc.coalesce(_f64(b), nan)), _FLOAT


# ------------------------------------------------------------------------- API


def to_arrow(expr: str | Expression, schema: pa.Schema) -> pc.Expression:
    """The query ``expr`` as a boolean pyarrow expression over the columns of ``schema``.

    Parameters
    ----------
    expr : str or Expression
        A query (parsed and checked with :func:`batchseg.query.grammar.parse`).
    schema : pyarrow.Schema
        The columns it may use (unknown ones are refused with a did-you-mean).

    Raises
    ------
    QueryError
        The query is refused, uses unknown columns or cannot apply to these column types.
    """
    parsed = parse(expr)
    parsed.check_columns(schema.names)
    translator = _Translator(schema)
    result = translator.mask(translator.term(parsed.tree.body), parsed.tree.body)
    if result.constant:
        return pc.scalar(bool(result.value))
    assert result.expr is not None
    out = result.expr  # a filter drops null rows: missing is False without a coalesce here
    try:  # bind it once on no rows: type errors surface here, not in the middle of a scan
        schema.empty_table().filter(out)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise QueryError(f"cannot evaluate {parsed.text!r}: {one_line(exc)}") from None
    return out


def filter_arrow(table: pa.Table, expr: str | Expression) -> pa.Table:
    """The rows of ``table`` where ``expr`` holds (an in-memory twin of a filtered scan)."""
    condition = to_arrow(expr, table.schema)
    try:
        return table.filter(condition)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise QueryError(f"cannot evaluate {str(parse(expr))!r}: {one_line(exc)}") from None
