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

from batchseg.core.refcolumns import UNKNOWN, RefColumns, string_buffer

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
    parts = None
    for integers in (True, False) if sized else (False,):  # sizes as plain integers first
        try:
            parts = _read_blocks(manifest, header, sized, integers=integers)
            break
        except (pa.ArrowInvalid, UnicodeDecodeError, OSError) as exc:
            log.debug("reading %s %s: %s", manifest, "again" if integers else "row by row", exc)
    if parts is None:
        return None
    paths, heights, widths = parts
    h, w = heights.values(), widths.values()
    refs = _with_ids(paths, h, w, base)
    pa.default_memory_pool().release_unused()  # the blocks' memory goes back to the system
    return refs


def _read_blocks(
    manifest: Path, header: list[str], sized: bool, *, integers: bool
) -> tuple[_Paths, _Numbers, _Numbers] | None:
    """Each block's non-empty paths and sizes; None where a size is not an integer.

    ``integers``: Arrow parses the size columns as integers (fast; a cell with spaces or
    text raises ArrowInvalid), else as text checked here."""
    wanted = ["path", "height", "width"] if sized else ["path"]
    names = [f"c{i}" for i in range(len(header))]
    column = {name: names[header.index(name)] for name in wanted}
    types = {column[n]: pa.string() for n in wanted}
    if integers:
        types.update({column["height"]: pa.int32(), column["width"]: pa.int32()})
    paths = _Paths(manifest.stat().st_size)
    rows = manifest.stat().st_size // 2 + 1  # a row has at least 2 bytes
    heights, widths = _Numbers(rows, np.int32), _Numbers(rows, np.int32)
    # a plain file, read and let go of block by block (never memory-mapped whole)
    with (
        pa.OSFile(str(manifest), "rb") as raw,
        pacsv.open_csv(
            raw,
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=1, block_size=BLOCK_BYTES, use_threads=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                include_columns=[column[n] for n in wanted],
                strings_can_be_null=False,
            ),
        ) as reader,
    ):
        for batch in reader:
            part = _batch_columns(batch, column, sized)
            if part is None:
                return None
            paths.add(part[0])
            heights.append(part[1])
            widths.append(part[2])
    return paths, heights, widths


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
    h, w = batch.column(column["height"]).filter(keep), batch.column(column["width"]).filter(keep)
    if pa.types.is_integer(h.type):  # parsed by Arrow; an empty cell is null
        given = pc.and_(h.is_valid(), w.is_valid()).to_numpy(zero_copy_only=False)
        hs = np.where(given, h.fill_null(0).to_numpy(), UNKNOWN).astype(np.int32)
        ws = np.where(given, w.fill_null(0).to_numpy(), UNKNOWN).astype(np.int32)
        return path, hs, ws
    h, w = pc.utf8_trim_whitespace(h), pc.utf8_trim_whitespace(w)
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


class _Paths:
    """The manifest's paths, a block at a time. While every path is absolute (and no URL),
    a block is kept as ids: without the folder common to every path so far, copied into one
    buffer (:class:`_Strings`), so the column is never held twice. When a later block shortens
    that folder, the earlier ids get back the letters they all share; a block with a relative
    path or a URL turns them back into paths.
    """

    def __init__(self, capacity: int) -> None:
        self.ids = _Strings(capacity)
        self.blocks: list[pa.Array] = []  # paths as written, once one is not absolute
        self.absolute = True  # every block so far: absolute paths, held as ids
        self.untidy = False
        self.prefix = ""  # what the ids of the blocks so far lack (their common folder + "/")
        self.low: str | None = None
        self.high: str | None = None

    def add(self, path: pa.Array) -> None:
        """One block's paths."""
        if not len(path):
            return
        whole = pc.all(pc.starts_with(path, "/")).as_py() and not _any(path, "://")
        if not (self.absolute and whole):
            if self.absolute:
                self.blocks = [_joined(self.prefix, self.ids.array())] if len(self.ids) else []
                self.ids = _Strings(0)
            self.absolute = False
            self.blocks.append(path)
            return
        self.untidy = self.untidy or bool(pc.any(pc.match_substring_regex(path, _UNTIDY)).as_py())
        bounds = pc.min_max(path)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)
        cut = _common_folder_cut(self.low, self.high)
        if len(self.ids) and cut < len(self.prefix):  # earlier ids lack more than the new folder
            self.ids.prepend(self.prefix[cut:])
        self.prefix = self.low[:cut]
        self.ids.append(pc.utf8_slice_codeunits(path, cut))


