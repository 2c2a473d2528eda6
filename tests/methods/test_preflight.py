"""Issue 18 item 1: what does not depend on an image is checked before any store or cluster.

Offline, ``--weights DEFAULT`` with an empty TORCH_HOME used to fail every image inside the
workers (300+ lines of worker tracebacks, exit 3); now the launcher resolves the weights file
once (cache, else one download) and refuses with one line, exit 2, nothing created.
"""

from __future__ import annotations

import os
import time
import urllib.error

import numpy as np
import pytest

pytest.importorskip("torchvision")

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.models import get_model_weights  # noqa: E402
from torchvision.models.segmentation import lraspp_mobilenet_v3_large  # noqa: E402

from batchseg.cluster import connect as cluster_connect  # noqa: E402
from batchseg.errors import UsageError  # noqa: E402
from batchseg.methods import models, semantic  # noqa: E402
from batchseg.methods.registry import get_method  # noqa: E402
from tests.helpers.cli import run_cli  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.filterwarnings("ignore:.*deprecated.*")]

LRASPP = "torchvision.lraspp_mobilenet_v3_large"


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.fixture
def no_cluster(monkeypatch):
    """Fail the test if anything tries to start or attach to a cluster."""

    def refuse(*args, **kwargs):
        raise AssertionError("a cluster was started for a job that cannot run")

    monkeypatch.setattr(cluster_connect, "connect", refuse)


