"""Stores written by an earlier batchseg (``tests/fixtures/stores``, made by
``tests/fixtures/make_compat_stores.py``) still read, query, verify, resume and append.

Every test works on a copy; the committed stores are never written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import batchseg
from batchseg.store import open_group, read_meta
from tests.fixtures.make_compat_stores import KINDS, STORES, place_inputs
from tests.helpers.cli import run_cli

pytestmark = pytest.mark.integration


def _copy(kind: str, tmp_path: Path) -> Path:
    target = tmp_path / f"{kind}.zarr"
    shutil.copytree(STORES / f"{kind}.zarr", target)
    return target


@pytest.mark.parametrize("kind", KINDS)
def test_old_store_reads_queries_and_verifies(kind: str, tmp_path: Path) -> None:
    path = _copy(kind, tmp_path)
    meta = read_meta(open_group(str(path)))
    assert meta.kind.value == kind if kind != "tiled" else meta.kind.value == "classes"
    view = batchseg.open(str(path))
    table = view.table()
    done = table[table["status"] == "done"]
    assert len(done) >= 2 and len(table) == meta.n_images
    for image_id, h, w in done[["image_id", "height", "width"]].itertuples(index=False):
        labels = view.mask(image_id)
        assert labels.shape == (h, w) and labels.any()
    assert len(view.query("height > 0")) == len(table)
    assert run_cli("verify", str(path)).exit_code == 0
    status = run_cli("status", str(path))
    assert status.exit_code == (3 if len(done) < len(table) else 0), status.output
    if meta.objects:
        objects = view.objects()
        assert len(objects) > 0 and set(objects["image_id"]) <= set(done["image_id"])
    query = run_cli("query", str(path), "--where", "height > 0", "--format", "csv")
    assert query.exit_code == 0 and query.output.count("\n") == len(table) + 1


def _run(folder: Path, store: Path, method: str, address: str, *extra: str) -> str:
    result = run_cli("run", str(folder), "-m", method, "-o", str(store), "--scheduler", address,
                     *extra)  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.output


def _maps(view: batchseg.StoreView) -> dict[str, np.ndarray]:
    table = view.table()
    return {i: view.mask(i) for i in table.loc[table["status"] == "done", "image_id"]}


def test_old_regions_store_resumes_then_appends(tmp_path: Path, cluster_address: str) -> None:
    path = _copy("regions", tmp_path)
    folder = place_inputs("regions")
    before = _maps(batchseg.open(str(path)))
    shutil.copy(folder / "img_1.png", folder / "broken.png")  # the failed image, mended
    _run(folder, path, "skimage.watershed", cluster_address, "--shard-size", "2")
    view = batchseg.open(str(path))
    after = _maps(view)
    assert set(after) == {*before, "broken.png"}
    for image_id, labels in before.items():
        np.testing.assert_array_equal(after[image_id], labels)  # stored results kept as they are
    shutil.copy(folder / "img_3.png", folder / "new.png")
    _run(folder, path, "skimage.watershed", cluster_address, "--shard-size", "2", "--append")
    grown = batchseg.open(str(path))
    assert grown.status()["done"] == 6
    np.testing.assert_array_equal(grown.mask("new.png"), after["img_3.png"])
    assert run_cli("verify", str(path)).exit_code == 0


def test_old_tiled_store_resumes_then_appends(tmp_path: Path, cluster_address: str) -> None:
    path = _copy("tiled", tmp_path)
    folder = place_inputs("tiled")
    before = _maps(batchseg.open(str(path)))
    extra = ("--tile-threshold", "20000", "--tile-size", "256")
    assert "nothing to do" in _run(folder, path, "skimage.otsu", cluster_address, *extra)
    shutil.copy(folder / "small.png", folder / "small_copy.png")
    _run(folder, path, "skimage.otsu", cluster_address, *extra, "--append")
    after = _maps(batchseg.open(str(path)))
    assert set(after) == {*before, "small_copy.png"}
    for image_id, labels in before.items():
        np.testing.assert_array_equal(after[image_id], labels)
    np.testing.assert_array_equal(after["small_copy.png"], before["small.png"])
    assert batchseg.open(str(path)).mask("big.tif", level=1).shape == (150, 200)
