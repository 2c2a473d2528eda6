"""Tests for batchseg.store: the Zarr v3 layout, shard writes, tables and labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from batchseg import store
from batchseg.core.plan import UNREADABLE, Plan, Shard, plan_shards
from batchseg.errors import StoreError
from batchseg.io.sources import ImageRef
from batchseg.measure.stats import stats_columns

COLUMNS = stats_columns("regions", None)  # n_regions, area_*, seconds
SHAPES = {"a": (6, 8), "b": (5, 7)}


def _refs() -> tuple[list[ImageRef], list[tuple[int, int]]]:
    """Five 6x8 images, three 5x7 ones (ids in scrambled order) and one unreadable."""
    items = [
        ("img 03.png", SHAPES["a"]),
        ("img 01.png", SHAPES["a"]),
        ("café/ü.png", SHAPES["b"]),
        ("img 05.png", SHAPES["a"]),
        ("broken.png", UNREADABLE),
        ("img 02.png", SHAPES["a"]),
        ("z/b2.png", SHAPES["b"]),
        ("img 04.png", SHAPES["a"]),
        ("z/b1.png", SHAPES["b"]),
    ]
    refs = [ImageRef(i, f"/data/{i}") for i, _ in items]
    return refs, [s for _, s in items]


def _make(
    path: Path,
    shard_size: int = 2,
    *,
    confidence: bool = False,
    overwrite: bool = False,
    refs_shapes: tuple[list[ImageRef], list[tuple[int, int]]] | None = None,
) -> tuple[Plan, zarr.Group]:
    refs, shapes = refs_shapes or _refs()
    plan = plan_shards(refs, shapes, shard_size)
    dtypes = [np.dtype(np.uint8) if b.height < 6 else np.dtype(np.uint16) for b in plan.buckets]
    root = store.create(
        str(path),
        plan,
        meta={"method": {"id": "test.method"}, "classes": None, "note": "ünïcode"},
        header_errors={"broken.png": "cannot identify image file"},
        label_dtypes=dtypes,
        stats_columns=COLUMNS,
        confidence=confidence,
        overwrite=overwrite,
    )
    return plan, root


def _write(path: Path, plan: Plan, shard: Shard, block: store.ShardBlock) -> None:
    attrs = store.attributes(zarr.open_group(str(path), mode="r"))
    bucket = plan.buckets[shard.bucket]
    store.write_shard(str(path), attrs["store_id"], plan.shard_size, bucket, shard, block)


def _block(
    plan: Plan, shard: Shard, seed: int, *, fail: dict[int, str] | None = None, conf: bool = False
) -> store.ShardBlock:
    """Random labels/stats for ``shard``; slots in ``fail`` are failed with that message."""
    rng = np.random.default_rng(seed)
    b = plan.buckets[shard.bucket]
    S, n = plan.shard_size, len(shard)
    dtype = np.uint8 if b.height < 6 else np.uint16
    labels = np.zeros((b.shard_size, b.height, b.width), dtype=dtype)
    labels[:n] = rng.integers(0, np.iinfo(dtype).max, (n, b.height, b.width), dtype=dtype)
    confidence = None
    if conf:
        confidence = np.zeros(labels.shape, dtype=np.uint8)
        confidence[:n] = rng.integers(0, 256, (n, b.height, b.width), dtype=np.uint8)
    stats = np.full((S, len(COLUMNS)), np.nan)
    stats[:n] = rng.random((n, len(COLUMNS))) * 100
    status = np.zeros(S, dtype=np.int8)
    status[:n] = store.DONE
    errors = np.full(S, "", dtype=object)
    for slot, message in (fail or {}).items():
        status[slot], errors[slot] = store.FAILED, message
        stats[slot] = np.nan
    return store.ShardBlock(labels, confidence, stats, status, errors)


def _strs(arr: Any) -> list[str]:
    return [str(x) for x in np.asarray(arr)]


# --------------------------------------------------------------------------- layout


def test_plain_zarr_reads_the_layout(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    plan, _ = _make(path)
    root = zarr.open_group(str(path), mode="r")
    S = plan.shard_size
    rows = plan.n_rows
    assert rows == len(plan.shards) * S

    cat = root["catalogue"]
    for name in ("image_id", "uri", "height", "width", "bucket", "bucket_row", "status", "error"):
        assert cat[name].shape == (rows,), name
    assert cat["status"].chunks == (S,)
    assert cat["error"].chunks == (S,)
    assert cat["status"].dtype == np.int8
    ids, uris = _strs(cat["image_id"][:]), _strs(cat["uri"][:])
    heights, widths = np.asarray(cat["height"][:]), np.asarray(cat["width"][:])
    buckets, brows = np.asarray(cat["bucket"][:]), np.asarray(cat["bucket_row"][:])
    status, errors = np.asarray(cat["status"][:]), _strs(cat["error"][:])

    used = set()
    for shard in plan.shards:
        b = plan.buckets[shard.bucket]
        for slot in range(S):
            r = shard.index * S + slot
            if slot < len(shard):
                used.add(r)
                assert ids[r] == shard.image_ids[slot]
                assert uris[r] == shard.uris[slot]
                assert (heights[r], widths[r]) == (b.height, b.width)
                assert buckets[r] == shard.bucket
                assert brows[r] == plan.bucket_row_of(shard, slot)
                if ids[r] == "broken.png":
                    assert status[r] == store.FAILED
                    assert errors[r] == "cannot identify image file"
                else:
                    assert status[r] == store.PENDING and errors[r] == ""
            else:  # padding row: recognised by bucket -1 (status unwritten until its task runs)
                assert ids[r] == "" and buckets[r] == -1
    assert len(used) == plan.n_images == 9

    stats = root["stats"]
    assert stats.shape == (rows, len(COLUMNS))
    assert stats.chunks == (S, len(COLUMNS))
    assert stats.dtype == np.float64
    assert list(stats.attrs["columns"]) == COLUMNS
    assert np.isnan(stats[:]).all()

    labels = root["labels"]
    readable = [b for b in plan.buckets if (b.height, b.width) != UNREADABLE]
    assert sorted(name for name, _ in labels.arrays()) == sorted(b.name for b in readable)
    for b in readable:
        arr = labels[b.name]
        assert arr.shape == (b.rows, b.height, b.width)
        assert arr.chunks == (1, b.height, b.width)
        assert arr.shards == (b.shard_size, b.height, b.width)
        assert arr.dtype == (np.uint8 if b.height < 6 else np.uint16)
        assert not arr[:].any()
    assert "confidence" not in root

    attrs = root.attrs[store.ATTRS_KEY]
    assert attrs["schema_version"] == store.SCHEMA_VERSION
    assert attrs["shard_size"] == S
    assert attrs["n_images"] == 9 and attrs["n_shards"] == len(plan.shards)
    assert attrs["stats_columns"] == COLUMNS
    assert attrs["method"] == {"id": "test.method"} and attrs["note"] == "ünïcode"
    assert attrs["runs"] == []
    assert [
        (b["index"], b["name"], b["height"], b["width"], b["shard_size"], b["n_shards"])
        for b in attrs["buckets"]
    ] == [(b.index, b.name, b.height, b.width, b.shard_size, b.n_shards) for b in plan.buckets]
    assert [b["dtype"] for b in attrs["buckets"]] == [
        "uint8" if b.height < 6 else "uint16" for b in plan.buckets
    ]


def test_confidence_arrays(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    plan, _ = _make(path, confidence=True)
    root = zarr.open_group(str(path), mode="r")
    for b in plan.buckets:
        if b.height == 0:
            continue
        arr = root[f"confidence/{b.name}"]
        assert arr.dtype == np.uint8
        assert arr.shape == (b.rows, b.height, b.width)
        assert arr.shards == (b.shard_size, b.height, b.width)


def test_empty_table_after_create(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    plan, _ = _make(path)
    table = store.read_table(store.open_group(str(path)))
    assert len(table) == 9
    assert sorted(table["image_id"]) == sorted(r.image_id for r in _refs()[0])
    assert set(table["status"]) == {"pending", "failed"}
    assert table.loc[table["image_id"] == "broken.png", "status"].item() == "failed"
    assert list(table.columns[:5]) == ["image_id", "status", "error", "height", "width"]
    assert all(c in table.columns for c in COLUMNS) and "uri" in table.columns
    full = store.read_table(store.open_group(str(path)), include_empty=True)
    assert len(full) == plan.n_rows
    assert (full["status"] == "empty").sum() == plan.n_rows - 9


# --------------------------------------------------------------------------- writes


def test_write_shard_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    plan, _ = _make(path)
    # a shard that is not the first of its bucket, so bucket rows != table rows
    shard = next(s for s in plan.shards if s.bucket_shard == 1 and s.bucket > 0)
    block = _block(plan, shard, seed=1)
    _write(path, plan, shard, block)

    root = store.open_group(str(path))
    table = store.read_table(root).set_index("image_id")
    n = len(shard)
    for slot, image_id in enumerate(shard.image_ids):
        row = table.loc[image_id]
        assert row["status"] == "done" and row["error"] == ""
        np.testing.assert_array_equal(row[COLUMNS].to_numpy(float), block.stats[slot])
        got = store.read_labels(root, image_id)
        assert got.dtype == block.labels.dtype
        np.testing.assert_array_equal(got, block.labels[slot])
    others = table.drop(index=list(shard.image_ids))
    assert set(others["status"]) <= {"pending", "failed"}
    assert others[COLUMNS].isna().all().all()
    # padding rows of the shard stay empty
    S = plan.shard_size
    status = np.asarray(root["catalogue/status"][shard.index * S : (shard.index + 1) * S])
    assert (status[:n] == store.DONE).all() and (status[n:] == store.EMPTY).all()
    # neighbouring shards' labels untouched
    b = plan.buckets[shard.bucket]
    arr = np.asarray(root[f"labels/{b.name}"][:])
    lo = shard.bucket_shard * b.shard_size
    assert not arr[:lo].any() and not arr[lo + b.shard_size :].any()


def test_write_every_shard_and_confidence(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    plan, _ = _make(path, shard_size=3, confidence=True)
    blocks = {}
    for shard in plan.shards:
        if plan.buckets[shard.bucket].height == 0:
            continue
        blocks[shard.index] = _block(plan, shard, seed=shard.index, conf=True)
        _write(path, plan, shard, blocks[shard.index])
    root = store.open_group(str(path))
    for shard in plan.shards:
        if shard.index not in blocks:
            continue
        for slot, image_id in enumerate(shard.image_ids):
            block = blocks[shard.index]
            np.testing.assert_array_equal(store.read_labels(root, image_id), block.labels[slot])
            np.testing.assert_array_equal(
                store.read_labels(root, image_id, confidence=True), block.confidence[slot]
            )
    table = store.read_table(root)
    assert (table["status"] == "done").sum() == 8
    assert table.set_index("image_id").loc["broken.png", "status"] == "failed"


def test_read_labels_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    plan, _ = _make(path)
    shard = next(s for s in plan.shards if len(s) == 2 and s.bucket > 0)
    _write(path, plan, shard, _block(plan, shard, seed=2, fail={1: "decode error: truncated"}))
    root = store.open_group(str(path))
    b = plan.buckets[shard.bucket]
    assert store.read_labels(root, shard.image_ids[0]).shape == (b.height, b.width)
    with pytest.raises(StoreError, match="failed: decode error: truncated"):
        store.read_labels(root, shard.image_ids[1])
    with pytest.raises(StoreError, match="failed: cannot identify image file"):
        store.read_labels(root, "broken.png")
    pending = next(s for s in plan.shards if s.index != shard.index and s.bucket > 0)
    with pytest.raises(StoreError, match="pending"):
        store.read_labels(root, pending.image_ids[0])
    with pytest.raises(StoreError, match="not in the store"):
        store.read_labels(root, "nope.png")
    with pytest.raises(StoreError, match="confidence"):
        store.read_labels(root, shard.image_ids[0], confidence=True)
    table = store.read_table(root).set_index("image_id")
    assert table.loc[shard.image_ids[1], "error"] == "decode error: truncated"
    assert np.isnan(table.loc[shard.image_ids[1], COLUMNS].to_numpy(float)).all()


def test_rewrite_shard_replaces_values(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    plan, _ = _make(path)
    shard = plan.shards[-1]
    _write(path, plan, shard, _block(plan, shard, seed=3, fail={0: "x"}))
    second = _block(plan, shard, seed=4)
    _write(path, plan, shard, second)
    root = store.open_group(str(path))
    for slot, image_id in enumerate(shard.image_ids):
        np.testing.assert_array_equal(store.read_labels(root, image_id), second.labels[slot])
    assert set(
        store.read_table(root).set_index("image_id").loc[list(shard.image_ids), "error"]
    ) == {""}


# --------------------------------------------------------------------------- plan


def test_load_plan_reproduces_plan(tmp_path: Path) -> None:
    for S in (1, 2, 4, 50):
        path = tmp_path / f"s{S}.zarr"
        plan, root = _make(path, shard_size=S)
        loaded = store.load_plan(store.open_group(str(path)))
        assert loaded == plan
        for a, b in zip(loaded.shards, plan.shards, strict=True):
            assert (a.image_ids, a.uris, a.bucket, a.bucket_shard) == (
                b.image_ids,
                b.uris,
                b.bucket,
                b.bucket_shard,
            )


def test_load_plan_with_large_image_buckets(tmp_path: Path) -> None:
    refs = [ImageRef(f"i{i}", f"/x/{i}.png") for i in range(7)]
    shapes = [(40, 50)] * 4 + [(4, 5)] * 3
    plan = plan_shards(refs, shapes, 3, max_shard_pixels=4000)  # 40x50 bucket: 2 per shard
    assert plan.buckets[1].shard_size == 2
    store.create(
        str(tmp_path / "s.zarr"),
        plan,
        meta={},
        header_errors={},
        label_dtypes=[np.dtype(np.uint8)] * 2,
        stats_columns=COLUMNS,
        confidence=False,
    )
    assert store.load_plan(store.open_group(str(tmp_path / "s.zarr"))) == plan


# --------------------------------------------------------------------------- create / open


def test_create_over_existing_store(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    plan, _ = _make(path)
    with pytest.raises(StoreError, match="already exists"):
        _make(path)
    assert store.load_plan(store.open_group(str(path))) == plan  # untouched

    shard = plan.shards[-1]
    _write(path, plan, shard, _block(plan, shard, seed=5))
    old_id = store.attributes(store.open_group(str(path)))["store_id"]

    refs = [ImageRef(f"n{i}", f"/new/{i}.png") for i in range(5)]
    plan2, _ = _make(path, shard_size=4, overwrite=True, refs_shapes=(refs, [(6, 8)] * 5))
    root = store.open_group(str(path))
    attrs = store.attributes(root)
    assert attrs["store_id"] != old_id
    assert attrs["n_images"] == 5 and attrs["shard_size"] == 4
    assert store.load_plan(root) == plan2
    table = store.read_table(root)
    assert sorted(table["image_id"]) == [r.image_id for r in refs]
    assert set(table["status"]) == {"pending"}
    # writes go to the new layout even though this process wrote the old one
    shard2 = plan2.shards[1]
    block = _block(plan2, shard2, seed=6)
    _write(path, plan2, shard2, block)
    root = store.open_group(str(path))
    for slot, image_id in enumerate(shard2.image_ids):
        np.testing.assert_array_equal(store.read_labels(root, image_id), block.labels[slot])
    assert (store.read_table(root)["status"] == "done").sum() == len(shard2)


def test_exists(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    assert not store.exists(str(path))
    _make(path)
    assert store.exists(str(path))
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    assert not store.exists(str(tmp_path / "plain.zarr"))
    (tmp_path / "empty").mkdir()
    assert not store.exists(str(tmp_path / "empty"))


def test_open_group_on_non_stores(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store"):
        store.open_group(str(tmp_path / "missing.zarr"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError):
        store.open_group(str(tmp_path / "empty"))
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    with pytest.raises(StoreError, match="not a batchseg store"):
        store.open_group(str(tmp_path / "plain.zarr"))
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    with pytest.raises(StoreError):
        store.open_group(str(afile))


def test_open_group_schema_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    _make(path)
    root = store.open_group(str(path), mode="r+")
    store.update_attributes(root, schema_version=store.SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="schema"):
        store.open_group(str(path))


def test_update_attributes_merges(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    _make(path)
    root = store.open_group(str(path), mode="r+")
    store.update_attributes(root, runs=[{"done": 1}])
    attrs = store.attributes(store.open_group(str(path)))
    assert attrs["runs"] == [{"done": 1}]
    assert attrs["schema_version"] == store.SCHEMA_VERSION and attrs["note"] == "ünïcode"
