"""A plan's shards as arrays: what :func:`batchseg.core.plan.plan_shards` makes of columns.

:class:`ShardTable` is a read-only ``Sequence[Shard]`` over the collection's
:class:`~batchseg.core.refcolumns.RefColumns`: image ``order[starts[k]:starts[k + 1]]`` make
shard ``k``. A :class:`~batchseg.core.plan.Shard` (with its ids and uris as Python strings)
is made only when asked for, so a plan of 10^7 images holds about 4 bytes an image beside
the columns, and the launcher makes the Python objects of a window of shards at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, overload

import numpy as np

from batchseg.core.plan_types import Bucket, Shard

if TYPE_CHECKING:
    from batchseg.core.plan import Plan
from batchseg.core.refcolumns import RefColumns

#: Shards whose status rows are looked at together when finding the pending ones.
PENDING_BLOCK = 4096


class ShardTable(Sequence[Shard]):
    """Shards of a plan as arrays (see the module docstring)."""

    def __init__(
        self,
        refs: RefColumns,
        order: np.ndarray,
        starts: np.ndarray,
        bucket: np.ndarray,
        bucket_shard: np.ndarray,
    ) -> None:
        self.refs = refs
        self.order = order
        self.starts = starts
        self.bucket = bucket
        self.bucket_shard = bucket_shard

    def __len__(self) -> int:
        return int(self.bucket.size)

    @overload
    def __getitem__(self, index: int) -> Shard: ...
    @overload
    def __getitem__(self, index: slice) -> list[Shard]: ...
    def __getitem__(self, index: int | slice) -> Shard | list[Shard]:
        if isinstance(index, slice):
            return [self[k] for k in range(len(self))[index]]
        k = range(len(self))[index]
        part = self.refs.take(self.order[self.starts[k] : self.starts[k + 1]])
        return Shard(
            index=k,
            bucket=int(self.bucket[k]),
            bucket_shard=int(self.bucket_shard[k]),
            image_ids=tuple(part.ids.to_pylist()),
            uris=tuple(part.uri_array().to_pylist()),
        )

    def __iter__(self) -> Iterator[Shard]:
        for k in range(len(self)):
            yield self[k]

    def lengths(self) -> np.ndarray:
        """Images in each shard."""
        return np.diff(self.starts)

    def positions(self) -> np.ndarray:
        """Each image's (shard, slot), in plan order: two int64 arrays stacked."""
        lengths = self.lengths()
        shard = np.repeat(np.arange(len(self), dtype=np.int64), lengths)
        slot = np.arange(self.order.size, dtype=np.int64) - np.repeat(self.starts[:-1], lengths)
        return np.stack([shard, slot])


class ShardSelection(Sequence[Shard]):
    """Shards ``indices`` of a plan's ``shards``, each made when asked: a to-do list of 10^5
    shards holds an integer for each until the runner submits it."""

    def __init__(self, shards: Sequence[Shard], indices: np.ndarray, lengths: np.ndarray) -> None:
        self.shards = shards
        self.indices = np.asarray(indices, dtype=np.int64)
        self.lengths = np.asarray(lengths, dtype=np.int64)  # of every shard of the plan

    def __len__(self) -> int:
        return int(self.indices.size)

    @overload
    def __getitem__(self, index: int) -> Shard: ...
    @overload
    def __getitem__(self, index: slice) -> ShardSelection: ...
    def __getitem__(self, index: int | slice) -> Shard | ShardSelection:
        if isinstance(index, slice):
            return ShardSelection(self.shards, self.indices[index], self.lengths)
        return self.shards[int(self.indices[index])]

    def __iter__(self) -> Iterator[Shard]:
        for k in self.indices.tolist():
            yield self.shards[k]

    def images(self) -> int:
        """Images in the selected shards."""
        return int(self.lengths[self.indices].sum())

    def where(self, keep: np.ndarray) -> ShardSelection:
        """The selected shards for which ``keep`` (one bool per shard of the plan) holds."""
        return ShardSelection(self.shards, self.indices[keep[self.indices]], self.lengths)


def pending_shards(plan: Plan, wanted: np.ndarray) -> ShardSelection:
    """The shards of ``plan`` with a row ``wanted`` (one bool per table row; padding rows past
    a shard's images are not looked at), read a block of shards at a time."""
    S, lengths = plan.shard_size, plan.lengths()
    n = len(lengths)
    wanted = np.asarray(wanted, dtype=bool)
    if wanted.size < n * S:  # rows the status does not reach are not wanted
        wanted = np.concatenate([wanted, np.zeros(n * S - wanted.size, bool)])
    keep = np.zeros(n, bool)
    slots = np.arange(S)
    for a in range(0, n, PENDING_BLOCK):
        b = min(n, a + PENDING_BLOCK)
        rows = wanted[a * S : b * S].reshape(b - a, S)
        keep[a:b] = (rows & (slots < lengths[a:b, None])).any(axis=1)
    return ShardSelection(plan.shards, np.flatnonzero(keep), lengths)


