"""Semantic models on tiled images: sliding windows on one lattice, logits blended."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

pytest.importorskip("torchvision")

import batchseg  # noqa: E402
from batchseg.cluster.profiles import AddressProfile  # noqa: E402
from batchseg.job.run import run_job  # noqa: E402
from batchseg.job.spec import JobSpec  # noqa: E402
from batchseg.methods import get_method  # noqa: E402
from tests.helpers.torch_models import synth  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.torch]
METHOD = "torchvision.lraspp_mobilenet_v3_large"
#: Windows smaller than the default (512) on a scene to match: the same geometry (windows
#: overlapping in both directions, tiles smaller than a window and not aligned with it) at a
#: fraction of the cost.
WINDOW = {"window": 320, "overlap": 128}


@pytest.fixture(scope="module")
def scene(tmp_path_factory, lraspp_checkpoint):
    folder = tmp_path_factory.mktemp("sem")
    _, weights = lraspp_checkpoint
    imgs, _ = synth(np.random.default_rng(5), 36)
    rows = [np.concatenate(list(imgs[r * 6 : (r + 1) * 6]), axis=1) for r in range(6)]
    mosaic = np.concatenate(rows, axis=0)  # 384 x 480: 2 x 2 windows of 320, 3 x 4 tiles of 128
    (folder / "in").mkdir()
    tifffile.imwrite(folder / "in" / "scene.tif", mosaic, tile=(128, 128), photometric="rgb")
    return folder, weights, mosaic


def _run(scene, tmp_path, address, tile: int) -> batchseg.StoreView:
    folder, weights, _ = scene
    spec = JobSpec(
        input=str(folder / "in"),
        method=METHOD,
        output=str(tmp_path / f"t{tile}.zarr"),
        params={"weights": weights, "device": "cpu", "batch_size": 4, **WINDOW},
        profile=AddressProfile(address),
        tile_threshold=100_000,
        tile_size=tile,
    )
    assert run_job(spec).exit_code == 0
    return batchseg.open(spec.output)


def test_tiled_semantic_agrees_with_whole_image_and_has_no_seams(scene, tmp_path, cluster_address):
    _, weights, mosaic = scene
    view = _run(scene, tmp_path, cluster_address, 128)
    tiled = view.mask("scene.tif")
    method = get_method(METHOD)
    runner = method.runner(method.resolve_params({"weights": weights, "device": "cpu"}))
    whole = runner.segment_batch([mosaic])[0]
    agreement = float((tiled == whole.labels).mean())
    print(f"tiled vs whole-image inference: {agreement:.4%} of pixels agree")
    assert agreement >= 0.99
    assert len(np.unique(tiled)) == 3 and len(np.unique(whole.labels)) == 3
    # confidence maps and statistics like any image
    conf = view.confidence("scene.tif")
    assert conf.shape == tiled.shape and conf.dtype == np.uint8
    assert np.abs(conf.astype(int) - whole.confidence.astype(int)).mean() < 3
    row = view.table().set_index("image_id").loc["scene.tif"]
    counts = np.bincount(tiled.ravel(), minlength=3)
    assert [row["pixels_class_0"], row["pixels_class_1"], row["pixels_class_2"]] == list(counts)
    assert row["mean_confidence"] == pytest.approx(conf.mean() / 255.0)
    # the window lattice is the image's, not the tile's: other tiles give the same labels
    other = _run(scene, tmp_path, cluster_address, 256).mask("scene.tif")
    assert (other == tiled).mean() >= 0.9999
