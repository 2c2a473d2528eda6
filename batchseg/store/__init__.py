"""The one module that owns the Zarr v3 store layout.

Layout (every node readable with plain zarr-python)::

    STORE/                       attrs["batchseg"]: schema, job, method, classes, plan, runs
      catalogue/image_id         str    (rows,)   written once by the planner
      catalogue/uri              str    (rows,)
      catalogue/height, width    uint32 (rows,)
      catalogue/bucket           int32  (rows,)   -1 on padding rows
      catalogue/bucket_row       int64  (rows,)   row in labels/<bucket>
      catalogue/status           int8   (rows,)   chunk = shard: 1 pending (fill), 2 done, 3 failed
      catalogue/error            str    (rows,)   chunk = shard
      stats                      float64 (rows, columns), chunk = (shard, columns);
                                 attrs["columns"] names the columns
      labels/<bucket>            uint (bucket rows, H, W): chunk (1, H, W), shard = task shard
      confidence/<bucket>        uint8, same layout (semantic methods only)
      labels/t<...>              tiled image (one per bucket): (1, H, W), chunk (1, T, T)
      pyramid/<bucket>/<l>       its label pyramid, level l = labels[::2^l, ::2^l],
                                 chunk (1, T/2^l, T/2^l); written during the job

Shard ``k`` of the plan owns rows ``[k*S, (k+1)*S)`` of every per-row array and rows
``[j*s, (j+1)*s)`` of its bucket's arrays, so tasks write whole chunks/shards only.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import pandas as pd
import zarr
from zarr.codecs import BloscCodec

from batchseg.errors import StoreError
from batchseg.job.faults import fault
from batchseg.job.plan import Bucket, Plan, Shard

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
ATTRS_KEY = "batchseg"
CREATING_KEY = "batchseg_creating"
EMPTY, PENDING, DONE, FAILED = 0, 1, 2, 3
STATUS_NAMES = {EMPTY: "empty", PENDING: "pending", DONE: "done", FAILED: "failed"}
_CATALOGUE_CHUNK = 1 << 16


def label_codec(dtype: np.dtype) -> BloscCodec:
    """Compressor for label maps: zstd 5, bit-shuffled for uint8, byte-shuffled for wider.

    Measured on CamVid + BSDS500 (README storage table): byte shuffling made uint16/uint32 region
    labels 2.2x smaller than bit shuffling; for uint8 class maps bit shuffling is as good or better.
    """
    shuffle: Literal["bitshuffle", "shuffle"] = (
        "bitshuffle" if np.dtype(dtype).itemsize == 1 else "shuffle"
    )
    return BloscCodec(cname="zstd", clevel=5, shuffle=shuffle)


def table_codec() -> BloscCodec:
    return BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")


@dataclass(frozen=True)
class ShardBlock:
    """Everything one task writes for one shard."""

    labels: np.ndarray | None  # (bucket shard size, H, W)
    confidence: np.ndarray | None
    stats: np.ndarray  # (S, columns) float64
    status: np.ndarray  # (S,) int8
    errors: np.ndarray  # (S,) object (str)


def is_url(path: str) -> bool:
    """Whether ``path`` is an fsspec URL (``s3://``, ``gs://``, ``file://``...)."""
    return "://" in path


def normalise(path: str) -> str:
    """``file://`` URLs as plain local paths (local stores keep their local behaviour)."""
    if path.startswith("file://"):
        return path[len("file://") :] or "/"
    return path


def _filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path in it (options from the environment)."""
    import fsspec

    fs, inner = fsspec.core.url_to_fs(url)
    return fs, str(inner).rstrip("/")


def path_exists(path: str) -> bool:
    """Whether anything (a file, a folder or an object prefix) is at ``path``."""
    path = normalise(path)
    if not is_url(path):
        return os.path.exists(path)
    fs, inner = _filesystem(path)
    fs.invalidate_cache(inner)  # another process (or zarr's own filesystem) may have written
    return bool(fs.exists(inner))


def remove(path: str) -> None:
    """Remove the store at ``path`` recursively (a local folder or every object under a prefix).

    For URLs only ``path`` itself and keys under ``path/`` are removed, never siblings that
    merely share the prefix (the lock ``STORE.lock`` sits beside the store).
    """
    path = normalise(path)
    if not is_url(path):
        shutil.rmtree(path)
        return
    fs, inner = _filesystem(path)
    keys = [k for k in fs.find(inner) if k == inner or k.startswith(inner + "/")]
    if keys:
        fs.rm(keys)
    fs.invalidate_cache(inner)


def exists(path: str) -> bool:
    """Whether a batchseg store is at ``path``."""
    path = normalise(path)
    try:
        group = zarr.open_group(path, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError):
        return False
    return ATTRS_KEY in group.attrs


def create(
    path: str,
    plan: Plan,
    *,
    meta: Mapping[str, Any],
    header_errors: Mapping[str, str],
    label_dtypes: Sequence[np.dtype],
    stats_columns: Sequence[str],
    confidence: bool,
    overwrite: bool = False,
) -> zarr.Group:
    """Write the catalogue and empty arrays for ``plan``; the store is then all pending.

    ``header_errors`` maps image ids whose header failed to their error (marked failed).
    """
    path = normalise(path)
    if overwrite and path_exists(path):
        remove(path)
    try:
        root = zarr.open_group(path, mode="w-")
    except (FileExistsError, zarr.errors.ContainsGroupError, zarr.errors.ContainsArrayError):
        raise StoreError(f"{path} already exists; use --overwrite to replace it") from None
    except OSError as exc:
        raise StoreError(f"cannot create store {path}: {exc.strerror or exc}") from None
    # marks a store being created: a launcher killed before the end leaves it recognisable
    root.attrs[CREATING_KEY] = {"fingerprint": meta.get("fingerprint")}
    rows, S = plan.n_rows, plan.shard_size
    ids = np.full(rows, "", dtype=object)
    uris = np.full(rows, "", dtype=object)
    bucket = np.full(rows, -1, dtype=np.int32)
    bucket_row = np.full(rows, -1, dtype=np.int64)
    heights = np.zeros(rows, dtype=np.uint32)
    widths = np.zeros(rows, dtype=np.uint32)
    for shard in plan.shards:
        b = plan.buckets[shard.bucket]
        r0, n = shard.index * S, len(shard)
        ids[r0 : r0 + n] = shard.image_ids
        uris[r0 : r0 + n] = shard.uris
        bucket[r0 : r0 + n] = shard.bucket
        bucket_row[r0 : r0 + n] = np.arange(n) + shard.bucket_shard * b.shard_size
        heights[r0 : r0 + n], widths[r0 : r0 + n] = b.height, b.width
    big = max(1, min(rows, _CATALOGUE_CHUNK))
    cat = root.create_group("catalogue")
    for name, data in (("image_id", ids), ("uri", uris)):
        cat.create_array(name, shape=(rows,), chunks=(big,), dtype=str, fill_value="")[:] = data
    for name, data in (
        ("height", heights),
        ("width", widths),
        ("bucket", bucket),
        ("bucket_row", bucket_row),
    ):
        arr = cat.create_array(
            name, shape=(rows,), chunks=(big,), dtype=data.dtype, compressors=table_codec()
        )
        arr[:] = data
    # task-written arrays: chunk = one shard; unwritten chunks read as pending / no error
    status = cat.create_array(
        "status", shape=(rows,), chunks=(S,), dtype=np.int8, fill_value=PENDING
    )
    error = cat.create_array("error", shape=(rows,), chunks=(S,), dtype=str, fill_value="")
    if header_errors:
        _mark_header_failures(plan, status, error, header_errors)
    fault("creating")
    st = root.create_array(
        "stats",
        shape=(rows, len(stats_columns)),
        chunks=(S, len(stats_columns)),
        dtype=np.float64,
        fill_value=np.nan,
        compressors=table_codec(),
    )
    st.attrs["columns"] = list(stats_columns)
    labels = root.create_group("labels")
    conf = root.create_group("confidence") if confidence else None
    for b, dtype in zip(plan.buckets, label_dtypes, strict=True):
        if (b.height, b.width) == (0, 0):
            continue
        _bucket_array(labels, b, dtype)
        if conf is not None:
            _bucket_array(conf, b, np.dtype(np.uint8))
        if b.tile:
            _pyramid_arrays(root.require_group("pyramid").create_group(b.name), b, dtype)
    attrs = dict(meta)
    attrs.update(
        store_id=uuid.uuid4().hex,
        schema_version=SCHEMA_VERSION,
        shard_size=S,
        stats_columns=list(stats_columns),
        buckets=[
            {
                "index": b.index,
                "name": b.name,
                "height": b.height,
                "width": b.width,
                "shard_size": b.shard_size,
                "n_shards": b.n_shards,
                "dtype": str(dt),
                **(
                    {"tile": b.tile, "levels": pyramid_levels(b.height, b.width, b.tile)}
                    if b.tile
                    else {}
                ),
            }
            for b, dt in zip(plan.buckets, label_dtypes, strict=True)
        ],
        n_images=plan.n_images,
        n_shards=len(plan.shards),
        runs=[],
    )
    root.attrs.put({ATTRS_KEY: attrs})  # replaces the creating marker in one atomic write
    return root


def _pyramid_arrays(group: zarr.Group, b: Bucket, dtype: np.dtype) -> None:
    for level in pyramid_levels(b.height, b.width, b.tile):
        f = 1 << level
        group.create_array(
            str(level),
            shape=(1, -(-b.height // f), -(-b.width // f)),
            chunks=(1, b.tile >> level, b.tile >> level),
            dtype=dtype,
            fill_value=0,
            compressors=label_codec(dtype),
            dimension_names=("image", "y", "x"),
        )


def incomplete_fingerprint(path: str) -> str | None:
    """Fingerprint of a store whose creation was interrupted, None for anything else."""
    path = normalise(path)
    try:
        group = zarr.open_group(path, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError):
        return None
    if ATTRS_KEY in group.attrs:
        return None
    marker = group.attrs.get(CREATING_KEY)
    return marker.get("fingerprint") if isinstance(marker, dict) else None


def _mark_header_failures(
    plan: Plan, status: zarr.Array, error: zarr.Array, header_errors: Mapping[str, str]
) -> None:
    """Write failed status for images whose header could not be read (their chunks only)."""
    S = plan.shard_size
    for shard in plan.shards:
        failed = [i for i, image_id in enumerate(shard.image_ids) if image_id in header_errors]
        if not failed:
            continue
        block = np.full(S, EMPTY, dtype=np.int8)
        block[: len(shard)] = PENDING
        messages = np.full(S, "", dtype=object)
        for i in failed:
            block[i] = FAILED
            messages[i] = header_errors[shard.image_ids[i]]
        rows = slice(shard.index * S, (shard.index + 1) * S)
        error[rows] = messages
        status[rows] = block


#: Smallest chunk side of a tiled image's pyramid level.
_MIN_LEVEL_CHUNK = 64


def pyramid_levels(height: int, width: int, tile: int) -> list[int]:
    """Levels 1..L of a tiled image's label pyramid: halve until it fits in one tile."""
    levels: list[int] = []
    level = 1
    while (
        (tile >> level) >= _MIN_LEVEL_CHUNK
        and tile % (1 << level) == 0
        and max(height, width) > tile << (level - 1)
    ):
        levels.append(level)
        level += 1
    return levels


def _tiled_array(group: zarr.Group, b: Bucket, dtype: np.dtype, overwrite: bool = False) -> None:
    """The (1, H, W) label array of a tiled image, one chunk per tile."""
    group.create_array(
        b.name,
        shape=(1, b.height, b.width),
        chunks=(1, b.tile, b.tile),
        dtype=dtype,
        fill_value=0,
        compressors=label_codec(dtype),
        dimension_names=("image", "y", "x"),
        overwrite=overwrite,
    )


def _bucket_array(group: zarr.Group, b: Bucket, dtype: np.dtype) -> None:
    if b.tile:
        _tiled_array(group, b, dtype)
        return
    group.create_array(
        b.name,
        shape=(b.rows, b.height, b.width),
        chunks=(1, b.height, b.width),
        shards=(b.shard_size, b.height, b.width),
        dtype=dtype,
        fill_value=0,
        compressors=label_codec(dtype),
        dimension_names=("image", "y", "x"),
    )


def array(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` under ``group``; StoreError when that node is a group."""
    node = group[name]
    if not isinstance(node, zarr.Array):
        raise StoreError(f"store node {name!r} is a group, expected an array")
    return node


def read_array(group: zarr.Group, name: str, selection: Any = ..., dtype: Any = None) -> np.ndarray:
    """``selection`` of the array ``name`` as a NumPy array (0-d for a single element)."""
    return np.asarray(array(group, name)[selection], dtype=dtype)


def _group(group: zarr.Group, name: str) -> zarr.Group:
    node = group[name]
    if not isinstance(node, zarr.Group):
        raise StoreError(f"store node {name!r} is an array, expected a group")
    return node


def open_group(path: str, mode: str = "r") -> zarr.Group:
    """The store's root group; a clear error when ``path`` is not a batchseg store."""
    path = normalise(path)
    try:
        root = zarr.open_group(path, mode=mode)  # type: ignore[arg-type]
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise StoreError(f"no store at {path}") from None
    if ATTRS_KEY not in root.attrs:
        raise StoreError(f"{path} is a Zarr group but not a batchseg store")
    version = attributes(root).get("schema_version")
    if version != SCHEMA_VERSION:
        raise StoreError(f"{path} has store schema {version}; this batchseg reads {SCHEMA_VERSION}")
    return root


def attributes(root: zarr.Group) -> dict[str, Any]:
    """The store's batchseg attributes."""
    attrs = root.attrs[ATTRS_KEY]
    if not isinstance(attrs, Mapping):
        raise StoreError(f"malformed store attributes: {ATTRS_KEY!r} is not a mapping")
    return dict(attrs)


def _stat_names(root: zarr.Group) -> list[str]:
    """Names of the ``stats`` columns."""
    columns = array(root, "stats").attrs["columns"]
    if not isinstance(columns, list | tuple):
        raise StoreError("malformed store: stats columns are not a list")
    return [str(c) for c in columns]


def update_attributes(root: zarr.Group, **changes: Any) -> None:
    """Merge ``changes`` into the batchseg attributes (client only)."""
    attrs = attributes(root)
    attrs.update(changes)
    root.attrs[ATTRS_KEY] = attrs


def load_plan(root: zarr.Group) -> Plan:
    """Rebuild the stored plan from the catalogue (for resuming)."""
    attrs = attributes(root)
    S = int(attrs["shard_size"])
    buckets = tuple(
        Bucket(
            b["index"], b["height"], b["width"], b["shard_size"], b["n_shards"], b.get("tile", 0)
        )
        for b in attrs["buckets"]
    )
    cat = _group(root, "catalogue")
    ids = read_array(cat, "image_id", slice(None))
    uris = read_array(cat, "uri", slice(None))
    bucket = read_array(cat, "bucket", slice(None))
    bucket_row = read_array(cat, "bucket_row", slice(None))
    shards = []
    for k in range(int(attrs["n_shards"])):
        sl = slice(k * S, (k + 1) * S)
        used = bucket[sl] >= 0
        n = int(used.sum())
        b = int(bucket[sl][0])
        shards.append(
            Shard(
                index=k,
                bucket=b,
                bucket_shard=int(bucket_row[sl][0]) // buckets[b].shard_size,
                image_ids=tuple(str(x) for x in ids[sl][:n]),
                uris=tuple(str(x) for x in uris[sl][:n]),
            )
        )
    return Plan(S, buckets, tuple(shards))


def shard_status(root: zarr.Group) -> np.ndarray:
    """Status per table row (task-written arrays); padding rows read EMPTY."""
    status = read_array(root, "catalogue/status", slice(None))
    bucket = read_array(root, "catalogue/bucket", slice(None))
    return np.where(bucket >= 0, status, EMPTY).astype(np.int8)


@lru_cache(maxsize=64)
def _open_array(path: str, name: str, store_id: str) -> zarr.Array:
    """Opened arrays, cached per worker process; ``store_id`` changes when a store is replaced.

    ``path`` may be a URL: the array then keeps its fsspec filesystem (and connection pool)
    for the life of the worker process, keyed by the URL string.
    """
    return zarr.open_array(normalise(path), path=name, mode="r+")


def write_shard(
    path: str,
    store_id: str,
    plan_shard_size: int,
    bucket: Bucket,
    shard: Shard,
    block: ShardBlock,
) -> None:
    """Write one shard's results: labels and statistics first, status last.

    A crash before the status write leaves the rows pending, so a rerun redoes them.
    """
    rows = slice(shard.index * plan_shard_size, (shard.index + 1) * plan_shard_size)
    brows = slice(
        shard.bucket_shard * bucket.shard_size, (shard.bucket_shard + 1) * bucket.shard_size
    )
    if block.labels is not None and bucket.height > 0:
        _open_array(path, f"labels/{bucket.name}", store_id)[brows] = block.labels
    if block.confidence is not None and bucket.height > 0:
        _open_array(path, f"confidence/{bucket.name}", store_id)[brows] = block.confidence
    _open_array(path, "stats", store_id)[rows] = block.stats
    _open_array(path, "catalogue/error", store_id)[rows] = block.errors
    _open_array(path, "catalogue/status", store_id)[rows] = block.status


def write_tile(
    path: str,
    store_id: str,
    bucket: Bucket,
    window: tuple[slice, slice],
    labels: np.ndarray,
    confidence: np.ndarray | None = None,
    *,
    scratch: bool = False,
) -> None:
    """Write one tile (whole chunks) of a tiled image, and its pyramid blocks.

    ``window`` starts on a multiple of the tile side, so every level's block is whole chunks.
    ``scratch``: local region ids before stitching go to ``scratch/<bucket>`` instead, so the
    relabelling pass reads them there and can be retried safely.
    """
    ys, xs = window
    if scratch:
        _open_array(path, f"scratch/{bucket.name}", store_id)[0, ys, xs] = labels
        return
    _open_array(path, f"labels/{bucket.name}", store_id)[0, ys, xs] = labels
    if confidence is not None:
        _open_array(path, f"confidence/{bucket.name}", store_id)[0, ys, xs] = confidence
    for level in pyramid_levels(bucket.height, bucket.width, bucket.tile):
        f = 1 << level
        sub = labels[::f, ::f]
        y0, x0 = ys.start // f, xs.start // f
        _open_array(path, f"pyramid/{bucket.name}/{level}", store_id)[
            0, y0 : y0 + sub.shape[0], x0 : x0 + sub.shape[1]
        ] = sub


def read_scratch_tile(
    path: str, store_id: str, bucket: Bucket, window: tuple[slice, slice]
) -> np.ndarray:
    """One tile of a tiled image's local (unstitched) region ids."""
    ys, xs = window
    return np.asarray(_open_array(path, f"scratch/{bucket.name}", store_id)[0, ys, xs])


def create_scratch(path: str, bucket: Bucket, dtype: np.dtype) -> None:
    """(Re)create the scratch array of a tiled image (client, before its tile tasks)."""
    root = zarr.open_group(normalise(path), mode="r+")
    _tiled_array(root.require_group("scratch"), bucket, dtype, overwrite=True)
    _open_array.cache_clear()  # workers in this process must not keep a replaced array


def drop_scratch(path: str, bucket: Bucket) -> None:
    """Delete a tiled image's scratch array once its labels are final."""
    root = zarr.open_group(normalise(path), mode="r+")
    if "scratch" in root and bucket.name in _group(root, "scratch"):
        del _group(root, "scratch")[bucket.name]


def consolidate(root: zarr.Group, status: np.ndarray | None = None) -> None:
    """Write ``table/``: the per-image table without padding rows, in large chunks.

    The task-written arrays are chunked one shard each (thousands of small objects); this copy
    makes whole-table reads and queries fast. Called by the launcher after a run; a run
    invalidates it when it starts, and readers then fall back to the per-shard arrays.
    """
    bucket = read_array(root, "catalogue/bucket")
    real = bucket >= 0
    n = int(real.sum())
    big = max(1, min(n, _CATALOGUE_CHUNK * 16))
    ncols = array(root, "stats").shape[1]
    table = root.require_group("table")

    def put(name: str, data: np.ndarray, chunks: tuple[int, ...], dtype: Any, fill: Any) -> None:
        table.create_array(
            name,
            shape=data.shape,
            chunks=chunks,
            dtype=dtype,
            fill_value=fill,
            compressors=None if dtype is str else table_codec(),
            overwrite=True,
        )[...] = data

    if status is None:
        status = shard_status(root)
    put("status", status[real], (big,), np.int8, PENDING)
    for name in ("height", "width"):
        put(name, read_array(root, f"catalogue/{name}")[real], (big,), np.uint32, 0)
    small = (max(1, min(n, _CATALOGUE_CHUNK)),)
    for source, name in (("catalogue/error", "error"), ("catalogue/uri", "uri")):
        put(name, read_array(root, source, dtype=object)[real], small, str, "")
    # one chunk column per statistic: a query reads only the columns it uses
    stats = read_array(root, "stats")[real]
    put("stats", stats.reshape(n, ncols), (big, 1), np.float64, np.nan)
    # image ids as Arrow-style offsets + UTF-8 bytes: decoded without a Python str per row
    ids = read_array(root, "catalogue/image_id", dtype=object)[real]
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
    update_attributes(root, consolidated=True)


def invalidate_consolidated(root: zarr.Group) -> None:
    """Mark ``table/`` stale before tasks write (readers then use the per-shard arrays)."""
    if attributes(root).get("consolidated"):
        update_attributes(root, consolidated=False)


def _consolidated(root: zarr.Group) -> bool:
    return bool(attributes(root).get("consolidated")) and "table" in root


def read_table(
    root: zarr.Group, columns: Sequence[str] | None = None, *, include_empty: bool = False
) -> pd.DataFrame:
    """One row per image: id, status, error, size, every statistic and uri.

    ``columns`` limits what is read (``image_id`` and ``status`` always come).
    ``include_empty`` keeps the padding rows of short shards (status ``empty``).
    """
    stat_names = _stat_names(root)
    wanted = None if columns is None else set(columns)
    picked = [i for i, name in enumerate(stat_names) if wanted is None or name in wanted]
    if _consolidated(root) and not include_empty:
        t = _group(root, "table")
        keep: Any = slice(None)
        status = read_array(t, "status")
        ids = _arrow_ids(t)
        source = {name: array(t, name) for name in ("error", "height", "width", "uri")}
        stats = array(t, "stats")
    else:
        cat = _group(root, "catalogue")
        bucket = read_array(cat, "bucket")
        keep = slice(None) if include_empty else bucket >= 0
        status = np.where(bucket >= 0, read_array(cat, "status"), EMPTY)[keep]
        ids = read_array(cat, "image_id", dtype=object)[keep]
        source = {name: array(cat, name) for name in ("error", "height", "width", "uri")}
        stats = array(root, "stats")
    data: dict[str, Any] = {
        "image_id": ids,
        "status": pd.Categorical.from_codes(status, categories=[STATUS_NAMES[i] for i in range(4)]),
    }
    for name in ("error", "height", "width"):
        if wanted is None or name in wanted:
            data[name] = np.asarray(source[name][...])[keep]
    if picked:
        if len(picked) == len(stat_names):
            block = np.asarray(stats[...])
        else:
            cols = np.asarray(picked, dtype=np.intp)
            block = np.asarray(stats.get_orthogonal_selection((slice(None), cols)))
        block = block[keep]
        for j, i in enumerate(picked):
            data[stat_names[i]] = block[:, j]
    if wanted is None or "uri" in wanted:
        data["uri"] = np.asarray(source["uri"][...], dtype=object)[keep]
    return pd.DataFrame(data)


def _arrow_ids(table: zarr.Group) -> Any:
    """Image ids from the consolidated offsets + bytes, as a pandas Arrow string array."""
    import pyarrow as pa

    offsets = read_array(table, "image_id_offsets")
    data = read_array(table, "image_id_bytes")[: int(offsets[-1])]
    array = pa.LargeStringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data.tobytes())
    )
    return pd.arrays.ArrowExtensionArray(array)


def table_columns(root: zarr.Group) -> list[str]:
    """Every column :func:`read_table` can return."""
    return [
        "image_id",
        "status",
        "error",
        "height",
        "width",
        *_stat_names(root),
        "uri",
    ]


def find_row(root: zarr.Group, image_id: str) -> int:
    """Table row of ``image_id``; StoreError when absent."""
    ids = read_array(root, "catalogue/image_id", slice(None), dtype=object)
    hits = np.flatnonzero(ids == image_id)
    if hits.size == 0:
        raise StoreError(f"image {image_id!r} is not in the store")
    return int(hits[0])


def read_labels(
    root: zarr.Group, image_id: str, *, confidence: bool = False, level: int = 0
) -> np.ndarray:
    """The stored label map (or confidence map) of one image, at its original size.

    ``level`` > 0 reads a tiled image's label pyramid (``labels[::2^level, ::2^level]``).
    """
    row = find_row(root, image_id)
    cat = _group(root, "catalogue")
    status = int(read_array(cat, "status", row))
    if status != DONE:
        error = read_array(cat, "error", row).item()
        detail = f": {error}" if error else ""
        raise StoreError(f"image {image_id!r} is {STATUS_NAMES[status]}{detail}")
    attrs = attributes(root)
    b = attrs["buckets"][int(read_array(cat, "bucket", row))]
    group = "confidence" if confidence else "labels"
    if confidence and group not in root:
        raise StoreError("this store has no confidence maps (not a semantic method)")
    if level:
        levels = b.get("levels") or []
        if confidence or level not in levels:
            have = ", ".join(map(str, levels)) or "none (not a tiled image)"
            raise StoreError(
                f"image {image_id!r} has no stored label level {level}; levels: {have}"
            )
        return read_array(root, f"pyramid/{b['name']}/{level}", 0)
    return read_array(root, f"{group}/{b['name']}", int(read_array(cat, "bucket_row", row)))
