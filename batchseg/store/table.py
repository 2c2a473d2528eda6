"""The per-image table: read from the per-shard arrays, or from the consolidated copy.

The consolidated copy (``table-<id>/``: large chunks, one chunk column per statistic) is built
beside the current one and switched to with one attribute write (``table_node``), so a launcher
killed while consolidating leaves either the old valid table or none (``consolidated`` false):
readers then use the per-shard arrays and are right. Stores written before the switch keep
their table at ``table/`` and read as before.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec

from batchseg.core.faults import fault
from batchseg.errors import StoreError
from batchseg.store.layout import (
    CATALOGUE,
    CATALOGUE_CHUNK,
    PENDING,
    STATS,
    STATUS_NAMES,
    catalogue_node,
    published_rows,
    table_codecs,
)
from batchseg.store.read import (
    array,
    attributes,
    chunk_coords,
    missing_chunks,
    normalise_status,
    read_array,
    stat_names,
    subgroup,
    update_attributes,
)

if TYPE_CHECKING:  # pandas is imported where a table is read (a slow import)
    import pandas as pd

log = logging.getLogger(__name__)

LEGACY_TABLE = "table"
TABLE_PREFIX = "table-"
_CATEGORIES = [STATUS_NAMES[i] for i in range(len(STATUS_NAMES))]


def table_group(root: zarr.Group) -> zarr.Group | None:
    """The consolidated table readers may use, None when it is stale or absent."""
    attrs = attributes(root)
    if not attrs.get("consolidated"):
        return None
    name = str(attrs.get("table_node") or LEGACY_TABLE)
    if name not in root:
        return None
    node = root[name]
    return node if isinstance(node, zarr.Group) else None


def _table_nodes(root: zarr.Group) -> list[str]:
    return [
        name for name in root.group_keys() if name == LEGACY_TABLE or name.startswith(TABLE_PREFIX)
    ]


def _still_valid(root: zarr.Group, status: np.ndarray, real: np.ndarray) -> bool:
    """Whether the current consolidated table holds exactly these statuses."""
    current = table_group(root)
    if current is None or "status" not in current:
        return False
    try:
        stored = read_array(current, "status")
    except StoreError:
        return False
    want = status[real]
    return stored.shape == want.shape and bool(np.array_equal(normalise_status(stored), want))


def consolidate(root: zarr.Group, status: np.ndarray | None = None, *, force: bool = False) -> bool:
    """Write the consolidated table (no padding rows, large chunks); False when still valid.

    The task-written arrays are chunked one shard each (thousands of small objects); this copy
    makes whole-table reads and queries fast. Called by the launcher after a run; a run
    invalidates it when it starts, and readers then fall back to the per-shard arrays.
    A table that is marked consolidated and holds the current statuses is kept as it is
    (unless ``force``).
    The new table is written beside the old one; one attribute write switches to it, then
    the old one is removed.
    """
    rows = published_rows(attributes(root))
    bucket = read_array(root, catalogue_node("bucket"), slice(0, rows))
    real = bucket >= 0
    status = published_status(root) if status is None else status[:rows]
    if not force and _still_valid(root, status, real):
        log.debug("consolidated table is current; not rewritten")
        return False
    old = _table_nodes(root)
    current = table_group(root)
    keep = current.basename if current is not None else None
    for name in old:  # leftovers of an interrupted consolidation
        if name != keep:
            del root[name]
    name = f"{TABLE_PREFIX}{uuid.uuid4().hex[:12]}"
    _write_table(root.create_group(name), root, status, real)
    update_attributes(root, consolidated=True, table_node=name)  # the switch: one write
    fault("consolidated")
    if keep is not None and keep in root:
        del root[keep]
    return True


def published_status(root: zarr.Group) -> np.ndarray:
    """Status per published table row (see :func:`~batchseg.store.layout.published_rows`):
    padding rows EMPTY, unknown codes DAMAGED. Rows of an append still being prepared are not
    part of it."""
    rows = slice(0, published_rows(attributes(root)))
    status = read_array(root, catalogue_node("status"), rows)
    return normalise_status(status, read_array(root, catalogue_node("bucket"), rows) >= 0)


def _write_table(table: zarr.Group, root: zarr.Group, status: np.ndarray, real: np.ndarray) -> None:
    """The consolidated copy of the published rows (``real`` marks those holding an image)."""
    rows = slice(0, real.size)
    n = int(real.sum())
    big = max(1, min(n, CATALOGUE_CHUNK * 16))
    ncols = array(root, STATS).shape[1]

    def put(name: str, data: np.ndarray, chunks: tuple[int, ...], dtype: Any, fill: Any) -> None:
        table.create_array(
            name,
            shape=data.shape,
            chunks=chunks,
            dtype=dtype,
            fill_value=fill,
            compressors=(Crc32cCodec(),) if dtype is str else table_codecs(),
            config={"write_empty_chunks": True},  # a lost chunk is loud, never the fill value
        )[...] = data

    put("status", status[real], (big,), np.int8, PENDING)
    for name in ("height", "width"):
        put(name, read_array(root, catalogue_node(name), rows)[real], (big,), np.uint32, 0)
    fault("consolidating")
    small = (max(1, min(n, CATALOGUE_CHUNK)),)
    for source, name in ((catalogue_node("error"), "error"), (catalogue_node("uri"), "uri")):
        put(name, read_array(root, source, rows, dtype=object)[real], small, str, "")
    # one chunk column per statistic: a query reads only the columns it uses
    stats = read_array(root, STATS, rows)[real]
    put("stats", stats.reshape(n, ncols), (big, 1), np.float64, np.nan)
    # image ids as Arrow-style offsets + UTF-8 bytes: decoded without a Python str per row
    ids = read_array(root, catalogue_node("image_id"), rows, dtype=object)[real]
    encoded = [str(x).encode("utf-8", "surrogateescape") for x in ids]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    put("image_id_offsets", offsets, (big + 1,), np.int64, 0)
    put(
        "image_id_bytes",
        data if data.size else np.zeros(1, np.uint8),
        (max(1, min(data.size, 1 << 24)),),
        np.uint8,
        0,
    )


TABLE_ARRAYS = (
    "status",
    "height",
    "width",
    "error",
    "uri",
    "stats",
    "image_id_offsets",
    "image_id_bytes",
)


def table_damage(root: zarr.Group) -> str | None:
    """Why the consolidated table readers use does not read back whole, None when it does
    (or there is none: readers then use the per-shard arrays).

    Every chunk of every column is read (one at a time: memory stays one chunk) against its
    crc32c; a lost chunk or column is damage too (legacy ``table/`` groups: decoded only).
    """
    t = table_group(root)
    if t is None:
        return None
    for name in TABLE_ARRAYS if t.basename != LEGACY_TABLE else tuple(t.array_keys()):
        try:
            arr = array(t, name)
            every = chunk_coords(arr, tuple(slice(None) for _ in arr.shape))
            if t.basename != LEGACY_TABLE and missing_chunks(arr, every):
                return f"consolidated column {name!r} has lost chunks"
            for coords in every:
                sel = tuple(
                    slice(c * k, (c + 1) * k)
                    for c, k in zip(coords, arr.shards or arr.chunks, strict=True)
                )
                np.asarray(arr[sel])
        except KeyError:
            return f"consolidated column {name!r} is missing"
        except (ValueError, RuntimeError, StoreError) as exc:
            return f"consolidated column {name!r} is damaged ({' '.join(str(exc).split())[:120]})"
    return None


def invalidate_consolidated(root: zarr.Group) -> None:
    """Mark the consolidated table stale before tasks write (readers use the per-shard arrays)."""
    if attributes(root).get("consolidated"):
        update_attributes(root, consolidated=False)


def read_table(
    root: zarr.Group, columns: Sequence[str] | None = None, *, include_empty: bool = False
) -> pd.DataFrame:
    """One row per image: id, status, error, size, every statistic and uri.

    ``columns`` limits what is read (``image_id`` and ``status`` always come).
    ``include_empty`` keeps the padding rows of short shards (status ``empty``).
    A row whose stored status code is unknown reads as ``damaged``.
    """
    import pandas as pd

    names = stat_names(root)
    wanted = None if columns is None else set(columns)
    picked = [i for i, name in enumerate(names) if wanted is None or name in wanted]
    t = None if include_empty else table_group(root)
    if t is not None and not _complete(root, t, [names[i] for i in picked], wanted):
        log.warning("the consolidated table has lost chunks; reading the per-shard arrays")
        t = None
    rows = slice(None)  # the consolidated table holds the published rows only
    if t is not None:
        keep: Any = slice(None)
        status = normalise_status(read_array(t, "status"))
        ids = _arrow_ids(t)
        source = {name: array(t, name) for name in ("error", "height", "width", "uri")}
        stats = array(t, "stats")
    else:
        cat = subgroup(root, CATALOGUE)
        rows = slice(0, published_rows(attributes(root)))
        bucket = read_array(cat, "bucket", rows)
        keep = slice(None) if include_empty else bucket >= 0
        status = normalise_status(read_array(cat, "status", rows), bucket >= 0)[keep]
        ids = read_array(cat, "image_id", rows, dtype=object)[keep]
        source = {name: array(cat, name) for name in ("error", "height", "width", "uri")}
        stats = array(root, STATS)
    data: dict[str, Any] = {
        "image_id": ids,
        "status": pd.Categorical.from_codes(status, categories=_CATEGORIES),
    }
    for name in ("error", "height", "width"):
        if wanted is None or name in wanted:
            data[name] = _read(source[name], name, rows)[keep]
    if picked:
        try:
            if len(picked) == len(names):
                block = np.asarray(stats[rows])
            else:
                cols = np.asarray(picked, dtype=np.intp)
                block = np.asarray(stats.get_orthogonal_selection((rows, cols)))
        except (ValueError, RuntimeError) as exc:
            raise StoreError(
                f"store statistics are damaged: {exc}; run batchseg verify on the store"
            ) from None
        block = block[keep]
        for j, i in enumerate(picked):
            data[names[i]] = block[:, j]
    if wanted is None or "uri" in wanted:
        data["uri"] = np.asarray(_read(source["uri"], "uri", rows), dtype=object)[keep]
    return pd.DataFrame(data)


def _complete(root: zarr.Group, t: zarr.Group, stats: list[str], wanted: set[str] | None) -> bool:
    """Whether every chunk a read of the consolidated table needs is stored.

    Tables written by the atomic switch store all-fill chunks too, so an absent chunk is
    damage (it would read as pending / NaN); legacy ``table/`` groups are not checked.
    """
    if t.basename == LEGACY_TABLE:
        return True
    names = ["status", "image_id_offsets", "image_id_bytes"]
    names += [n for n in ("error", "height", "width", "uri") if wanted is None or n in wanted]
    for name in names:
        arr = array(t, name)
        if missing_chunks(arr, chunk_coords(arr, tuple(slice(None) for _ in arr.shape))):
            return False
    if stats:
        arr = array(t, "stats")
        if missing_chunks(arr, chunk_coords(arr, (slice(None), slice(None)))):
            return False
    return True


def _read(arr: zarr.Array, name: str, rows: slice) -> np.ndarray:
    try:
        return np.asarray(arr[rows])
    except (ValueError, RuntimeError) as exc:
        raise StoreError(f"store column {name!r} is damaged: {exc}") from None


def _arrow_ids(table: zarr.Group) -> Any:
    """Image ids from the consolidated offsets + bytes, as a pandas Arrow string array."""
    import pandas as pd
    import pyarrow as pa

    offsets = read_array(table, "image_id_offsets")
    data = read_array(table, "image_id_bytes")[: int(offsets[-1])]
    ids = pa.LargeStringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data.tobytes())
    )
    return pd.arrays.ArrowExtensionArray(ids)


def table_columns(root: zarr.Group) -> list[str]:
    """Every column :func:`read_table` can return."""
    return ["image_id", "status", "error", "height", "width", *stat_names(root), "uri"]