@pytest.fixture
def offline(monkeypatch):
    """The network is unreachable: every download fails at once (and is counted)."""
    calls: list[str] = []

    def unreachable(url, dst, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", unreachable)
    return calls


def test_weights_name_offline_fails_once_before_the_cluster(
    images, tmp_path, monkeypatch, no_cluster, offline
):
    home = tmp_path / "empty_torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    semantic.clear_cache()
    member = get_model_weights("lraspp_mobilenet_v3_large").DEFAULT
    expected = os.path.join(str(home), "hub", "checkpoints", os.path.basename(member.url))
    out = tmp_path / "out.zarr"
    start = time.monotonic()
    result = run_cli("run", images, "-m", LRASPP, "--weights", "DEFAULT", "-o", out)
    assert result.exit_code == 2, result.output
    assert time.monotonic() - start < 30
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert expected in lines[0] and "could not be downloaded" in lines[0]
    assert "Temporary failure in name resolution" in lines[0]
    assert len(offline) == 1  # one attempt for the job, not one per shard or image
    assert not out.exists()


def test_dry_run_refuses_too(images, tmp_path, monkeypatch, no_cluster, offline):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    result = run_cli("run", images, "-m", LRASPP, "-o", tmp_path / "o.zarr", "--dry-run")
    assert result.exit_code == 2, result.output
    assert "expected file" in result.output


def test_prefilled_torch_home_still_runs(images, tmp_path, monkeypatch, offline, no_cluster):
    """A cached file is used as it is: no download; the plan is made and the model segments."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    semantic.clear_cache()
    member = get_model_weights("lraspp_mobilenet_v3_large").DEFAULT
    cached = models.cached_weights_file(member)
    os.makedirs(os.path.dirname(cached))
    torch.manual_seed(0)
    torch.save(lraspp_mobilenet_v3_large(weights=None, weights_backbone=None).state_dict(), cached)
    result = run_cli("run", images, "-m", LRASPP, "-o", tmp_path / "ok.zarr", "--dry-run")
    assert result.exit_code == 0, result.output
    method = get_method(LRASPP)
    params = method.resolve_params({"weights": "DEFAULT", "device": "cpu"})
    method.validate(params)
    got = method.runner(params).segment_batch([np.zeros((40, 48, 3), np.uint8)])
    assert got[0].labels.shape == (40, 48)
    assert offline == []


def test_launcher_download_fills_the_cache(tmp_path, monkeypatch):
    """Online: the launcher downloads the file once, into the cache the workers read."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    got: list[tuple[str, str]] = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        got.append((url, hash_prefix))
        with open(dst, "wb") as fh:
            fh.write(b"weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    member = get_model_weights("lraspp_mobilenet_v3_large").DEFAULT
    path = models.ensure_cached_weights("lraspp_mobilenet_v3_large", member)
    assert os.path.isfile(path) and path == models.cached_weights_file(member)
    assert got == [(member.url, os.path.basename(member.url).split("-")[-1].split(".")[0])]
    models.ensure_cached_weights("lraspp_mobilenet_v3_large", member)
    assert len(got) == 1  # cached now: no second download


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_and_fp16_on_cpu_fail_before_the_cluster(
    images, tmp_path, no_cluster, offline
):
    for extra, words in (
        (["--device", "cuda"], "no CUDA device"),
        (["--device", "cpu", "--precision", "fp16"], "needs a CUDA device"),
        (["-p", "batch_size=100000"], "must be <= 4096"),
    ):
        out = tmp_path / "x.zarr"
        result = run_cli(
            "run", images, "-m", "torchscript", "-p", "model=/nonexistent.pt", *extra, "-o", out
        )
        assert result.exit_code == 2, result.output
        assert words in result.output, (extra, result.output)
        assert len(result.output.strip().splitlines()) == 1
        assert not out.exists()


def test_classes_file_checked_before_the_cluster(images, tmp_path, monkeypatch, no_cluster):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    missing = tmp_path / "names.txt"
    with pytest.raises(UsageError, match="does not exist"):
        method = get_method(LRASPP)
        method.validate(method.resolve_params({"classes": str(missing)}))
    result = run_cli("run", images, "-m", LRASPP, "--classes", missing, "-o", tmp_path / "c.zarr")
    assert result.exit_code == 2 and "names.txt" in result.output


def test_semantic_runner_applies_the_preprocessing_chain(tmp_path, monkeypatch, offline):
    """Issue 18 item 8 for model runners: the chain runs before the network, per image."""
    from skimage import filters
    from skimage.util import img_as_float

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    semantic.clear_cache()
    cached = models.cached_weights_file(get_model_weights("lraspp_mobilenet_v3_large").DEFAULT)
    os.makedirs(os.path.dirname(cached))
    torch.manual_seed(1)
    torch.save(lraspp_mobilenet_v3_large(weights=None, weights_backbone=None).state_dict(), cached)
    method = get_method(LRASPP)
    rng = np.random.default_rng(2)
    imgs = [rng.integers(0, 255, (40, 48, 3), dtype=np.uint8) for _ in range(3)]
    imgs[1] = imgs[1][:, :, :2]  # H x W x 2 (grey + alpha, one channel short of RGB): fine
    imgs[2] = np.zeros((40, 48, 5), np.uint8)  # unsupported shape: fails alone
    pre = method.resolve_params({"device": "cpu", "pre": ["gaussian:sigma=2"]})
    plain = method.resolve_params({"device": "cpu"})
    got = method.runner(pre).segment_batch(imgs)
    assert isinstance(got[2], Exception)
    for image, seg in zip(imgs[:2], got[:2], strict=True):
        smooth = filters.gaussian(
            img_as_float(image if image.shape[2] == 3 else image[..., 0]),
            sigma=2,
            channel_axis=-1 if image.shape[2] == 3 else None,
        )
        [ref] = method.runner(plain).segment_batch([smooth])
        np.testing.assert_array_equal(seg.labels, ref.labels)
        np.testing.assert_array_equal(seg.confidence, ref.confidence)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_is_checked_here_only_for_workers_on_this_machine(tmp_path):
    """Remote workers (an address, SLURM/PBS, Kubernetes) may have the GPU the launcher lacks."""
    method = get_method("torchscript")
    params = method.resolve_params({"model": "/nonexistent.pt", "device": "cuda"})
    with pytest.raises(UsageError, match="no CUDA device"):
        method.validate(params, local_workers=True)
    with pytest.raises(UsageError) as remote:
        method.validate(params, local_workers=False)
    assert "CUDA" not in str(remote.value) and "nonexistent.pt" in str(remote.value)
