"""Queries over pandas tables (the statistics table): the columns a query uses, as Arrow.

The statistics table is read as pandas (:meth:`batchseg.api.StoreView.table`); a query is
answered by building an Arrow table of the columns it uses and applying the one evaluator
(:func:`batchseg.query.arrow.to_arrow`) to it: the same rows a Parquet scan with the same
query pushed down would select.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from batchseg.errors import QueryError, one_line
from batchseg.query.arrow import to_arrow
from batchseg.query.grammar import Expression, parse

__all__ = ["arrow_columns", "filter_table", "mask"]

#: The row-number column added while filtering (no query can name it: it starts with '__').
_ROW = "__row__"


def arrow_columns(frame: pd.DataFrame, names: list[str]) -> pa.Table:
    """The columns ``names`` of ``frame`` as an Arrow table (NaN and NA read as missing;
    a column with no values at all as strings, so that comparing it answers False)."""
    arrays, fields = [], []
    for name in names:
        column = frame[name]
        if isinstance(column, pd.DataFrame):
            raise QueryError(f"column {name!r} is ambiguous: the table has it more than once")
        try:
            array = pa.Array.from_pandas(column)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise QueryError(f"column {name!r} cannot be queried: {one_line(exc)}") from None
        if pa.types.is_null(array.type):
            array = array.cast(pa.string())
        arrays.append(array)
        fields.append(pa.field(name, array.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def mask(frame: pd.DataFrame, expr: str | Expression) -> np.ndarray:
    """Boolean array, one per row of ``frame``: where the query ``expr`` holds."""
    parsed = parse(expr)
    parsed.check_columns([str(c) for c in frame.columns])
    names = sorted(parsed.columns)
    table = arrow_columns(frame, names)
    condition = to_arrow(parsed, table.schema)
    n = len(frame)
    if not names:  # a constant query: to_arrow folded it to True or False
        return np.full(n, condition.equals(pc.scalar(True)), dtype=bool)
    table = table.append_column(_ROW, pa.array(np.arange(n, dtype=np.int64)))
    try:
        kept = table.filter(condition).column(_ROW).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise QueryError(f"cannot evaluate {parsed.text!r}: {one_line(exc)}") from None
    out = np.zeros(n, dtype=bool)
    out[kept] = True
    return out


def filter_table(frame: pd.DataFrame, expr: str | Expression) -> pd.DataFrame:
    """The rows of ``frame`` where ``expr`` holds (same columns, original index kept)."""
    return frame.loc[mask(frame, expr)]
