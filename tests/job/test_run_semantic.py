"""Semantic methods through the whole job: CLI flags, cluster, store, confidence, queries."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

pytest.importorskip("torchvision")
import torch  # noqa: E402

import batchseg  # noqa: E402
from batchseg.cli import app  # noqa: E402
from tests.helpers.torch_models import normalise, synth  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.torch]


@pytest.fixture(scope="module")
def checkpoint(lraspp_checkpoint):
    return lraspp_checkpoint


def test_semantic_job_matches_direct_forward(tmp_path, checkpoint, cluster_address):
    model, path = checkpoint
    imgs, _ = synth(np.random.default_rng(7), 10)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, img in enumerate(imgs):
        Image.fromarray(img).save(folder / f"s{i:02d}.png")
    classes = tmp_path / "classes.txt"
    classes.write_text("background\nred square\ngreen disc\n")
    out = tmp_path / "sem.zarr"
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(folder),
            "--method",
            "torchvision.lraspp_mobilenet_v3_large",
            "--weights",
            path,
            "--classes",
            str(classes),
            "--batch-size",
            "4",
            "--device",
            "cpu",
            "--output",
            str(out),
            "--scheduler",
            cluster_address,
            "--shard-size",
            "5",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    view = batchseg.open(str(out))
    assert view.classes == ["background", "red square", "green disc"]
    with torch.no_grad():
        direct = model(normalise(imgs))["out"].argmax(1).numpy()
    got = np.stack([view.mask(f"s{i:02d}.png") for i in range(len(imgs))])
    assert (got == direct).mean() >= 0.995
    assert len(np.unique(got)) == 3  # a model with varied predictions
    conf = view.confidence("s00.png")
    assert conf.dtype == np.uint8 and conf.shape == imgs[0].shape[:2] and conf.mean() > 0
    table = view.table()
    assert {"fraction_red_square", "pixels_green_disc", "mean_confidence"} <= set(table.columns)
    assert table["mean_confidence"].between(0, 1).all()
    hits = view.query("fraction_red_square > 0.01 and mean_confidence > 0.3")
    assert len(hits) > 0
    summary = json.loads(
        CliRunner().invoke(app, ["stats", str(out), "--json"], catch_exceptions=False).stdout
    )
    assert summary["classes"]["green_disc"]["pixels"] > 0


def test_gpu_cluster_gives_each_worker_its_device():
    """`--gpus N` without dask-cuda: one worker per GPU, own CUDA_VISIBLE_DEVICES, GPU resource."""
    from batchseg.cluster.connect import connect, gpu_resources
    from batchseg.cluster.profiles import LocalProfile

    handle = connect(LocalProfile(gpus=2), dashboard_address=":0")
    try:
        env = handle.client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
        assert sorted(env.values()) == ["0,1", "1,0"]
        assert gpu_resources(handle.client) == {"GPU": 1}
    finally:
        handle.close()