class _Numbers:
    """A numeric column built block by block in one buffer of ``capacity`` values (pages are
    touched only as they are filled, so a generous capacity costs nothing)."""

    def __init__(self, capacity: int, dtype: type[np.integer]) -> None:
        self.data = np.empty(max(1, capacity), dtype=dtype)
        self.used = 0

    def append(self, values: np.ndarray) -> None:
        end = self.used + values.size
        if end > self.data.size:  # only where the capacity was a wrong guess
            grown = np.empty(max(2 * self.data.size, end), dtype=self.data.dtype)
            grown[: self.used] = self.data[: self.used]
            self.data = grown
        self.data[self.used : end] = values
        self.used = end

    def values(self) -> np.ndarray:
        """The values so far (a view of the buffer)."""
        return self.data[: self.used]


class _Strings:
    """A string column built block by block in one buffer (its pages are touched as they are
    filled), so no moment holds the blocks and their concatenation at once."""

    def __init__(self, capacity: int) -> None:
        self._reset(capacity)

    def _reset(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.data = _Numbers(self.capacity, np.uint8)
        self.large = self.capacity >= 1 << 31  # 64-bit offsets only where 32 bits may not do
        self.offsets = _Numbers(self.capacity // 2 + 2, np.int64 if self.large else np.int32)
        self.offsets.append(np.zeros(1, self.offsets.data.dtype))
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def append(self, values: pa.Array) -> None:
        raw = np.frombuffer(string_buffer(values), dtype=np.uint8)
        offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)
        offsets = offsets[values.offset + 1 : values.offset + len(values) + 1]
        start = self.data.used - int(np.frombuffer(values.buffers()[1], np.int32)[values.offset])
        if not self.large and self.data.used + raw.size >= 1 << 31:
            raise pa.ArrowInvalid("manifest larger than its file size guessed")
        self.offsets.append((offsets.astype(np.int64) + start).astype(self.offsets.data.dtype))
        self.data.append(raw)
        self.count += len(values)

    def prepend(self, piece: str) -> None:
        """Put ``piece`` before every string so far (rare: a block shortened the folder)."""
        joined = _joined(piece, self.array())
        self._reset(self.capacity + len(piece.encode()) * self.count)
        self.append(joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined)

    def array(self) -> pa.Array:
        """The strings as one Arrow array over the buffers (not copied)."""
        return pa.Array.from_buffers(
            pa.large_string() if self.large else pa.string(),
            self.count,
            [None, pa.py_buffer(self.offsets.values()), pa.py_buffer(self.data.values())],
        )


def _any(path: pa.Array, text: str) -> bool:
    return bool(pc.any(pc.match_substring(path, text)).as_py())


def _joined(prefix: str, values: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(prefix, values, "")


def _with_ids(paths: _Paths, h: np.ndarray, w: np.ndarray, base: str) -> RefColumns | None:
    """Ids and uris of the manifest's ``path`` column (rules of :mod:`batchseg.io.sources`)."""
    if paths.absolute:
        if paths.untidy:
            return None  # commonpath tidies these: the row-by-row reader decides
        return RefColumns(paths.ids.array(), h, w, uri_prefix=paths.prefix)
    path = _combined(paths.blocks)
    paths.blocks.clear()
    if not (_any(path, "://") or pc.any(pc.starts_with(path, "/")).as_py()):
        if not pc.any(pc.starts_with(path, "./")).as_py():
            return RefColumns(path, h, w, uri_prefix=f"{base}/")
    relative = pc.invert(pc.or_(pc.match_substring(path, "://"), pc.starts_with(path, "/")))
    dotted = pc.starts_with(path, "./")
    rest = pc.if_else(dotted, pc.utf8_slice_codeunits(path, 2), path)
    return RefColumns(path, h, w, uris=pc.if_else(relative, _joined(f"{base}/", rest), path))


def _combined(blocks: list[pa.Array]) -> pa.ChunkedArray:
    """The blocks' strings as one chunked array (not copied)."""
    return pa.chunked_array(blocks, type=pa.string())


def _common_folder_cut(low: str, high: str) -> int:
    """Where the ids of absolute entries begin: after the entries' common folder and its ``/``
    (the common character prefix of the smallest and largest entry, back to a ``/``)."""
    same = 0
    for a, b in zip(low, high, strict=False):
        if a != b:
            break
        same += 1
    common = low[:same]
    folder = common[: common.rfind("/") + 1].rstrip("/")
    return len(folder) + 1
