"""Planning: group images of one shape into buckets and cut buckets into shards.

Pure functions, no Dask. Table rows are aligned to shards: shard ``k`` owns rows
``[k * shard_size, (k + 1) * shard_size)`` of every per-image table, so a task writes whole
chunks and two tasks never touch the same object. Rows past a short shard's images are
padding (status ``empty``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from batchseg.core.plan_types import Bucket, Shard
from batchseg.core.refcolumns import RefColumns
from batchseg.core.refs import ImageRef, paused_gc

__all__ = [
    "MAX_TASKS",
    "Bucket",
    "Plan",
    "Shard",
    "auto_shard_size",
    "extend_plan",
    "plan_shards",
]

#: Pixels one task holds at most (labels of the whole shard are assembled in memory).
DEFAULT_MAX_SHARD_PIXELS = 64 * 1024 * 1024
#: Shape bucket for images whose header could not be read.
UNREADABLE = (0, 0)
#: Images with more pixels than this are segmented tile by tile (``--tile-threshold``).
#: 2^26 = 67 Mpx (8192 x 8192): above every consumer camera (24-61 Mpx), so ordinary photos
#: are always segmented whole, and below where whole-image kernels need several GiB (SLIC
#: peaks at ~45 bytes per RGB pixel, k-means at ~70: README "Gigapixel images").
DEFAULT_TILE_THRESHOLD = 1 << 26
#: Side of a tile (and of a label chunk of a tiled image), pixels.
DEFAULT_TILE_SIZE = 2048


@dataclass(frozen=True)
class Plan:
    """Buckets and shards of a collection; ``shard_size`` is the table chunk length.

    ``shards`` is a tuple, or a :class:`~batchseg.core.shard_table.ShardTable` (arrays that
    make each :class:`Shard` when asked) when the plan was made from columns.
    """

    shard_size: int
    buckets: tuple[Bucket, ...]
    shards: Sequence[Shard]

    @property
    def n_rows(self) -> int:
        return len(self.shards) * self.shard_size

    @property
    def n_images(self) -> int:
        return int(self.lengths().sum())

    def lengths(self) -> np.ndarray:
        """Images in each shard (int64), without making the shards."""
        table = getattr(self.shards, "lengths", None)
        if table is not None:
            return np.asarray(table(), dtype=np.int64)
        return np.fromiter((len(s) for s in self.shards), np.int64, len(self.shards))

    def shard_buckets(self) -> np.ndarray:
        """Each shard's bucket index (int64), without making the shards."""
        table = getattr(self.shards, "bucket", None)
        if isinstance(table, np.ndarray):
            return table.astype(np.int64)
        return np.fromiter((s.bucket for s in self.shards), np.int64, len(self.shards))

    def row_of(self, shard: Shard, slot: int) -> int:
        """Global table row of a shard's ``slot``-th image."""
        return shard.index * self.shard_size + slot

    def bucket_row_of(self, shard: Shard, slot: int) -> int:
        """Row of that image in its bucket's label array."""
        return shard.bucket_shard * self.buckets[shard.bucket].shard_size + slot


#: Most shard tasks the automatic shard size gives a job. The scheduler spends about 1.6 ms
#: of its CPU per task (measured on a 2-core machine, issue 29), so 10^5 tasks are under
#: 3 minutes of scheduler time for the whole job; above 128 x 10^5 = 1.28 x 10^7 images the
#: shards grow instead (10^8 images: shards of 1,000, 10^5 tasks; not 781,250 tasks of 128).
MAX_TASKS = 100_000


def auto_shard_size(
    n_images: int, n_slots: int, *, per_slot: int = 8, cap: int = 128, max_tasks: int = MAX_TASKS
) -> int:
    """Shard size giving about ``per_slot`` tasks per worker thread, within [1, cap], and at
    least ``n_images / max_tasks``: past ``cap * max_tasks`` images shards grow with the
    collection so that the task count stays bounded."""
    if n_images <= 0:
        return 1
    size = max(1, min(cap, math.ceil(n_images / max(1, n_slots * per_slot))))
    return max(size, math.ceil(n_images / max(1, max_tasks)))


def plan_shards(
    refs: Sequence[ImageRef],
    shapes: Sequence[tuple[int, ...]] | None,
    shard_size: int,
    *,
    max_shard_pixels: int = DEFAULT_MAX_SHARD_PIXELS,
    tile_threshold: int | None = None,
    tile_size: int = DEFAULT_TILE_SIZE,
) -> Plan:
    """Bucket ``refs`` by shape (``shapes[i]`` is image i's (height, width)) and shard them.

    Buckets are ordered by shape, images within a bucket by id, so the plan is deterministic.
    Large images get smaller shards so one task holds at most ``max_shard_pixels`` pixels.
    Images of more than ``tile_threshold`` pixels each get a bucket (and a one-image shard) of
    their own, segmented in tiles of ``tile_size``; they come after the ordinary buckets.

    ``refs`` given as :class:`~batchseg.core.refcolumns.RefColumns` are planned as arrays (the
    same plan; its shards a :class:`~batchseg.core.shard_table.ShardTable`); there ``shapes``
    may be None to use the sizes the columns hold.
    """
    if isinstance(refs, RefColumns):
        from batchseg.core.shard_table import plan_columns

        if shard_size < 1:
            raise ValueError("shard size must be >= 1")
        buckets, table = plan_columns(
            refs, shapes, shard_size, max_shard_pixels, tile_threshold, tile_size
        )
        return Plan(shard_size, tuple(buckets), table)
    if shapes is None:
        raise ValueError("shapes are needed for refs that are not columns")
    with paused_gc():
        return _plan_shards(refs, shapes, shard_size, max_shard_pixels, tile_threshold, tile_size)


