"""Column names of the query language: resolving ``--columns`` lists and naming unknown ones."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Sequence

from batchseg.errors import QueryError

__all__ = ["listing", "parse_columns", "unknown_column"]

_MAX_LISTED = 20  # column names shown in an "available: ..." message


def parse_columns(spec: str | Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """Resolve a ``--columns`` value to column names, in the order asked for.

    ``spec`` is ``None`` (all of ``available``), a comma-separated string or a list of
    names; a name with ``*``, ``?`` or ``[`` is a glob pattern (``fraction_*``) expanded
    in the order of ``available``. Duplicates are dropped; unknown names raise
    :class:`QueryError`.
    """
    available = [str(a) for a in available]
    if spec is None:
        return list(available)
    items: list[str] = []
    for item in [spec] if isinstance(spec, str) else spec:
        if not isinstance(item, str):
            raise QueryError(f"column names must be strings, not {type(item).__name__}")
        items.extend(item.split(","))
    wanted = [item.strip() for item in items if item.strip()]
    if not wanted:
        raise QueryError("the column list is empty")
    known = set(available)
    chosen: dict[str, None] = {}
    for item in wanted:
        if any(ch in item for ch in "*?["):
            matches = [name for name in available if fnmatch.fnmatchcase(name, item)]
            if not matches:
                raise QueryError(f"no column matches {item!r}; available: {listing(available)}")
            chosen.update(dict.fromkeys(matches))
        elif item in known:
            chosen[item] = None
        else:
            raise QueryError(unknown_column(item, available))
    return list(chosen)


def listing(names: Sequence[str]) -> str:
    """``names`` joined for a message (the first 20, then a count)."""
    names = list(names)
    more = f", ... ({len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else ""
    return ", ".join(names[:_MAX_LISTED]) + more if names else "(none)"


def unknown_column(name: str, available: Sequence[str]) -> str:
    """The message for an unknown column, with the nearest name when one is close."""
    close = difflib.get_close_matches(name, list(available), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown column {name!r}{hint}; available: {listing(available)}"
