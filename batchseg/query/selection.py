"""One selection of rows and columns: ``--where``, ``--columns``, ``--sort``, ``--id``, limit.

A :class:`Selection` says what to pick; :meth:`Selection.plan` checks it against a table's
columns (one-line QueryError / UsageError) and :meth:`Plan.apply` answers it on a table: the
rows where the query holds (the one Arrow evaluator), those whose id matches an ``--id`` glob,
sorted, the chosen columns, whole-valued counts as integers, and one page of them with the
number of matching rows. ``batchseg query``, ``batchseg mask --where``, ``StoreView.query``,
the report's gallery and the web app all select through it; ``batchseg objects`` and
``StoreView.objects`` resolve their columns with it and push its query down to the Parquet
scan (:mod:`batchseg.store.objects`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from batchseg.errors import UsageError
from batchseg.query import display
from batchseg.query.frames import mask
from batchseg.query.grammar import Expression, parse
from batchseg.query.names import parse_columns

__all__ = ["EVERY_ROW", "Page", "Plan", "Selection", "TableSource", "select"]

#: The expression that selects every row (what ``batchseg query`` uses without ``--where``).
EVERY_ROW = "height >= 0"


@dataclass(frozen=True)
class Selection:
    """Which rows and columns to pick (the options of ``batchseg query``).

    Parameters
    ----------
    where : str or Expression, optional
        A query; None or ``""``: every row (``height >= 0`` on the statistics).
    columns : str or sequence of str, optional
        Comma-separated names or a list, globs allowed (``fraction_*``; ``*``: all); None or
        ``""``: the default columns of the plan.
    sort : str, optional
        ``COL`` (ascending) or ``-COL`` (descending); missing values last.
    ids : sequence of str
        Keep only ids matching one of these globs.
    limit, offset : int
        The page: at most ``limit`` rows from ``offset`` (after sorting).
    """

    where: str | Expression | None = None
    columns: str | Sequence[str] | None = None
    sort: str | None = None
    ids: Sequence[str] = ()
    limit: int | None = None
    offset: int = 0

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 0:
            raise UsageError("limit must be >= 0")
        if self.offset < 0:
            raise UsageError("offset must be >= 0")
        object.__setattr__(self, "ids", tuple(display.check_patterns(list(self.ids))))

    @property
    def explicit(self) -> bool:
        """Whether columns were chosen (else a plan's default columns are shown); an empty
        string is none chosen, a blank one is refused as an empty list."""
        return self.columns is not None and self.columns != ""

    def expression(self, every_row: str | None = None) -> Expression | None:
        """The parsed query; without one, ``every_row`` parsed (or None)."""
        if self.where is None or self.where == "":
            return None if every_row is None else parse(every_row)
        return parse(self.where)

    def column_names(self, available: Sequence[str], default: Sequence[str]) -> list[str]:
        """The chosen columns resolved against ``available`` (``default`` when none chosen)."""
        if self.explicit:
            return parse_columns(self.columns, available)
        return list(default)

    def plan(self, available: Sequence[str], default: Sequence[str] | None = None) -> Plan:
        """Check the selection against a table's columns (``available``).

        ``default``: the columns shown when none were chosen, besides the query's and the
        sort column; None: the key statistics of ``batchseg query`` (a few ``fraction_*``
        columns, those with the largest mean over the matching rows).
        """
        available = [str(c) for c in available]
        expr = self.expression(EVERY_ROW)
        assert expr is not None
        expr.check_columns(available)
        order = display.parse_sort(self.sort, available) if self.sort else None
        where_cols = [c for c in available if c in expr.columns] if self.where else []
        keep = where_cols + ([order[0]] if order else [])
        if self.explicit:
            shown = parse_columns(self.columns, available)
        elif default is None:
            shown = [*display.default_columns(available, where_cols), *keep]
        else:
            shown = [*default, *keep]
        shown = [c for c in dict.fromkeys(shown) if c != "image_id"]
        trim = not self.explicit and default is None
        return Plan(self, expr, order, keep, shown, trim)


@dataclass(frozen=True)
class Page:
    """The answer to a selection: how many rows match and one page of them."""

    total: int
    rows: pd.DataFrame

    def records(self) -> list[dict[str, Any]]:
        """The page as JSON-ready records (as ``batchseg query --format json`` writes them)."""
        return list(json.loads(self.rows.to_json(orient="records")))


@dataclass(frozen=True)
class Plan:
    """A selection checked against a table's columns: what to read, filter and show."""

    selection: Selection
    expr: Expression
    order: tuple[str, bool] | None
    keep: list[str]  # the where and sort columns
    shown: list[str]  # the columns shown after image_id
    trim: bool  # whether to keep only a few fraction_* columns (the default view)

    @property
    def read(self) -> list[str]:
        """Columns a table must hold to answer the selection (besides ``image_id``/``status``)."""
        wanted = [*self.shown, *self.keep, *sorted(self.expr.columns)]
        return [c for c in dict.fromkeys(wanted) if c != "image_id"]

    def apply(self, table: pd.DataFrame, *, integers: bool = True) -> Page:
        """The rows of ``table`` (holding at least :attr:`read`) the selection picks, one page.

        The total counts every matching row; the page is cut after sorting. ``integers``:
        whole-valued float columns (decided on every matching row) become integers.
        """
        table = table[["image_id", *[c for c in self.read if c != "image_id"]]]
        rows = table.loc[mask(table, self.expr)]
        if self.selection.ids:
            ids = [str(i) for i in rows["image_id"]]
            rows = rows[display.id_matches(ids, self.selection.ids)]
        if self.order:
            column, ascending = self.order
            rows = rows.sort_values(column, ascending=ascending, kind="stable", na_position="last")
        rows = rows[["image_id", *self.shown]]
        if self.trim:
            rows = display.trim_fractions(rows, self.keep)
        limit, offset = self.selection.limit, self.selection.offset
        page = rows.iloc[offset : None if limit is None else offset + limit]
        if integers:
            page = _integers_like(page, rows)
        return Page(len(rows), page.reset_index(drop=True))


class TableSource(Protocol):
    """A table read by columns (:class:`batchseg.api.StoreView` is one)."""

    def columns(self) -> list[str]: ...  # noqa: D102

    def table(self, columns: Sequence[str] | None = None) -> pd.DataFrame: ...  # noqa: D102


def select(
    source: TableSource,
    selection: Selection,
    default: Sequence[str] | None = None,
    *,
    integers: bool = True,
) -> Page:
    """:meth:`Selection.plan` and :meth:`Plan.apply` on ``source``, reading only the columns
    the selection needs."""
    plan = selection.plan(source.columns(), default)
    return plan.apply(source.table(plan.read), integers=integers)


def _integers_like(page: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """``page`` with the columns that are whole-valued over all ``rows`` as integers (the rule
    of :func:`batchseg.query.display.with_integers`, decided on every matching row)."""
    numeric = [c for c in rows.columns if pd.api.types.is_float_dtype(rows[c])]
    if not numeric:
        return page
    whole = display.with_integers(rows[numeric])
    out = page.copy()
    for c in numeric:
        if str(whole[c].dtype) == "Int64":
            out[c] = page[c].astype("Int64")
    return out
