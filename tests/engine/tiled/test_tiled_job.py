"""Huge images in the same job, tile by tile, compared with whole-image segmentation.

The test image (700 x 1100, tests/helpers/images.py) is small enough to segment whole, so
every tiled result is checked against the method run on the whole image: class maps exactly,
connected components up to a one-to-one renaming, superpixels/watersheds for seams.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

import batchseg
from batchseg.cluster.profiles import AddressProfile
from batchseg.job.run import run_job
from batchseg.job.spec import JobSpec
from batchseg.measure.objects import measure_objects
from batchseg.measure.stats import region_stats
from batchseg.methods import get_method
from tests.helpers.images import TILED_H, TILED_THRESHOLD, TILED_TILE, TILED_W
from tests.helpers.images import blobs as _blobs

pytestmark = pytest.mark.integration

H, W, TILE, THRESHOLD = TILED_H, TILED_W, TILED_TILE, TILED_THRESHOLD
#: The costlier variants (seconds each of whole-image oracles on the 2-core machine) run in
#: ``make test-system``; ``make test`` keeps one of each kind: class maps, objects, regions.
SYSTEM = pytest.mark.system


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("tiled") / "in"
    folder.mkdir()
    grey, rgb = _blobs(0, False), _blobs(1, True)
    tifffile.imwrite(folder / "grey.tif", grey, tile=(128, 128), compression="zlib")
    tifffile.imwrite(folder / "rgb.tif", rgb, tile=(256, 256), photometric="rgb")
    small = {}
    for i in range(3):
        arr = grey[i * 50 : i * 50 + 120, i * 70 : i * 70 + 160]
        Image.fromarray(arr).save(folder / f"small_{i}.png")
        small[f"small_{i}.png"] = arr
    return {"folder": folder, "grey.tif": grey, "rgb.tif": rgb, **small}


@pytest.fixture(scope="module")
def objects_view(images, tmp_path_factory, cluster_address) -> batchseg.StoreView:
    """The tiled skimage.objects job with default parameters, run once for the module."""
    return _run(images, tmp_path_factory.mktemp("objects"), cluster_address, "skimage.objects")


@pytest.fixture(scope="module")
def rgb_only(images, tmp_path_factory) -> dict[str, object]:
    """``images`` with one tiled image (rgb.tif) beside a small one: the region tests look at
    rgb.tif only, and segmenting grey.tif as well would double their cost."""
    folder = tmp_path_factory.mktemp("rgb") / "in"
    folder.mkdir()
    for name in ("rgb.tif", "small_1.png"):
        shutil.copyfile(images["folder"] / name, folder / name)
    return {**images, "folder": folder}


def _spec(folder, tmp_path: Path, address: str, method: str, **kw) -> JobSpec:
    """A tiled job (threshold and tile size of this module) writing tmp_path/out.zarr."""
    return JobSpec(
        input=str(folder),
        method=method,
        output=str(tmp_path / "out.zarr"),
        profile=AddressProfile(address),
        tile_threshold=THRESHOLD,
        tile_size=TILE,
        **kw,
    )


def _run(
    images, tmp_path: Path, address: str, method: str, params=None, **kw
) -> batchseg.StoreView:
    spec = _spec(images["folder"], tmp_path, address, method, params=dict(params or {}), **kw)
    result = run_job(spec)
    assert result.exit_code == 0, batchseg.open(spec.output).table()[["image_id", "error"]]
    return batchseg.open(spec.output)


def _whole(method: str, params, image: np.ndarray) -> np.ndarray:
    m = get_method(method)
    return m.segment(image, m.resolve_params(params))


def _one_to_one(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = np.unique(np.stack([a.ravel(), b.ravel()], axis=1), axis=0)
    return len(pairs) == len(np.unique(pairs[:, 0])) == len(np.unique(pairs[:, 1]))


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("skimage.otsu", {}),
        ("skimage.yen", {}),
        ("skimage.multiotsu", {"classes": 4}),
        pytest.param("kmeans", {"k": 3, "sample": 4000}, marks=SYSTEM),
        ("skimage.local", {"block_size": 51}),
        pytest.param(
            "skimage.local", {"block_size": 9, "method": "median", "offset": -0.01}, marks=SYSTEM
        ),
    ],
)
def test_class_maps_equal_whole_image_exactly(images, tmp_path, cluster_address, method, params):
    view = _run(images, tmp_path, cluster_address, method, params)
    table = view.table().set_index("image_id")
    for name in ("grey.tif", "rgb.tif"):
        tiled = view.mask(name)
        whole = _whole(method, params, images[name])
        np.testing.assert_array_equal(tiled, whole)
        assert len(np.unique(whole)) >= 2
        counts = np.bincount(whole.ravel(), minlength=len(view.classes))
        stored = table.loc[name, [c for c in table.columns if c.startswith("pixels_")]]
        np.testing.assert_array_equal(stored.to_numpy(dtype=np.int64), counts)
    # the small images of the same job went the ordinary way, with the same method
    np.testing.assert_array_equal(
        view.mask("small_1.png"), _whole(method, params, images["small_1.png"])
    )


@pytest.mark.parametrize(
    "params", [{}, pytest.param({"connectivity": 1, "min_area": 40}, marks=SYSTEM)]
)
def test_objects_equal_whole_image_up_to_renaming(
    images, objects_view, tmp_path, cluster_address, params
):
    if params:
        view = _run(images, tmp_path, cluster_address, "skimage.objects", params)
    else:
        view = objects_view
    table = view.table().set_index("image_id")
    for name in ("grey.tif", "rgb.tif"):
        tiled = view.mask(name)
        whole = _whole("skimage.objects", params, images[name])
        assert whole.max() > 20  # many objects, many crossing tile faces
        assert tiled.max() == whole.max()
        assert _one_to_one(tiled, whole)
        np.testing.assert_array_equal(np.unique(tiled), np.arange(whole.max() + 1))
        expected = region_stats(whole)
        got = table.loc[name, ["n_regions", "area_min", "area_mean", "area_max"]].to_numpy()
        np.testing.assert_allclose(got.astype(float), expected)
        # objects crossing tiles are measured once, as measuring the whole stored map would
        rows = view.objects(where=f"image_id == {name!r}").sort_values("label")
        want = measure_objects(tiled, images[name])
        assert list(rows["label"]) == list(want["label"]) and len(rows) == tiled.max()
        for column, values in want.items():
            np.testing.assert_allclose(rows[column].to_numpy(float), values, rtol=1e-9,
                                       err_msg=column)  # fmt: skip
        assert table.loc[name, "n_objects"] == len(rows)
        assert table.loc[name, "object_area_median"] == np.median(want["area"])


def _cuts(labels: np.ndarray) -> tuple[float, float]:
    """Fraction of pixel pairs with a label change: across vertical tile faces, elsewhere.

    Unstitched tiles would change label on every face pixel (1.0).
    """
    dx = labels[:, 1:] != labels[:, :-1]  # change between column x-1 and x
    faces = np.zeros(dx.shape[1], bool)
    faces[np.arange(TILE, labels.shape[1], TILE) - 1] = True
    return float(dx[:, faces].mean()), float(dx[:, ~faces].mean())


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("skimage.slic", {"n_segments": 280, "compactness": 10}),  # superpixels of ~2750 px
        pytest.param("skimage.felzenszwalb", {"scale": 200, "min_size": 80}, marks=SYSTEM),
        pytest.param("skimage.watershed", {"min_distance": 7}, marks=SYSTEM),
    ],
)
def test_regions_are_stitched_without_seams(rgb_only, tmp_path, cluster_address, method, params):
    view = _run(rgb_only, tmp_path, cluster_address, method, params)
    row = view.table().set_index("image_id").loc["rgb.tif"]
    tiled = view.mask("rgb.tif")
    whole = _whole(method, params, rgb_only["rgb.tif"])
    n_tiled, n_whole = len(np.unique(tiled[tiled > 0])), len(np.unique(whole[whole > 0]))
    # ids are unique and sequential across the image
    assert tiled.max() == n_tiled == row["n_regions"]
    assert 0.6 * n_whole <= n_tiled <= 1.4 * n_whole, (n_tiled, n_whole)
    # stitched: most rows continue across the faces (unstitched tiles: every row is cut)
    face, elsewhere = _cuts(tiled)
    print(
        f"{method}: {n_tiled} regions (whole image {n_whole}); label changes on tile faces "
        f"{face:.3f}, elsewhere {elsewhere:.3f}; whole image on the same lines {_cuts(whole)}"
    )
    assert face < 0.45, face
    # the biggest region is no bigger than the whole image's (joining does not run away)
    largest = np.bincount(tiled.ravel())[1:].max()
    assert largest <= np.bincount(whole.ravel())[1:].max() * 1.5


def test_pyramid_and_store_layout(objects_view, tmp_path):
    view = objects_view
    root = zarr.open_group(view.path, mode="r")
    attrs = root.attrs["batchseg"]
    tiled = [b for b in attrs["buckets"] if b.get("tile")]
    assert [b["tile"] for b in tiled] == [TILE, TILE]
    assert "scratch" not in root or not list(root["scratch"].array_keys())
    for b in tiled:
        labels = root["labels"][b["name"]]
        assert labels.shape == (1, H, W) and labels.chunks == (1, TILE, TILE)
        assert b["levels"] == [1, 2]
        mask = labels[0]
        for level in b["levels"]:
            arr = root["pyramid"][b["name"]][str(level)]
            assert arr.chunks == (1, TILE >> level, TILE >> level)
            np.testing.assert_array_equal(arr[0], mask[:: 1 << level, :: 1 << level])
    assert view.status()["done"] == 5
    # the pyramid through the API and the CLI (an overlay on the strided source image)
    from typer.testing import CliRunner

    from batchseg.cli import app

    full = view.mask("rgb.tif")
    np.testing.assert_array_equal(view.mask("rgb.tif", level=2), full[::4, ::4])
    png = tmp_path / "o.png"
    args = ["mask", view.path, "rgb.tif", "-o", str(png), "--overlay"]
    out = CliRunner().invoke(app, [*args, "--level", "2"])
    assert out.exit_code == 0, out.output
    assert np.asarray(Image.open(png)).shape == (H // 4, -(-W // 4), 3)
    out = CliRunner().invoke(app, [*args, "--level", "7"])
    assert out.exit_code == 1 and "no stored label level 7; levels: 1, 2" in out.output


def test_broken_tile_fails_that_image_alone(images, tmp_path, cluster_address):
    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / "bad.tif"
    tifffile.imwrite(path, images["grey.tif"], tile=(128, 128), compression="zlib")
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages.first.dataoffsets[40]
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\x00garbage" * 8)
    Image.fromarray(images["small_0.png"]).save(folder / "ok.png")
    spec = _spec(folder, tmp_path, cluster_address, "skimage.otsu")
    result = run_job(spec)
    assert (result.done, result.failed, result.exit_code) == (1, 1, 3)
    table = batchseg.open(spec.output).table().set_index("image_id")
    assert table.loc["bad.tif", "status"] == "failed"
    assert "TIFF" in table.loc["bad.tif", "error"]
    # resume retries the failed image only (and it fails the same way)
    again = run_job(spec)
    assert (again.processed, again.done, again.failed) == (1, 1, 1)


def test_methods_without_a_tiled_form_are_refused_before_work(images, tmp_path, cluster_address):
    from batchseg.errors import UsageError

    spec = _spec(images["folder"], tmp_path, cluster_address, "skimage.li")
    with pytest.raises(UsageError, match="skimage.li cannot segment images above --tile-threshold"):
        run_job(spec)
    assert not (tmp_path / "out.zarr").exists()
    with pytest.raises(UsageError, match="threshold 'li' has no tiled form"):
        run_job(spec.replace(method="skimage.objects", params={"threshold": "li"}))
    # without tiling the same job runs every image whole
    result = run_job(spec.replace(tile_threshold=0))
    assert result.exit_code == 0


def test_png_above_threshold_is_decoded_whole(tmp_path, cluster_address):
    folder = tmp_path / "in"
    folder.mkdir()
    image = _blobs(3, False)
    Image.fromarray(image).save(folder / "big.png")
    spec = _spec(folder, tmp_path, cluster_address, "skimage.slic")
    assert run_job(spec).exit_code == 0
    attrs = zarr.open_group(spec.output, mode="r").attrs["batchseg"]
    assert not any(b.get("tile") for b in attrs["buckets"])
    np.testing.assert_array_equal(
        batchseg.open(spec.output).mask("big.png"), _whole("skimage.slic", {}, image)
    )


def test_zarr_input_is_tiled(images, tmp_path, cluster_address):
    folder = tmp_path / "in"
    folder.mkdir()
    z = zarr.create_array(folder / "scene.zarr", shape=(H, W), chunks=(200, 300), dtype="u1")
    z[:] = images["grey.tif"]
    spec = _spec(folder, tmp_path, cluster_address, "skimage.otsu")
    assert run_job(spec).exit_code == 0
    np.testing.assert_array_equal(
        batchseg.open(spec.output).mask("scene.zarr"),
        _whole("skimage.otsu", {}, images["grey.tif"]),
    )


def test_dry_run_and_cli_list_tiled_images(images, tmp_path):
    from typer.testing import CliRunner

    from batchseg.cli import app

    out = CliRunner().invoke(
        app,
        [
            "run",
            str(images["folder"]),
            "--method",
            "skimage.otsu",
            "--output",
            str(tmp_path / "o.zarr"),
            "--tile-threshold",
            str(THRESHOLD),
            "--tile-size",
            str(TILE),
            "--dry-run",
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    plan = json.loads(out.output)
    assert plan["tiled_images"] == [{"shape": [H, W], "tiles": -(-H // TILE) * -(-W // TILE)}] * 2
    bad = CliRunner().invoke(
        app,
        ["run", str(images["folder"]), "--method", "skimage.otsu", "--output", "x.zarr",
         "--tile-size", "300"],
    )  # fmt: skip
    assert bad.exit_code == 2 and "multiple of 256" in bad.output


@pytest.mark.system
def test_launcher_killed_while_stitching_then_rerun_is_identical(
    images, objects_view, tmp_path, cluster_address
):
    """SIGKILL between the tile and relabel phases; the rerun redoes that image only."""
    import os
    import signal
    import subprocess
    import sys

    reference = objects_view
    out = tmp_path / "out.zarr"
    cmd = [
        sys.executable, "-m", "batchseg.cli", "run", str(images["folder"]), "-m",
        "skimage.objects", "-o", str(out), "--scheduler", cluster_address,
        "--tile-threshold", str(THRESHOLD), "--tile-size", str(TILE), "--shard-size", "2",
    ]  # fmt: skip
    env = {**os.environ, "BATCHSEG_FAULT": "tiled-stitch"}
    crashed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    view = batchseg.open(str(out))
    status = view.table().set_index("image_id")["status"]
    assert status["grey.tif"] == "pending" and status["small_0.png"] == "done"
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    view = batchseg.open(str(out))
    assert view.attrs["runs"][-1]["processed"] == 2  # the two tiled images, nothing else
    for name in ("grey.tif", "rgb.tif", "small_2.png"):
        np.testing.assert_array_equal(view.mask(name), reference.mask(name))
    root = zarr.open_group(str(out), mode="r")
    assert "scratch" not in root or not list(root["scratch"].array_keys())


def test_semantic_images_run_side_by_side():
    """A semantic image within the block budget is one task: two such images fill 2 threads."""
    from batchseg.engine.tiled.graph import concurrency, tasks_per_image

    assert tasks_per_image((1024, 1280), 256, None) == 20
    assert tasks_per_image((1024, 1280), 256, 21) == 1
    assert tasks_per_image((8192, 8192), 256, 21) > 1  # over the budget: rectangles
    assert concurrency(10, tasks_per_image((1024, 1280), 256, 21), 2) == 4


def test_concurrency_fills_the_cluster_not_more():
    from batchseg.engine.tiled.graph import MAX_CONCURRENT_IMAGES, concurrency

    assert concurrency(10, 400, 2) == 1  # one huge image keeps 2 threads busy
    assert concurrency(10, 4, 8) == 4  # 4 images x 4 tiles = 16 tiles for 8 threads
    assert concurrency(2, 1, 64) == 2  # never more than there are images
    assert concurrency(100, 1, 1000) == MAX_CONCURRENT_IMAGES
    assert concurrency(0, 4, 8) == 0


@pytest.mark.system
def test_several_tiled_images_at_once_give_the_same_store(
    images, tmp_path, cluster_address, monkeypatch
):
    from batchseg.engine.tiled import graph as tiled_graph

    monkeypatch.setattr(tiled_graph, "concurrency", lambda *a: 2)
    view = _run(images, tmp_path, cluster_address, "skimage.objects", {"min_area": 10})
    for name in ("grey.tif", "rgb.tif"):
        whole = _whole("skimage.objects", {"min_area": 10}, images[name])
        assert _one_to_one(view.mask(name), whole) and view.mask(name).max() == whole.max()


def test_tiling_settings_are_part_of_the_job_identity(images, tmp_path, cluster_address):
    from batchseg.errors import StoreError
    from batchseg.job.fingerprint import tiling_identity

    assert tiling_identity(JobSpec(input="i", method="skimage.otsu", output="o")) is None
    spec = _spec(images["folder"], tmp_path, cluster_address, "skimage.otsu")
    assert run_job(spec).exit_code == 0
    assert run_job(spec).processed == 0  # same job: resumed, nothing left to do
    with pytest.raises(StoreError, match="holds another job"):
        run_job(spec.replace(tile_size=512))
