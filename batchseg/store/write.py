"""Task writes (whole shards and tiles) and the client's row updates.

Tasks write whole chunks/shards only, and every chunk is stored, all-fill ones included, so
a missing chunk is always damage (see :func:`batchseg.store.read.read_checked`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import zarr

from batchseg.core.plan import Bucket, Shard
from batchseg.store import objects
from batchseg.store.layout import (
    DONE,
    EMPTY,
    FAILED,
    PENDING,
    SCRATCH,
    STATS,
    catalogue_node,
    map_node,
    pyramid_levels,
    pyramid_node,
    scratch_node,
    tiled_array,
)
from batchseg.store.paths import normalise_path
from batchseg.store.read import array, normalise_status, open_group, read_array, subgroup


@dataclass(frozen=True)
class ShardBlock:
    """Everything one task writes for one shard."""

    labels: np.ndarray | None  # (bucket shard size, H, W)
    confidence: np.ndarray | None
    stats: np.ndarray  # (S, columns) float64
    status: np.ndarray  # (S,) int8
    errors: np.ndarray  # (S,) object (str)
    #: the shard's object table (columns), None when the job measures no objects
    objects: Mapping[str, np.ndarray] | None = None
    #: instance methods: the class map of the shard's images (like ``labels``)
    classes: np.ndarray | None = None


@lru_cache(maxsize=64)
def _open_array(path: str, name: str, store_id: str) -> zarr.Array:
    """Opened arrays, cached per worker process; ``store_id`` changes when a store is replaced.

    ``path`` may be a URL: the array then keeps its fsspec filesystem (and connection pool)
    for the life of the worker process, keyed by the URL string. Writes store all-fill chunks
    as well, so that a chunk missing later is recognisably lost, never read as zeros.
    """
    arr = zarr.open_array(normalise_path(path), path=name, mode="r+")
    return arr.with_config({"write_empty_chunks": True})


def write_shard(
    path: str,
    store_id: str,
    plan_shard_size: int,
    bucket: Bucket,
    shard: Shard,
    block: ShardBlock,
) -> None:
    """Write one shard's results: labels, statistics and object table first, status last.

    A crash before the status write leaves the rows pending, so a rerun redoes them.
    """
    rows = slice(shard.index * plan_shard_size, (shard.index + 1) * plan_shard_size)
    brows = slice(
        shard.bucket_shard * bucket.shard_size, (shard.bucket_shard + 1) * bucket.shard_size
    )
    if block.labels is not None and bucket.height > 0:
        _open_array(path, map_node(bucket.name), store_id)[brows] = block.labels
    if block.confidence is not None and bucket.height > 0:
        _open_array(path, map_node(bucket.name, confidence=True), store_id)[brows] = (
            block.confidence
        )
    if block.classes is not None and bucket.height > 0:
        _open_array(path, map_node(bucket.name, classes=True), store_id)[brows] = block.classes
    _open_array(path, STATS, store_id)[rows] = block.stats
    if block.objects is not None:
        objects.write_part(path, objects.shard_part_name(shard.index), block.objects)
    _open_array(path, catalogue_node("error"), store_id)[rows] = block.errors
    _open_array(path, catalogue_node("status"), store_id)[rows] = block.status


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
        _open_array(path, scratch_node(bucket.name), store_id)[0, ys, xs] = labels
        return
    _open_array(path, map_node(bucket.name), store_id)[0, ys, xs] = labels
    if confidence is not None:
        _open_array(path, map_node(bucket.name, confidence=True), store_id)[0, ys, xs] = confidence
    for level in pyramid_levels(bucket.height, bucket.width, bucket.tile):
        f = 1 << level
        sub = labels[::f, ::f]
        y0, x0 = ys.start // f, xs.start // f
        _open_array(path, pyramid_node(bucket.name, level), store_id)[
            0, y0 : y0 + sub.shape[0], x0 : x0 + sub.shape[1]
        ] = sub


def read_tile(path: str, store_id: str, bucket: Bucket, window: tuple[slice, slice]) -> np.ndarray:
    """A window of a tiled image's final labels (any window, not only whole tiles)."""
    ys, xs = window
    return np.asarray(_open_array(path, map_node(bucket.name), store_id)[0, ys, xs])


def read_scratch_tile(
    path: str, store_id: str, bucket: Bucket, window: tuple[slice, slice]
) -> np.ndarray:
    """One tile of a tiled image's local (unstitched) region ids."""
    ys, xs = window
    return np.asarray(_open_array(path, scratch_node(bucket.name), store_id)[0, ys, xs])


def create_scratch(path: str, bucket: Bucket, dtype: np.dtype) -> None:
    """(Re)create the scratch array of a tiled image (client, before its tile tasks)."""
    root = zarr.open_group(normalise_path(path), mode="r+")
    tiled_array(root.require_group(SCRATCH), bucket, dtype, overwrite=True)
    _open_array.cache_clear()  # workers in this process must not keep a replaced array


def drop_scratch(path: str, bucket: Bucket) -> None:
    """Delete a tiled image's scratch array once its labels are final."""
    root = zarr.open_group(normalise_path(path), mode="r+")
    if SCRATCH in root and bucket.name in subgroup(root, SCRATCH):
        del subgroup(root, SCRATCH)[bucket.name]


def record_shard_failure(path: str, plan_shard_size: int, shard: Shard, reason: str) -> None:
    """Mark the unfinished rows of a shard whose task died as failed, with ``reason`` (client).

    Pending, failed and damaged rows of the shard become failed; done rows stay done.
    """
    S = plan_shard_size
    rows = slice(shard.index * S, (shard.index + 1) * S)
    root = open_group(path, mode="r+")
    status = read_array(root, catalogue_node("status"), rows)
    errors = read_array(root, catalogue_node("error"), rows, dtype=object)
    seen = normalise_status(status)
    redo = seen != DONE  # pending, failed or damaged
    redo[len(shard) :] = False
    errors[redo] = reason
    status[redo] = FAILED
    array(root, catalogue_node("error"))[rows] = errors
    array(root, catalogue_node("status"))[rows] = status


def mark_pending(root: zarr.Group, rows: Sequence[int], shard_size: int) -> int:
    """Set table ``rows`` back to pending with no error (client), one shard chunk at a time.

    A status or error chunk that cannot be read any more (checksum) is rewritten whole: its
    real rows pending. Returns how many rows were marked.
    """
    if not len(rows):
        return 0
    S = int(shard_size)
    bucket = read_array(root, catalogue_node("bucket"))
    status_arr = array(root, catalogue_node("status"))
    error_arr = array(root, catalogue_node("error"))
    by_shard: dict[int, list[int]] = {}
    for r in sorted(set(int(r) for r in rows)):
        by_shard.setdefault(r // S, []).append(r)
    for k, members in by_shard.items():
        sl = slice(k * S, (k + 1) * S)
        real = bucket[sl] >= 0
        try:
            status = np.asarray(status_arr[sl]).astype(np.int8)
            errors = np.asarray(error_arr[sl], dtype=object)
        except (ValueError, RuntimeError):  # the chunk itself is damaged: rebuild it
            status = np.where(real, PENDING, EMPTY).astype(np.int8)
            errors = np.full(real.shape, "", dtype=object)
        for r in members:
            status[r - k * S] = PENDING
            errors[r - k * S] = ""
        error_arr[sl] = errors
        status_arr[sl] = status
    return len({int(r) for r in rows})
