"""What a query shows: a few readable columns, ids by glob, sorting, integer counts, cells.

Default columns: the image id, the columns the ``--where`` expression uses, the status, then a
few key statistics (``n_regions``, ``mean_confidence`` and at most three ``fraction_*``
columns, those with the largest mean over the matching rows). ``--columns '*'`` shows all.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

from batchseg.errors import UsageError
from batchseg.query.names import unknown_column

#: Most ``fraction_*`` columns shown by default (the largest on average).
DEFAULT_FRACTIONS = 3
#: Key statistics shown by default when the store has them, in this order.
KEY_STATISTICS = ("status", "n_regions", "mean_confidence")
#: Float columns that stay floats even when every value is whole.
_ALWAYS_FLOAT = ("fraction_", "mean_", "seconds", "confidence")
#: Longest ``--id`` pattern accepted.
MAX_PATTERN = 1000


def default_columns(available: Sequence[str], where_columns: Sequence[str]) -> list[str]:
    """Columns read when ``--columns`` is not given (fractions trimmed later, see
    :func:`trim_fractions`); ``image_id`` is not listed (always first)."""
    chosen = dict.fromkeys(c for c in available if c in set(where_columns))
    chosen.update(dict.fromkeys(c for c in KEY_STATISTICS if c in available))
    chosen.update(dict.fromkeys(c for c in available if c.startswith("fraction_")))
    chosen.pop("image_id", None)
    return list(chosen)


def trim_fractions(table: Any, keep: Sequence[str]) -> Any:
    """``table`` with at most :data:`DEFAULT_FRACTIONS` ``fraction_*`` columns besides
    ``keep`` (the where and sort columns): those with the largest mean."""
    fractions = [c for c in table.columns if c.startswith("fraction_") and c not in keep]
    if len(fractions) <= DEFAULT_FRACTIONS:
        return table
    means = table[fractions].mean(skipna=True).fillna(-1.0)
    top = set(means.sort_values(ascending=False, kind="stable").index[:DEFAULT_FRACTIONS])
    return table[[c for c in table.columns if c not in fractions or c in top]]


def parse_sort(sort: str | None, available: Sequence[str]) -> tuple[str, bool] | None:
    """``--sort COL`` (ascending) or ``--sort -COL`` (descending): the column and whether
    ascending; None without ``--sort``."""
    if sort is None:
        return None
    name = sort.strip()
    ascending = not name.startswith("-")
    name = name.lstrip("-+").strip()
    if name not in available:
        raise UsageError(f"--sort: {unknown_column(name, available)}")
    return name, ascending


def check_patterns(patterns: Sequence[str]) -> list[str]:
    """``--id`` glob patterns, checked (not empty, not too long)."""
    out = []
    for p in patterns:
        if not p:
            raise UsageError("--id pattern is empty")
        if len(p) > MAX_PATTERN:
            raise UsageError(f"--id pattern is too long ({len(p)} characters; at most 1000)")
        out.append(p)
    return out


def id_matches(image_ids: Sequence[str], patterns: Sequence[str]) -> list[bool]:
    """Which ids match any glob in ``patterns`` (``*``, ``?``, ``[...]``; case-sensitive;
    ``*`` also crosses ``/``). Globs are translated by :mod:`fnmatch`: never a regex."""
    return [any(fnmatch.fnmatchcase(i, p) for p in patterns) for i in image_ids]


def with_integers(table: Any) -> Any:
    """``table`` with whole-valued float columns (counts, sizes) as nullable integers, so
    that every format prints ``264``, not ``264.0``; fractions, means and times stay floats."""
    import numpy as np
    import pandas as pd

    out = table.copy()
    for c in out.columns:
        col = out[c]
        if str(c).startswith(_ALWAYS_FLOAT) or not pd.api.types.is_float_dtype(col):
            continue
        values = col.to_numpy(dtype=float, na_value=np.nan)
        finite = values[~np.isnan(values)]
        if np.isfinite(finite).all() and (finite == np.round(finite)).all():
            if finite.size == 0 or np.abs(finite).max() < 2**53:
                out[c] = col.astype("Int64")
    return out


def cell(value: Any) -> str:
    """A table cell: floats to 4 significant digits, missing values empty."""
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
