"""The rows a query shows: the selection ``batchseg query`` makes, with a total and a page.

The report's gallery, the web app's table and its ``/api/query`` answer all pick rows with
:func:`plan_query` and :func:`select`, which apply the rules of ``batchseg query`` (default
columns, ``--sort [-]COL``, ``--id`` globs, a few key fraction columns, whole-valued counts as
integers), so ``/api/query`` answers with the rows ``batchseg query --format json`` prints.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from batchseg import query as query_lang
from batchseg.cli import query_output as qo
from batchseg.errors import UsageError

#: The expression that selects every row (what ``batchseg query`` uses without ``--where``).
EVERY_ROW = "height >= 0"


@dataclass(frozen=True)
class QueryPlan:
    """A checked query: the expression, sort order, the columns to read and to show."""

    expr: query_lang.Expression
    order: tuple[str, bool] | None
    keep: list[str]  # the where and sort columns (shown besides the default ones)
    shown: list[str]  # the columns shown after image_id
    explicit: bool  # whether the columns were given (then no fraction trimming)
    ids: list[str]

    @property
    def read(self) -> list[str]:
        """Columns a table must hold to answer the query (besides ``image_id``/``status``)."""
        wanted = [*self.shown, *self.keep, *sorted(self.expr.columns)]
        return [c for c in dict.fromkeys(wanted) if c != "image_id"]


@dataclass(frozen=True)
class Selection:
    """The answer to a query: how many rows match and one page of them."""

    total: int
    rows: pd.DataFrame

    def records(self) -> list[dict[str, Any]]:
        """The page as JSON-ready records (as ``batchseg query --format json`` writes them)."""
        return list(json.loads(self.rows.to_json(orient="records")))


def plan_query(
    available: Sequence[str],
    where: str | None = None,
    columns: str | None = None,
    sort: str | None = None,
    ids: Sequence[str] = (),
) -> QueryPlan:
    """Check a query against the store's columns (QueryError / UsageError with one line).

    Parameters
    ----------
    available : sequence of str
        The store's columns (``StoreView.columns()``).
    where, columns, sort, ids
        As ``batchseg query --where --columns --sort --id``.
    """
    available = list(available)
    expr = query_lang.parse(where if where and where.strip() else EVERY_ROW)
    expr.check_columns(available)
    order = qo.parse_sort(sort, available) if sort else None
    where_cols = [c for c in available if c in expr.columns] if where else []
    keep = where_cols + ([order[0]] if order else [])
    explicit = bool(columns and columns.strip())
    if explicit:
        cols = query_lang.parse_columns(columns, available)
    else:
        cols = qo.default_columns(available, where_cols)
    shown = [c for c in dict.fromkeys(cols if explicit else [*cols, *keep]) if c != "image_id"]
    return QueryPlan(expr, order, keep, shown, explicit, qo.check_patterns(list(ids)))


def select(
    plan: QueryPlan, table: pd.DataFrame, limit: int | None = None, offset: int = 0
) -> Selection:
    """The rows of ``table`` (holding at least ``plan.read``) the query picks, one page.

    The total counts every matching row; ``offset`` and ``limit`` cut the page after sorting.
    """
    if limit is not None and limit < 0:
        raise UsageError("limit must be >= 0")
    if offset < 0:
        raise UsageError("offset must be >= 0")
    table = table[["image_id", *[c for c in plan.read if c != "image_id"]]]
    rows = query_lang.filter_table(table, plan.expr)
    if plan.ids:
        rows = rows[qo.id_matches([str(i) for i in rows["image_id"]], plan.ids)]
    if plan.order:
        column, ascending = plan.order
        rows = rows.sort_values(column, ascending=ascending, kind="stable", na_position="last")
    if plan.explicit:
        rows = rows[["image_id", *plan.shown]]
    else:
        rows = qo.trim_fractions(rows[["image_id", *plan.shown]], plan.keep)
    total = len(rows)
    stop = None if limit is None else offset + limit
    page = rows.iloc[offset:stop]
    return Selection(total, _integers_like(page, rows).reset_index(drop=True))


def _integers_like(page: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """``page`` with the columns that are whole-valued over all ``rows`` as integers (the rule
    of :func:`batchseg.cli.query_output.with_integers`, decided on every matching row)."""
    numeric = [c for c in rows.columns if pd.api.types.is_float_dtype(rows[c])]
    if not numeric:
        return page
    whole = qo.with_integers(rows[numeric])
    out = page.copy()
    for c in numeric:
        if str(whole[c].dtype) == "Int64":
            out[c] = page[c].astype("Int64")
    return out


def query_view(
    view: Any,
    where: str | None = None,
    columns: str | None = None,
    sort: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> Selection:
    """:func:`plan_query` and :func:`select` on a :class:`batchseg.api.StoreView`, reading
    only the columns the query needs."""
    plan = plan_query(view.columns(), where, columns, sort)
    return select(plan, view.table(plan.read), limit=limit, offset=offset)
