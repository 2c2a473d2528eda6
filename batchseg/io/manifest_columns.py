"""Read a local CSV manifest in bounded batches into columns (:class:`RefColumns`).

Arrow's streaming CSV reader parses blocks of :data:`BLOCK_BYTES`; only the path and size
columns are kept, as Arrow strings and int32 arrays, never as one Python object per row. A
manifest Arrow cannot read as plain UTF-8 rows (ragged rows, bad bytes, a size that is not an
integer) returns None here: :mod:`batchseg.io.sources` then reads it row by row, which names
the offending line.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from batchseg.core.refcolumns import UNKNOWN, RefColumns

log = logging.getLogger(__name__)

#: Bytes of CSV parsed at a time (Arrow's block size).
BLOCK_BYTES = 8 << 20
#: A path whose text :func:`os.path.commonpath` would read differently from its letters.
_UNTIDY = r"(^|/)\.{1,2}(/|$)|//|/$"


def read_csv_columns(manifest: Path, base: str) -> RefColumns | None:
    """The rows of ``manifest`` as columns (ids as :func:`relative_manifest_ids` makes them),
    or None when the manifest needs the row-by-row reader (see the module docstring)."""
    header = _header(manifest)
    if header is None or "path" not in header:
        return None
    sized = "height" in header and "width" in header
    wanted = ["path", "height", "width"] if sized else ["path"]
    names = [f"c{i}" for i in range(len(header))]
    column = {name: names[header.index(name)] for name in wanted}
    try:
        reader = pacsv.open_csv(
            manifest,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=BLOCK_BYTES),
            convert_options=pacsv.ConvertOptions(
                column_types={column[n]: pa.string() for n in wanted},
                include_columns=[column[n] for n in wanted],
                strings_can_be_null=False,
            ),
        )
        paths: list[pa.Array] = []
        heights: list[np.ndarray] = []
        widths: list[np.ndarray] = []
        for batch in reader:
            part = _batch_columns(batch, column, sized)
            if part is None:
                return None
            paths.append(part[0])
            heights.append(part[1])
            widths.append(part[2])
    except (pa.ArrowInvalid, UnicodeDecodeError, OSError) as exc:
        log.debug("reading %s row by row: %s", manifest, exc)
        return None
    path = pa.chunked_array(paths, type=pa.string()).combine_chunks()
    h = np.concatenate(heights) if heights else np.zeros(0, np.int32)
    w = np.concatenate(widths) if widths else np.zeros(0, np.int32)
    return _with_ids(path, h, w, base)


def _header(manifest: Path) -> list[str] | None:
    """The manifest's column names (stripped), None when its first line is not UTF-8 text."""
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as fh:
            first = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError):
        return None
    return [h.strip() for h in first]


def _batch_columns(
    batch: pa.RecordBatch, column: dict[str, str], sized: bool
) -> tuple[pa.Array, np.ndarray, np.ndarray] | None:
    """One block's non-empty paths and their sizes; None for a size that is not an integer."""
    path = pc.utf8_trim_whitespace(batch.column(column["path"]))
    keep = pc.greater(pc.utf8_length(path), 0)
    path = path.filter(keep)
    n = len(path)
    if not sized:
        return path, np.full(n, UNKNOWN, np.int32), np.full(n, UNKNOWN, np.int32)
    h = pc.utf8_trim_whitespace(batch.column(column["height"]).filter(keep))
    w = pc.utf8_trim_whitespace(batch.column(column["width"]).filter(keep))
    given = pc.and_(pc.greater(pc.utf8_length(h), 0), pc.greater(pc.utf8_length(w), 0))
    if not pc.all(pc.is_in(_digits(h, given), pa.array([True]))).as_py():
        return None
    if not pc.all(pc.is_in(_digits(w, given), pa.array([True]))).as_py():
        return None
    hs = pc.if_else(given, h, "-1").cast(pa.int64()).to_numpy()
    ws = pc.if_else(given, w, "-1").cast(pa.int64()).to_numpy()
    if max(hs.max(initial=0), ws.max(initial=0)) >= 1 << 31:
        return None  # beyond int32: the row-by-row reader keeps Python ints
    return path, hs.astype(np.int32), ws.astype(np.int32)


def _digits(values: pa.Array, given: pa.Array) -> pa.Array:
    """Whether each given value is a plain integer (rows without a size count as fine)."""
    plain = pc.match_substring_regex(values, r"^[+-]?[0-9]+$")
    return pc.or_(plain, pc.invert(given))


def _with_ids(path: pa.Array, h: np.ndarray, w: np.ndarray, base: str) -> RefColumns | None:
    """Ids and uris of the manifest's ``path`` column (rules of :mod:`batchseg.io.sources`)."""
    n = len(path)
    url = pc.match_substring(path, "://")
    absolute = pc.starts_with(path, "/")
    if n and pc.all(absolute).as_py() and not pc.any(url).as_py():
        if pc.any(pc.match_substring_regex(path, _UNTIDY)).as_py():
            return None  # commonpath tidies these: the row-by-row reader decides
        cut = _common_folder_cut(path)
        prefix = path[0].as_py()[:cut]
        ids = pc.utf8_slice_codeunits(path, cut) if cut else path
        return RefColumns(ids, h, w, uri_prefix=prefix)
    if not pc.any(pc.or_(url, absolute)).as_py():
        if not pc.any(pc.starts_with(path, "./")).as_py():
            return RefColumns(path, h, w, uri_prefix=f"{base}/")
    relative = pc.invert(pc.or_(url, absolute))
    dotted = pc.starts_with(path, "./")
    rest = pc.if_else(dotted, pc.utf8_slice_codeunits(path, 2), path)
    joined = pc.binary_join_element_wise(f"{base}/", rest, "")
    return RefColumns(path, h, w, uris=pc.if_else(relative, joined, path))


def _common_folder_cut(path: pa.Array) -> int:
    """Where the ids of absolute entries begin: after the entries' common folder and its ``/``
    (the common character prefix of the smallest and largest entry, back to a ``/``)."""
    bounds = pc.min_max(path)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    same = 0
    for a, b in zip(low, high, strict=False):
        if a != b:
            break
        same += 1
    common = low[:same]
    folder = common[: common.rfind("/") + 1].rstrip("/")
    return len(folder) + 1