def _plan_shards(
    refs: Sequence[ImageRef],
    shapes: Sequence[tuple[int, ...]],
    shard_size: int,
    max_shard_pixels: int,
    tile_threshold: int | None,
    tile_size: int,
) -> Plan:
    if shard_size < 1:
        raise ValueError("shard size must be >= 1")
    if len(refs) != len(shapes):
        raise ValueError("refs and shapes differ in length")
    groups: dict[tuple[int, int], list[ImageRef]] = defaultdict(list)
    tiled: list[tuple[ImageRef, int, int]] = []
    for ref, shape in zip(refs, shapes, strict=True):
        h, w = int(shape[0]), int(shape[1])
        # a third element False: too big, but not readable in windows (decoded whole)
        windowed = len(shape) < 3 or bool(shape[2])  # type: ignore[misc]
        if tile_threshold is not None and h * w > tile_threshold and windowed:
            tiled.append((ref, h, w))
        else:
            groups[(h, w)].append(ref)
    buckets: list[Bucket] = []
    shards: list[Shard] = []
    for b_index, (height, width) in enumerate(sorted(groups)):
        members = sorted(groups[(height, width)], key=lambda r: r.image_id)
        pixels = max(1, height * width)
        size = max(1, min(shard_size, len(members), max_shard_pixels // pixels))
        n_shards = math.ceil(len(members) / size)
        buckets.append(Bucket(b_index, height, width, size, n_shards))
        for j in range(n_shards):
            part = members[j * size : (j + 1) * size]
            shards.append(
                Shard(
                    index=len(shards),
                    bucket=b_index,
                    bucket_shard=j,
                    image_ids=tuple(r.image_id for r in part),
                    uris=tuple(r.uri for r in part),
                )
            )
    for ref, h, w in sorted(tiled, key=lambda item: item[0].image_id):
        b_index = len(buckets)
        buckets.append(Bucket(b_index, h, w, 1, 1, tile=tile_size))
        shards.append(Shard(len(shards), b_index, 0, (ref.image_id,), (ref.uri,)))
    return Plan(shard_size, tuple(buckets), tuple(shards))


def extend_plan(
    plan: Plan,
    refs: Sequence[ImageRef],
    shapes: Sequence[tuple[int, ...]],
    *,
    max_shard_pixels: int = DEFAULT_MAX_SHARD_PIXELS,
    tile_threshold: int | None = None,
    tile_size: int = DEFAULT_TILE_SIZE,
) -> Plan:
    """``plan`` with new images ``refs`` (of ``shapes``) in new shards after its last one.

    Existing shards keep their index and rows. New images of a shape join the bucket of that
    shape with the largest shards (as new shards at its end) when its shard size is at least
    what a fresh plan of them would choose, else they get a new bucket (a new label array).
    Huge images get a tiled bucket each, after the ordinary ones, as in :func:`plan_shards`.
    """
    with paused_gc():
        fresh = _plan_shards(
            refs, shapes, plan.shard_size, max_shard_pixels, tile_threshold, tile_size
        )
    buckets = list(plan.buckets)
    shards = list(plan.shards)
    by_shape: dict[tuple[int, int], Bucket] = {}
    for b in plan.buckets:  # the bucket with the largest shards of each shape
        key = (b.height, b.width)
        if not b.tile and (key not in by_shape or b.shard_size > by_shape[key].shard_size):
            by_shape[key] = b
    for nb in fresh.buckets:
        mine = [s for s in fresh.shards if s.bucket == nb.index]
        old = None if nb.tile else by_shape.get((nb.height, nb.width))
        if old is not None and old.shard_size >= nb.shard_size:
            target, first = old, old.n_shards
            members = [i for s in mine for i in zip(s.image_ids, s.uris, strict=True)]
            size = old.shard_size
            parts = [members[j : j + size] for j in range(0, len(members), size)]
            buckets[old.index] = replace(old, n_shards=old.n_shards + len(parts))
        else:
            target, first = replace(nb, index=len(buckets)), 0
            parts = [list(zip(s.image_ids, s.uris, strict=True)) for s in mine]
            buckets.append(target)
        for j, part in enumerate(parts):
            shards.append(
                Shard(
                    index=len(shards),
                    bucket=target.index,
                    bucket_shard=first + j,
                    image_ids=tuple(i for i, _ in part),
                    uris=tuple(u for _, u in part),
                )
            )
    return Plan(plan.shard_size, tuple(buckets), tuple(shards))
