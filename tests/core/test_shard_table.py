"""Tests for batchseg.core.shard_table and batchseg.core.refcolumns: a plan made from columns is
the plan made from ImageRef tuples, shard for shard."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa

from batchseg.core.plan import UNREADABLE, plan_shards
from batchseg.core.refcolumns import RefColumns, from_refs, sorted_unique_columns
from batchseg.core.shard_table import ShardTable, pending_shards
from batchseg.io.sources import ImageRef


def _collection(n: int = 300) -> tuple[list[ImageRef], list[tuple[int, ...]]]:
    rng = random.Random(3)
    choices = [(32, 48), (48, 32), (10, 10), UNREADABLE, (9000, 9000), (9000, 9000, False)]
    refs = [
        ImageRef(f"d{i % 7}/img_{i:04d}.png", f"/data/d{i % 7}/img_{i:04d}.png") for i in range(n)
    ]
    refs.sort(key=lambda r: r.image_id)
    return refs, [rng.choice(choices) for _ in refs]


def test_plan_from_columns_is_the_plan_from_refs() -> None:
    refs, shapes = _collection()
    columns = from_refs(refs)
    for size in (1, 7, 128):
        by_refs = plan_shards(
            refs, shapes, size, max_shard_pixels=48 * 32 * 5, tile_threshold=1 << 26
        )
        by_columns = plan_shards(
            columns, shapes, size, max_shard_pixels=48 * 32 * 5, tile_threshold=1 << 26
        )
        assert isinstance(by_columns.shards, ShardTable)
        assert by_columns.buckets == by_refs.buckets
        assert list(by_columns.shards) == list(by_refs.shards)
        assert by_columns.lengths().tolist() == by_refs.lengths().tolist()
        assert by_columns.shard_buckets().tolist() == by_refs.shard_buckets().tolist()


def test_columns_sorted_in_place_keep_the_first_of_each_id() -> None:
    ids = pa.array(["b", "a", "c", "a", "b"])
    columns = RefColumns(ids, np.arange(5), np.arange(5) + 10, uri_prefix="/x/")
    out = sorted_unique_columns(columns)
    assert [(r.image_id, r.uri, r.height, r.width) for r in out] == [
        ("a", "/x/a", 1, 11),
        ("b", "/x/b", 0, 10),
        ("c", "/x/c", 2, 12),
    ]


def test_pending_shards_are_those_with_a_wanted_image_row() -> None:
    refs, _ = _collection(40)
    plan = plan_shards(from_refs(refs), [(4, 4)] * 30 + [(5, 5)] * 10, 8)
    wanted = np.zeros(plan.n_rows, bool)
    lengths = plan.lengths()
    wanted[1 * 8 + 3] = True  # an image of shard 1
    short = int(np.flatnonzero(lengths < 8)[0])
    wanted[short * 8 + 7] = True  # a padding row: not an image, never work
    todo = pending_shards(plan, wanted)
    assert [s.index for s in todo] == [1]
    assert todo.images() == int(lengths[1])
    everything = pending_shards(plan, np.ones(plan.n_rows, bool))
    assert [s.index for s in everything] == list(range(len(plan.shards)))


def test_unsorted_columns_plan_in_id_order() -> None:
    refs, shapes = _collection(120)
    pairs = list(zip(refs, shapes, strict=True))
    random.Random(5).shuffle(pairs)
    mixed = [r for r, _ in pairs]
    mixed_shapes = [s for _, s in pairs]
    by_refs = plan_shards(mixed, mixed_shapes, 4, tile_threshold=1 << 26)
    by_columns = plan_shards(from_refs(mixed), mixed_shapes, 4, tile_threshold=1 << 26)
    assert by_columns.buckets == by_refs.buckets
    assert list(by_columns.shards) == list(by_refs.shards)
