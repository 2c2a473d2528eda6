"""Tests for batchseg.core.plan: shape buckets, shards and aligned table rows."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from batchseg.core.plan import (
    DEFAULT_MAX_SHARD_PIXELS,
    UNREADABLE,
    Bucket,
    Plan,
    auto_shard_size,
    plan_shards,
)
from batchseg.io.sources import ImageRef


def _refs(shapes: list[tuple[int, int]], seed: int = 0) -> tuple[list[ImageRef], list]:
    """Refs with ids img_000.. in a seeded random order, and their shapes in the same order."""
    pairs = [(ImageRef(f"img_{i:03d}", f"/data/img_{i:03d}.png"), s) for i, s in enumerate(shapes)]
    random.Random(seed).shuffle(pairs)
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _mixed() -> list[tuple[int, int]]:
    rng = random.Random(7)
    choices = [(32, 48), (48, 32), (10, 10), (32, 48), UNREADABLE]
    return [rng.choice(choices) for _ in range(53)]


def _check_invariants(plan: Plan, refs: list[ImageRef], shapes: list) -> None:
    shape_of = {r.image_id: (int(s[0]), int(s[1])) for r, s in zip(refs, shapes, strict=True)}
    uri_of = {r.image_id: r.uri for r in refs}
    # every image exactly once
    seen = Counter(i for s in plan.shards for i in s.image_ids)
    assert set(seen) == set(shape_of)
    assert all(n == 1 for n in seen.values())
    assert plan.n_images == len(refs)
    assert plan.n_rows == len(plan.shards) * plan.shard_size
    # shards are indexed in order, non-empty, single-shape, within their bucket's size
    for k, shard in enumerate(plan.shards):
        assert shard.index == k
        b = plan.buckets[shard.bucket]
        assert 1 <= len(shard) <= b.shard_size <= plan.shard_size
        assert {shape_of[i] for i in shard.image_ids} == {(b.height, b.width)}
        assert shard.uris == tuple(uri_of[i] for i in shard.image_ids)
        assert list(shard.image_ids) == sorted(shard.image_ids)
    # buckets: one per shape, sorted by shape, shard counts consistent
    assert [(b.height, b.width) for b in plan.buckets] == sorted(set(shape_of.values()))
    for bi, b in enumerate(plan.buckets):
        assert b.index == bi
        mine = [s for s in plan.shards if s.bucket == bi]
        assert [s.bucket_shard for s in mine] == list(range(b.n_shards))
        assert b.rows == b.n_shards * b.shard_size
        assert sum(len(s) for s in mine) == sum(
            1 for v in shape_of.values() if v == (b.height, b.width)
        )
        # only the last shard of a bucket may be short
        assert all(len(s) == b.shard_size for s in mine[:-1])


def test_buckets_by_shape_and_invariants() -> None:
    shapes = _mixed()
    refs, shapes = _refs(shapes)
    plan = plan_shards(refs, shapes, 4)
    _check_invariants(plan, refs, shapes)
    assert len(plan.buckets) == len(set(shapes))
    assert plan.buckets[0].height == 0 and plan.buckets[0].width == 0  # UNREADABLE sorts first


@pytest.mark.parametrize("shard_size", [1, 2, 3, 7, 100])
def test_shard_sizes_bounded(shard_size: int) -> None:
    refs, shapes = _refs(_mixed(), seed=shard_size)
    plan = plan_shards(refs, shapes, shard_size)
    _check_invariants(plan, refs, shapes)
    assert plan.shard_size == shard_size
    assert all(len(s) <= shard_size for s in plan.shards)


def test_deterministic_regardless_of_input_order() -> None:
    shapes = _mixed()
    plans = [plan_shards(*_refs(shapes, seed=seed), 5) for seed in range(4)]
    assert all(p == plans[0] for p in plans)
    # also identical shard by shard
    assert [s.image_ids for s in plans[1].shards] == [s.image_ids for s in plans[0].shards]


def test_bucket_names_unique_and_informative() -> None:
    refs, shapes = _refs(_mixed())
    plan = plan_shards(refs, shapes, 4)
    names = [b.name for b in plan.buckets]
    assert len(set(names)) == len(names)
    b = next(b for b in plan.buckets if (b.height, b.width) == (32, 48))
    assert "32x48" in b.name


def test_small_bucket_shard_size_is_its_image_count() -> None:
    refs, shapes = _refs([(8, 8)] * 3 + [(4, 4)] * 20)
    plan = plan_shards(refs, shapes, 10)
    by_shape = {(b.height, b.width): b for b in plan.buckets}
    assert by_shape[(8, 8)].shard_size == 3 and by_shape[(8, 8)].n_shards == 1
    assert by_shape[(4, 4)].shard_size == 10 and by_shape[(4, 4)].n_shards == 2


def test_large_images_get_smaller_shards() -> None:
    shapes = [(100, 100)] * 10 + [(1000, 1000)] * 10
    refs, shapes = _refs(shapes)
    plan = plan_shards(refs, shapes, 8, max_shard_pixels=3_000_000)
    _check_invariants(plan, refs, shapes)
    by_shape = {(b.height, b.width): b for b in plan.buckets}
    assert by_shape[(100, 100)].shard_size == 8
    assert by_shape[(1000, 1000)].shard_size == 3
    assert by_shape[(1000, 1000)].n_shards == 4
    for b in plan.buckets:
        assert b.shard_size * b.height * b.width <= 3_000_000


def test_image_larger_than_pixel_budget_still_gets_one_per_shard() -> None:
    refs, shapes = _refs([(2000, 2000)] * 3)
    plan = plan_shards(refs, shapes, 16, max_shard_pixels=1000)
    _check_invariants(plan, refs, shapes)
    assert plan.buckets[0].shard_size == 1
    assert len(plan.shards) == 3


def test_default_pixel_budget() -> None:
    side = 4096  # 16 Mpx: the default budget holds four
    refs, shapes = _refs([(side, side)] * 9)
    plan = plan_shards(refs, shapes, 32)
    assert plan.buckets[0].shard_size == DEFAULT_MAX_SHARD_PIXELS // (side * side) == 4


def test_row_alignment() -> None:
    refs, shapes = _refs([(32, 48)] * 11 + [(10, 10)] * 5 + [(2000, 2000)] * 3)
    S = 4
    plan = plan_shards(refs, shapes, S, max_shard_pixels=8_000_000)
    _check_invariants(plan, refs, shapes)
    rows = []
    bucket_rows: dict[int, list[int]] = {b.index: [] for b in plan.buckets}
    for shard in plan.shards:
        b = plan.buckets[shard.bucket]
        for slot in range(len(shard)):
            r = plan.row_of(shard, slot)
            assert shard.index * S <= r < (shard.index + 1) * S
            rows.append(r)
            br = plan.bucket_row_of(shard, slot)
            lo = shard.bucket_shard * b.shard_size
            assert lo <= br < lo + b.shard_size
            assert br < b.rows
            bucket_rows[b.index].append(br)
    assert len(set(rows)) == len(rows) == plan.n_images
    assert max(rows) < plan.n_rows
    for rs in bucket_rows.values():
        assert len(set(rs)) == len(rs)
    big = next(b for b in plan.buckets if b.height == 2000)
    assert big.shard_size == 2  # smaller than S: padding rows in the table, not in labels
    last = [s for s in plan.shards if s.bucket == big.index][-1]
    assert plan.row_of(last, 0) == last.index * S
    assert plan.bucket_row_of(last, 0) == 2


def test_errors() -> None:
    refs, shapes = _refs([(4, 4)] * 3)
    with pytest.raises(ValueError):
        plan_shards(refs, shapes, 0)
    with pytest.raises(ValueError):
        plan_shards(refs, shapes[:-1], 2)


def test_empty_collection() -> None:
    plan = plan_shards([], [], 4)
    assert plan.shards == () and plan.buckets == ()
    assert plan.n_images == 0 and plan.n_rows == 0


def test_shapes_accept_numpy_like_ints() -> None:
    import numpy as np

    refs, _ = _refs([(4, 4)] * 2)
    plan = plan_shards(refs, [np.array([4, 5]), (np.int64(4), np.int64(5))], 2)
    assert plan.buckets == (Bucket(0, 4, 5, 2, 1),)
    assert isinstance(plan.buckets[0].height, int)


def test_auto_shard_size_bounds() -> None:
    assert auto_shard_size(0, 8) == 1
    assert auto_shard_size(-5, 8) == 1
    assert auto_shard_size(1, 8) == 1
    assert 1 <= auto_shard_size(5, 0) <= 5  # no threads known: still a valid size
    assert auto_shard_size(1000, 4) == 32  # ceil(1000 / (4 * 8))
    assert auto_shard_size(10**9, 1, max_tasks=10**9) == 128
    assert auto_shard_size(10**9, 1, cap=16, max_tasks=10**9) == 16
    assert auto_shard_size(100, 1, per_slot=1, cap=1000) == 100
    for n in [1, 7, 64, 1000, 123456]:
        for slots in [1, 3, 16, 200]:
            size = auto_shard_size(n, slots)
            assert 1 <= size <= 128
            # at most per_slot tasks per thread unless capped, and no smaller size would do
            target = slots * 8
            if size < 128:
                assert -(-n // size) <= target
            if size > 1:
                assert -(-n // (size - 1)) > target


def test_shards_grow_so_that_the_task_count_stays_bounded() -> None:
    from batchseg.core.plan import MAX_TASKS

    assert auto_shard_size(10**6, 64) == 128  # below the bound: the usual cap
    for n in (2 * 10**7, 10**8, 10**9):
        size = auto_shard_size(n, 64)
        assert size > 128
        assert -(-n // size) <= MAX_TASKS
    assert auto_shard_size(10**8, 64) == 1000
