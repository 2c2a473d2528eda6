"""Constant folding: the parts of a query that use no column, computed in Python.

The evaluator (:mod:`batchseg.query.arrow`) folds ``2 ** 10`` or ``1 < 2`` here, with the
language's errors: division by zero, overflow and type errors as one-line
:class:`~batchseg.errors.QueryError`.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any

from batchseg.errors import QueryError, one_line

__all__ = ["apply_binop", "compare", "is_missing", "scalar_equal"]

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}  # fmt: skip
_CMPOPS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
    ast.GtE: operator.ge, ast.Eq: operator.eq, ast.NotEq: operator.ne,
}  # fmt: skip


def is_missing(value: Any) -> bool:
    """Whether a constant is a missing value (a float NaN)."""
    return isinstance(value, float) and value != value


def scalar_equal(left: Any, right: Any) -> bool:
    """``left == right`` of two constants; False where they cannot be compared."""
    try:
        return bool(left == right)
    except Exception:  # pragma: no cover - plain Python scalars compare fine
        return False


def apply_binop(node: ast.BinOp, left: Any, right: Any) -> Any:
    """``left <op of node> right`` of two constants; constant integer powers that would
    build giant integers are taken in floats."""
    if (
        isinstance(node.op, ast.Pow)
        and isinstance(left, int)
        and isinstance(right, int)
        and right > 0
        and left.bit_length() * right > 4096
    ):
        left = float(left)
    try:
        return _BINOPS[type(node.op)](left, right)
    except ZeroDivisionError:
        raise QueryError(f"division by zero in {ast.unparse(node)!r}") from None
    except OverflowError:
        raise QueryError(f"numeric overflow in {ast.unparse(node)!r}") from None
    except (TypeError, ValueError) as exc:
        raise QueryError(f"cannot evaluate {ast.unparse(node)!r}: {one_line(exc)}") from None


def compare(op: ast.cmpop, left: Any, right: Any, node: ast.Compare) -> bool:
    """``left <op> right`` of two constants; a missing value never satisfies it."""
    try:
        result = _CMPOPS[type(op)](left, right)
    except Exception as exc:  # noqa: BLE001 - e.g. 1 < 'a'
        raise QueryError(f"cannot evaluate {ast.unparse(node)!r}: {one_line(exc)}") from None
    if is_missing(left) or is_missing(right):
        return False
    return bool(result)
