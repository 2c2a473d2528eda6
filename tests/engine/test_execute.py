"""Tests for batchseg.engine.execute.run_shard, run in-process (no Dask) against a real store."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from batchseg import store
from batchseg.core.plan import Plan, plan_shards
from batchseg.engine.execute import JobContext, ShardSummary, run_shard
from batchseg.errors import StoreError
from batchseg.io import read as readers
from batchseg.io.sources import discover
from batchseg.measure.stats import class_stats, region_stats, stats_columns
from batchseg.methods import get_method
from batchseg.methods.base import Method

METHODS = {
    "skimage.otsu": {},
    "skimage.slic": {"n_segments": 12},
}


def _image(rng: np.random.Generator, h: int, w: int, colour: bool) -> np.ndarray:
    """Dark noise with a few bright rectangles: something for every method to find."""
    img = rng.integers(0, 70, (h, w, 3) if colour else (h, w)).astype(np.uint8)
    for _ in range(3):
        y, x = int(rng.integers(0, h - 4)), int(rng.integers(0, w - 4))
        dy, dx = int(rng.integers(3, h // 2)), int(rng.integers(3, w // 2))
        value = rng.integers(150, 256, 3 if colour else 1).astype(np.uint8)
        img[y : y + dy, x : x + dx] = value if colour else value[0]
    return img


def _save(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def _collection(folder: Path, seed: int = 0) -> None:
    """Five 24x32 images (grey and RGB mixed) and two 20x16 ones."""
    rng = np.random.default_rng(seed)
    for i in range(5):
        _save(folder / f"big_{i}.png", _image(rng, 24, 32, colour=i % 2 == 1))
    for i in range(2):
        _save(folder / "small" / f"s{i}.png", _image(rng, 20, 16, colour=i == 0))


@dataclass
class Job:
    path: str
    root: Any
    plan: Plan
    ctx: JobContext
    method: Method
    params: dict[str, Any]
    columns: list[str]


def _setup(tmp_path: Path, method_id: str, shard_size: int = 2) -> Job:
    """Discover, read headers, plan and create the store the way batchseg.job.run does."""
    images = tmp_path / "images"
    if not images.exists():
        _collection(images)
    refs = discover(str(images))
    shapes = [readers.read_header(r.uri) for r in refs]
    method = get_method(method_id)
    params = method.resolve_params(METHODS[method_id])
    plan = plan_shards(refs, shapes, shard_size)
    classes = method.classes(params)
    columns = stats_columns(method.kind, classes, confidence=method.has_confidence)
    dtypes = [method.label_dtype(params, b.height, b.width) for b in plan.buckets]
    path = str(tmp_path / "out.zarr")
    root = store.create(
        path,
        plan,
        meta={"method": {"id": method.id, "params": params}, "classes": classes},
        header_errors={},
        label_dtypes=dtypes,
        stats_columns=columns,
        confidence=method.has_confidence,
    )
    attrs = store.attributes(root)
    ctx = JobContext(
        store=path,
        store_id=attrs["store_id"],
        method_id=method.id,
        params=params,
        shard_size=plan.shard_size,
        buckets=plan.buckets,
        label_dtypes=tuple(b["dtype"] for b in attrs["buckets"]),
        n_classes=len(attrs.get("classes") or []),
        n_columns=len(attrs["stats_columns"]),
        io_threads=2,
    )
    return Job(path, root, plan, ctx, method, params, columns)


def _table(job: Job) -> pd.DataFrame:
    return store.read_table(store.open_group(job.path)).set_index("image_id")


def _expected(job: Job, uri: str, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(job.method.segment(readers.read_image(uri), job.params))
    if job.method.kind == "classes":
        row = class_stats(labels.astype(dtype), job.ctx.n_classes)
    else:
        row = region_stats(labels.astype(dtype))
    return labels, row


def _stat_columns(job: Job) -> list[str]:
    return [c for c in job.columns if c != "seconds"]


@pytest.mark.parametrize("method_id", sorted(METHODS))
def test_run_shard_matches_kernel(tmp_path: Path, method_id: str) -> None:
    job = _setup(tmp_path, method_id)
    assert len(job.plan.buckets) == 2 and len(job.plan.shards) == 4
    for shard in job.plan.shards:
        summary = run_shard(job.ctx, shard)
        assert isinstance(summary, ShardSummary)
        assert summary.shard == shard.index
        assert (summary.done, summary.failed, summary.errors) == (len(shard), 0, {})
        assert summary.seconds > 0
    root = store.open_group(job.path)
    table = _table(job)
    assert len(table) == 7 and set(table["status"]) == {"done"}
    assert set(table["error"]) == {""}
    for shard in job.plan.shards:
        dtype = np.dtype(job.ctx.label_dtypes[shard.bucket])
        for image_id, uri in zip(shard.image_ids, shard.uris, strict=True):
            want, row = _expected(job, uri, dtype)
            got = store.read_labels(root, image_id)
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, want)
            stats = table.loc[image_id, _stat_columns(job)].to_numpy(float)
            np.testing.assert_array_equal(stats, row)
            seconds = table.loc[image_id, "seconds"]
            assert np.isfinite(seconds) and seconds >= 0
            if job.method.kind == "classes":
                assert stats[: job.ctx.n_classes].sum() == got.size
                assert 0 < stats[1] < got.size  # otsu found some foreground, not all
            else:
                assert stats[0] == len(np.unique(got[got > 0])) > 1
    # padding rows stay empty
    status = np.asarray(root["catalogue/status"][:])
    assert (status == store.EMPTY).sum() == job.plan.n_rows - 7


def test_run_shard_only_writes_its_rows(tmp_path: Path) -> None:
    job = _setup(tmp_path, "skimage.otsu")
    shard = job.plan.shards[1]
    run_shard(job.ctx, shard)
    table = _table(job)
    done = set(table.index[table["status"] == "done"])
    assert done == set(shard.image_ids)
    assert set(table.drop(index=list(done))["status"]) == {"pending"}


def test_corrupt_file_fails_alone(tmp_path: Path) -> None:
    images = tmp_path / "images"
    _collection(images)
    bad = images / "big_2.png"
    data = bad.read_bytes()
    job = _setup(tmp_path, "skimage.otsu", shard_size=5)  # headers read while still intact
    bad.write_bytes(data[: len(data) // 2])  # truncated after planning
    assert readers.read_header(str(bad)) == (24, 32)  # header still fine, pixels are not
    shard = next(s for s in job.plan.shards if "big_2.png" in s.image_ids)
    assert len(shard) == 5
    summary = run_shard(job.ctx, shard)
    assert (summary.done, summary.failed) == (4, 1)
    assert list(summary.errors) == ["big_2.png"]
    message = summary.errors["big_2.png"]
    assert message and "\n" not in message and len(message) <= 500

    table = _table(job)
    assert table.loc["big_2.png", "status"] == "failed"
    assert table.loc["big_2.png", "error"] == message
    assert table.loc[["big_2.png"], job.columns].isna().all().all()
    root = store.open_group(job.path)
    with pytest.raises(StoreError, match="failed"):
        store.read_labels(root, "big_2.png")
    for image_id, uri in zip(shard.image_ids, shard.uris, strict=True):
        if image_id == "big_2.png":
            continue
        assert table.loc[image_id, "status"] == "done"
        want, _ = _expected(job, uri, np.dtype(np.uint8))
        np.testing.assert_array_equal(store.read_labels(root, image_id), want)


def test_missing_and_garbage_files_fail_alone(tmp_path: Path) -> None:
    images = tmp_path / "images"
    _collection(images)
    job = _setup(tmp_path, "skimage.slic", shard_size=5)
    os.remove(images / "big_0.png")
    (images / "big_4.png").write_bytes(b"this is not an image at all")
    shard = next(s for s in job.plan.shards if "big_0.png" in s.image_ids)
    summary = run_shard(job.ctx, shard)
    assert (summary.done, summary.failed) == (3, 2)
    assert sorted(summary.errors) == ["big_0.png", "big_4.png"]
    table = _table(job)
    assert list(table.loc[["big_0.png", "big_4.png"], "status"]) == ["failed", "failed"]
    assert all(table.loc[["big_0.png", "big_4.png"], "error"].str.len() > 0)
    assert set(table.loc[["big_1.png", "big_2.png", "big_3.png"], "status"]) == {"done"}


def test_shape_changed_since_planning(tmp_path: Path) -> None:
    images = tmp_path / "images"
    _collection(images)
    job = _setup(tmp_path, "skimage.otsu", shard_size=5)
    rng = np.random.default_rng(9)
    _save(images / "big_3.png", _image(rng, 30, 32, colour=False))  # was 24x32
    shard = next(s for s in job.plan.shards if "big_3.png" in s.image_ids)
    summary = run_shard(job.ctx, shard)
    assert (summary.done, summary.failed) == (4, 1)
    assert "changed since planning" in summary.errors["big_3.png"]
    table = _table(job)
    assert table.loc["big_3.png", "status"] == "failed"
    assert "changed since planning" in table.loc["big_3.png", "error"]
    assert "30x32" in table.loc["big_3.png", "error"]
    assert (table["status"] == "done").sum() == 4


def _files(folder: str) -> dict[str, bytes]:
    out = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, folder)] = Path(full).read_bytes()
    return out


@pytest.mark.parametrize("method_id", sorted(METHODS))
def test_rerun_is_reproducible(tmp_path: Path, method_id: str) -> None:
    job = _setup(tmp_path, method_id, shard_size=3)
    shard = job.plan.shards[0]
    labels_dir = os.path.join(job.path, "labels")

    run_shard(job.ctx, shard)
    first_files = _files(labels_dir)
    first = _table(job)
    root = store.open_group(job.path)
    first_labels = {i: store.read_labels(root, i) for i in shard.image_ids}

    run_shard(job.ctx, shard)
    second = _table(job)
    assert _files(labels_dir) == first_files
    root = store.open_group(job.path)
    for image_id, labels in first_labels.items():
        again = store.read_labels(root, image_id)
        assert again.dtype == labels.dtype
        assert again.tobytes() == labels.tobytes()
    cols = _stat_columns(job)
    pd.testing.assert_frame_equal(first[cols], second[cols])
    pd.testing.assert_series_equal(first["status"], second["status"])
    pd.testing.assert_series_equal(first["error"], second["error"])
    assert second.loc[list(shard.image_ids), "seconds"].notna().all()


def test_rerun_after_failure_recovers(tmp_path: Path) -> None:
    images = tmp_path / "images"
    _collection(images)
    job = _setup(tmp_path, "skimage.otsu", shard_size=5)
    good = (images / "big_1.png").read_bytes()
    (images / "big_1.png").write_bytes(good[:40])
    shard = next(s for s in job.plan.shards if "big_1.png" in s.image_ids)
    assert run_shard(job.ctx, shard).failed == 1
    (images / "big_1.png").write_bytes(good)
    summary = run_shard(job.ctx, shard)
    assert (summary.done, summary.failed) == (5, 0)
    table = _table(job)
    assert table.loc["big_1.png", "status"] == "done"
    assert table.loc["big_1.png", "error"] == ""