def plan_columns(
    refs: RefColumns,
    shapes: Sequence[tuple[int, ...]] | None,
    shard_size: int,
    max_shard_pixels: int,
    tile_threshold: int | None,
    tile_size: int,
) -> tuple[list[Bucket], ShardTable]:
    """Buckets and shards of ``refs`` (sorted by id), as :func:`plan_shards` makes them.

    ``shapes`` are (height, width[, windowed]) per image, or None to take the sizes the
    columns hold. Every bucket's images keep id order; tiled images come last, one bucket each.
    """
    heights, widths, windowed = _shape_columns(refs, shapes)
    by_id = _id_order(refs)
    if by_id is not None:  # images within a bucket go in id order
        refs = refs.take(by_id)
        heights, widths, windowed = heights[by_id], widths[by_id], windowed[by_id]
    key = heights.astype(np.int64)
    key <<= 32
    key |= widths.astype(np.int64)
    order = np.argsort(key, kind="stable").astype(_index_dtype(len(refs)))  # shape, then id
    sorted_keys = key[order]
    del key
    firsts = np.flatnonzero(np.diff(sorted_keys)) + 1 if len(order) else np.zeros(0, np.int64)
    edges = [0, *firsts.tolist(), len(order)] if len(order) else [0]
    shapes_of = sorted_keys[edges[:-1]].tolist()
    del sorted_keys
    plain: list[tuple[int, np.ndarray]] = []  # (shape key, members) per bucket
    huge: list[np.ndarray] = []
    for a, b, k in zip(edges[:-1], edges[1:], shapes_of, strict=True):
        members = order[a:b]
        if tile_threshold is not None and (k >> 32) * (k & 0xFFFFFFFF) > tile_threshold:
            big = windowed[members]
            huge.append(members[big])
            members = members[~big]
        if len(members):
            plain.append((k, members))
    if huge:  # rare: the order without the tiled images, which come last in id order
        tiled = np.sort(np.concatenate(huge))
        order = np.concatenate([*(m for _, m in plain), tiled]).astype(order.dtype)
    else:
        tiled = order[:0]
    del shapes_of
    buckets: list[Bucket] = []
    starts: list[np.ndarray] = []
    bucket_of: list[np.ndarray] = []
    bucket_shard: list[np.ndarray] = []
    first = 0
    for b_index, (k, members) in enumerate(plain):
        height, width, count = k >> 32, k & 0xFFFFFFFF, len(members)
        size = max(1, min(shard_size, count, max_shard_pixels // max(1, height * width)))
        n_shards = math.ceil(count / size)
        buckets.append(Bucket(b_index, height, width, size, n_shards))
        starts.append(first + np.arange(n_shards, dtype=np.int64) * size)
        bucket_of.append(np.full(n_shards, b_index, np.int32))
        bucket_shard.append(np.arange(n_shards, dtype=np.int64))
        first += count
    for i in tiled.tolist():
        b_index = len(buckets)
        buckets.append(Bucket(b_index, int(heights[i]), int(widths[i]), 1, 1, tile=tile_size))
        starts.append(np.array([first], np.int64))
        bucket_of.append(np.array([b_index], np.int32))
        bucket_shard.append(np.zeros(1, np.int64))
        first += 1
    table = ShardTable(
        refs,
        order,
        np.concatenate([*starts, np.array([first], np.int64)]),
        np.concatenate(bucket_of) if bucket_of else np.zeros(0, np.int32),
        np.concatenate(bucket_shard) if bucket_shard else np.zeros(0, np.int64),
    )
    return buckets, table


def _shape_columns(
    refs: RefColumns, shapes: Sequence[tuple[int, ...]] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heights, widths and whether each image reads in windows (a third element False: no)."""
    if shapes is None:
        if not refs.sized().all():
            raise ValueError("columns without sizes need shapes")
        return refs.heights, refs.widths, np.ones(len(refs), bool)
    if len(shapes) != len(refs):
        raise ValueError("refs and shapes differ in length")
    n = len(shapes)
    heights = np.fromiter((int(s[0]) for s in shapes), np.int64, n)
    widths = np.fromiter((int(s[1]) for s in shapes), np.int64, n)
    windowed = np.fromiter((len(s) < 3 or bool(s[2]) for s in shapes), bool, n)
    return heights, widths, windowed


def _id_order(refs: RefColumns) -> np.ndarray | None:
    """The order that sorts ``refs`` by id, None when they are sorted already."""
    import pyarrow.compute as pc

    if len(refs) < 2:
        return None
    ids = refs.ids
    if pc.all(pc.less_equal(ids[:-1], ids[1:])).as_py():
        return None
    return np.asarray(pc.sort_indices(ids).to_numpy())


def _index_dtype(n: int) -> type[np.integer]:
    return np.uint32 if n < (1 << 32) else np.int64
