"""Tests for batchseg.store.catalogue: a store created from a columnar plan (written a block of
rows at a time) holds the catalogue a plan of Shard tuples writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from batchseg import store
from batchseg.core.plan import UNREADABLE, Plan, plan_shards
from batchseg.core.refcolumns import from_refs
from batchseg.io.sources import ImageRef
from batchseg.store import catalogue, layout

NAMES = ("image_id", "uri", "height", "width", "bucket", "bucket_row", "status", "error")


def _create(path: Path, plan: Plan, errors: dict[str, str]) -> zarr.Group:
    return store.create(
        str(path),
        plan,
        meta={"method": {"id": "test.method"}, "classes": None},
        header_errors=errors,
        label_dtypes=[np.dtype(np.uint8)] * len(plan.buckets),
        stats_columns=["a"],
        confidence=False,
    )


def test_columnar_plan_writes_the_same_catalogue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(layout, "CATALOGUE_CHUNK", 16)  # blocks of 16 rows: several per store
    refs = [ImageRef(f"f{i % 3}/img{i:03d}.png", f"/d/f{i % 3}/img{i:03d}.png") for i in range(70)]
    refs.sort(key=lambda r: r.image_id)
    shapes = [(4, 6) if i % 4 else (3, 3) for i in range(70)]
    shapes[5] = UNREADABLE
    errors = {refs[5].image_id: "cannot identify image file", refs[40].image_id: "truncated"}
    old = _create(tmp_path / "tuples.zarr", plan_shards(refs, shapes, 6), errors)
    new = _create(tmp_path / "columns.zarr", plan_shards(from_refs(refs), shapes, 6), errors)
    for name in NAMES:
        a, b = old[f"catalogue/{name}"][:], new[f"catalogue/{name}"][:]
        assert a.tolist() == b.tolist(), name
    assert (new["catalogue/status"][:] == store.FAILED).sum() == 2


def test_blocks_cover_the_rows_of_the_plan() -> None:
    refs = [ImageRef(f"i{i}", f"/d/i{i}") for i in range(11)]
    plan = plan_shards(from_refs(refs), [(2, 2)] * 11, 4)
    blocks = list(catalogue.catalogue_blocks(plan, 1, 5))
    assert [start for start, _ in blocks] == [0, 5]
    ids = np.concatenate([b["image_id"] for _, b in blocks]).tolist()
    assert ids == ["i3", "i4", "i5", "i6", "i7", "i8", "i9", ""]  # shards 1 and 2, padding ""
    buckets = np.concatenate([b["bucket"] for _, b in blocks]).tolist()
    assert buckets == [0] * 7 + [-1]
