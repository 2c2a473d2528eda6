"""The planner's catalogue rows, made a block of rows at a time.

A plan made from columns (:class:`~batchseg.core.shard_table.ShardTable`) gives each block
of rows from its arrays, so creating (or growing) the catalogue of 10^7 images holds one
block of Python strings at a time; a plan of :class:`~batchseg.core.plan.Shard` tuples gives
its rows from the shards.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import NamedTuple

import numpy as np

from batchseg.core.plan import Plan
from batchseg.core.shard_table import ShardTable

#: The planner's numeric catalogue columns and their dtypes.
COLUMN_DTYPES: dict[str, np.dtype] = {
    "height": np.dtype(np.uint32),
    "width": np.dtype(np.uint32),
    "bucket": np.dtype(np.int32),
    "bucket_row": np.dtype(np.int64),
}


class ShardRows(NamedTuple):
    """A shard's position in the plan and how many images it holds."""

    shard: int
    length: int


def catalogue_columns(plan: Plan, first_shard: int) -> dict[str, np.ndarray]:
    """The planner's catalogue values of rows ``[first_shard * S, plan.n_rows)``: image_id,
    uri, height, width, bucket and bucket_row (padding rows: bucket -1)."""
    rows = plan.n_rows - first_shard * plan.shard_size
    blocks = [block for _, block in catalogue_blocks(plan, first_shard, max(1, rows))]
    if not blocks:
        return _empty(0)
    return blocks[0]


def catalogue_blocks(
    plan: Plan, first_shard: int, block_rows: int
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """``(first row, columns)`` of rows ``[first_shard * S, plan.n_rows)`` in blocks of
    ``block_rows`` rows (the first row counted from ``first_shard * S``)."""
    start = first_shard * plan.shard_size
    for a in range(start, plan.n_rows, block_rows):
        b = min(plan.n_rows, a + block_rows)
        if isinstance(plan.shards, ShardTable):
            yield a - start, _table_block(plan, plan.shards, a, b)
        else:
            yield a - start, _tuple_block(plan, a, b)


def _empty(rows: int) -> dict[str, np.ndarray]:
    out = {
        "image_id": np.full(rows, "", dtype=object),
        "uri": np.full(rows, "", dtype=object),
    }
    out.update({name: np.zeros(rows, dtype=dtype) for name, dtype in COLUMN_DTYPES.items()})
    out["bucket"][:] = -1
    out["bucket_row"][:] = -1
    return out


def _table_block(plan: Plan, table: ShardTable, a: int, b: int) -> dict[str, np.ndarray]:
    """Rows ``[a, b)`` from a shard table's arrays."""
    import pyarrow as pa

    S = plan.shard_size
    out = _empty(b - a)
    rows = np.arange(a, b, dtype=np.int64)
    shard, slot = rows // S, rows % S
    used = slot < np.diff(table.starts)[shard]
    shard, slot = shard[used], slot[used]
    images = pa.array(table.order[table.starts[shard] + slot].astype(np.int64))
    out["image_id"][used] = table.refs.ids.take(images).to_numpy(zero_copy_only=False)
    out["uri"][used] = table.refs.take(images).uri_array().to_numpy(zero_copy_only=False)
    bucket = table.bucket[shard]
    sizes = np.array([bk.shard_size for bk in plan.buckets], dtype=np.int64)
    heights = np.array([bk.height for bk in plan.buckets], dtype=np.uint32)
    widths = np.array([bk.width for bk in plan.buckets], dtype=np.uint32)
    out["bucket"][used] = bucket
    out["bucket_row"][used] = table.bucket_shard[shard] * sizes[bucket] + slot
    out["height"][used], out["width"][used] = heights[bucket], widths[bucket]
    return out


def _tuple_block(plan: Plan, a: int, b: int) -> dict[str, np.ndarray]:
    """Rows ``[a, b)`` from the plan's shards."""
    S = plan.shard_size
    out = _empty(b - a)
    for shard in plan.shards[a // S : -(-b // S)]:
        bk = plan.buckets[shard.bucket]
        lo, hi = max(a, shard.index * S), min(b, shard.index * S + len(shard))
        if hi <= lo:
            continue
        first = lo - shard.index * S
        part = slice(lo - a, hi - a)
        out["image_id"][part] = shard.image_ids[first : first + hi - lo]
        out["uri"][part] = shard.uris[first : first + hi - lo]
        out["bucket"][part] = shard.bucket
        out["bucket_row"][part] = np.arange(first, first + hi - lo) + shard.bucket_shard * (
            bk.shard_size
        )
        out["height"][part], out["width"][part] = bk.height, bk.width
    return out


def header_failures(
    plan: Plan, first_shard: int, header_errors: Mapping[str, str]
) -> Iterator[tuple[ShardRows, np.ndarray, np.ndarray]]:
    """``(shard, slots, messages)`` of shards ``first_shard..`` holding an image whose header
    failed (``header_errors`` maps its id to the error), in shard order."""
    if not header_errors:
        return
    if isinstance(plan.shards, ShardTable):
        yield from _table_failures(plan.shards, first_shard, header_errors)
        return
    for shard in plan.shards[first_shard:]:
        slots = [i for i, image_id in enumerate(shard.image_ids) if image_id in header_errors]
        if slots:
            messages = [header_errors[shard.image_ids[i]] for i in slots]
            yield (
                ShardRows(shard.index, len(shard)),
                np.array(slots, dtype=np.int64),
                np.array(messages, dtype=object),
            )


def _table_failures(
    table: ShardTable, first_shard: int, header_errors: Mapping[str, str]
) -> Iterator[tuple[ShardRows, np.ndarray, np.ndarray]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    failed = pa.array(list(header_errors), type=pa.string())
    hit = pc.is_in(table.refs.ids, value_set=failed).to_numpy(zero_copy_only=False)
    position = np.flatnonzero(hit[table.order])  # plan positions of failed images
    shard = np.searchsorted(table.starts, position, side="right") - 1
    lengths = np.diff(table.starts)
    for k in np.unique(shard[shard >= first_shard]).tolist():
        mine = position[shard == k]
        ids = table.refs.ids.take(pa.array(table.order[mine].astype(np.int64))).to_pylist()
        yield (
            ShardRows(k, int(lengths[k])),
            mine - table.starts[k],
            np.array([header_errors[i] for i in ids], dtype=object),
        )
