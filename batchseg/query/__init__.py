"""The query language: one parser, one evaluator (Arrow compute), one selection.

A query is a Python-like boolean expression over column names and literals::

    fraction_road > 0.3 and n_regions > 4
    0.1 < fraction_road < 0.5 or status in ("failed", "done")
    not (image_id == "img_001") and (width * height) // 2 >= 1e5

Modules: :mod:`~batchseg.query.grammar` (parsing against a strict whitelist, refusals with
hints), :mod:`~batchseg.query.names` (column names, globs, did-you-mean),
:mod:`~batchseg.query.arrow` (the evaluator: a query as a pyarrow compute expression, pushed
down to Parquet scans), :mod:`~batchseg.query.constants` (constant folding),
:mod:`~batchseg.query.frames` (queries over pandas tables through Arrow),
:mod:`~batchseg.query.display` (default columns, sorting, id globs, integer counts) and
:mod:`~batchseg.query.selection` (:class:`Selection`: where, columns, sort, ids, limit).

Missing values (null, NaN) never satisfy a comparison: ``x != 1`` and ``x not in (1, 2)`` are
False where ``x`` is missing, like every other comparison.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from batchseg.query.grammar import MAX_DEPTH, MAX_LENGTH, Expression, parse, syntax_hint
from batchseg.query.names import listing, parse_columns, unknown_column

if TYPE_CHECKING:  # loaded on first use: ``import batchseg.store`` stays free of pandas
    from batchseg.query.arrow import filter_arrow, to_arrow
    from batchseg.query.frames import filter_table, mask
    from batchseg.query.selection import EVERY_ROW, Page, Plan, Selection, TableSource, select

_LAZY = {
    "filter_arrow": "arrow", "to_arrow": "arrow", "filter_table": "frames", "mask": "frames",
    "EVERY_ROW": "selection", "Page": "selection", "Plan": "selection",
    "Selection": "selection", "TableSource": "selection", "select": "selection",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "EVERY_ROW",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Expression",
    "Page",
    "Plan",
    "Selection",
    "TableSource",
    "filter_arrow",
    "filter_table",
    "listing",
    "mask",
    "parse",
    "parse_columns",
    "select",
    "syntax_hint",
    "to_arrow",
    "unknown_column",
]
