"""Issue 17 item 12 (spec part): numeric job-spec keys are bounded and typed before any store or
cluster exists.

The attacks: ``gpus = "lots"`` in a job spec ended in a TypeError (exit 1); ``shard_size`` of
2^63-1 left a half-created store, and 10^8 ran 100 s before every image failed. Each bad value
below goes through the CLI (flag or job spec) and must give exit 2, one line naming the key, its
value and the allowed range, no store, and no cluster started.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from batchseg.cluster.profiles import INT_RANGES, LocalProfile
from batchseg.errors import UsageError
from batchseg.job.spec import SPEC_RANGES, build_spec
from tests.helpers.cli import run_cli

BIG = 2**63 - 1
SLURM = '[cluster]\nprofile = "slurm"\nwalltime = "01:00:00"\ncores = 4\nmemory = "8GB"\n'


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with one image, and no cluster may start: connect() fails the test."""
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "a.png")

    def no_cluster(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cluster was started before the spec was validated")

    from batchseg.cluster import connect

    monkeypatch.setattr(connect, "connect", no_cluster)
    return tmp_path


def _assert_refused(result: object, out: Path, *needles: str) -> None:
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not out.exists(), "a store was created"
    assert not list(out.parent.glob("*.zarr*")), list(out.parent.iterdir())


@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        (["--shard-size", str(BIG)], ["'shard_size'", str(BIG), "[1, 65536]"]),
        (["--shard-size", "100000000"], ["'shard_size'", "100000000", "[1, 65536]"]),
        (["--shard-size", "0"], ["'shard_size'", "[1, 65536]"]),
        (["--workers", "100000"], ["'workers'", "100000", "[1, 1024]"]),
        (["--threads-per-worker", "5000"], ["'threads_per_worker'", "5000", "[1, 1024]"]),
        (["--io-threads", "1000000"], ["'io_threads'", "1000000", "[1, 256]"]),
        (["--max-pixels", str(BIG)], ["'max_pixels'", str(BIG), f"[1, {1 << 40}]"]),
        (["--tile-size", str(1 << 40)], ["'tile_size'", str(1 << 40), "[256, 16384]"]),
        (["--tile-threshold", str(1 << 62)], ["'tile_threshold'", str(1 << 62)]),
        (["--gpus", "1000"], ["'gpus'", "1000", "[0, 64]"]),
        (["--gpus", "-1"], ["'gpus'", "-1", "[0, 64]"]),
    ],
)
def test_out_of_range_flags(job: Path, flags: list[str], needles: list[str]) -> None:
    out = job / "out.zarr"
    result = run_cli("run", job / "images", "-m", "skimage.otsu", "-o", out, *flags)
    _assert_refused(result, out, *needles)


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ('gpus = "lots"\n', ["'gpus'", "'lots'", "[0, 64]"]),
        ("gpus = 2.5\n", ["'gpus'", "2.5"]),
        ("workers = true\n", ["'workers'", "True", "[1, 1024]"]),
        (f"shard_size = {BIG}\n", ["'shard_size'", str(BIG), "[1, 65536]"]),
        ("shard_size = 100000000\n", ["'shard_size'", "100000000"]),
        ("max_pixels = 0\n", ["'max_pixels'", "got 0"]),
        ("[cluster]\nworkers = 0\n", ["cluster 'workers'", "got 0", "[1, 1024]"]),
        ('[cluster]\ngpus = "lots"\n', ["cluster 'gpus'", "'lots'"]),
        ("[cluster]\nthreads_per_worker = 4096\n", ["'threads_per_worker'", "4096"]),
        ('[cluster]\ndashboard_address = "everywhere"\n', ["'dashboard_address'", "everywhere"]),
        (SLURM.replace('"8GB"', '"1000000TB"'), ["'memory'", "1000000TB", "64TiB"]),
        (SLURM.replace('"8GB"', '"0GB"'), ["'memory'", "0GB"]),
        (SLURM.replace('"8GB"', '"' + "9" * 400 + 'GB"'), ["'memory'", "64TiB"]),
        (SLURM.replace("cores = 4", "cores = 1000000000"), ["'cores'", "1000000000", "[1, 4096]"]),
        (SLURM + "jobs = 1000000000\n", ["'jobs'", "1000000000", "[1, 10000]"]),
        (SLURM + "processes = 0\n", ["'processes'", "got 0"]),
        (
            '[cluster]\nprofile = "kubernetes"\nimage = "i"\nn_workers = 1000000000\n',
            ["'n_workers'", "1000000000", "[1, 10000]"],
        ),
    ],
)
def test_out_of_range_spec_keys(job: Path, text: str, needles: list[str]) -> None:
    out = job / "out.zarr"
    spec = job / "job.toml"
    spec.write_text(
        f'input = "images"\nmethod = "skimage.otsu"\noutput = "out.zarr"\n{text}', "utf-8"
    )
    _assert_refused(run_cli("run", spec), out, *needles)


def test_limits_are_inclusive() -> None:
    """The bounds themselves are accepted (the ranges refuse only what cannot run well)."""
    base = {"input": "i", "method": "skimage.otsu", "output": "o.zarr"}
    for key, (low, high) in SPEC_RANGES.items():
        for value in (low, high):
            assert getattr(build_spec({**base, key: value}), key) == value
        with pytest.raises(UsageError, match=f"'{key}'"):
            build_spec({**base, key: high + 1})
    for key in ("workers", "threads_per_worker", "gpus"):
        low, high = INT_RANGES[key]
        for value in (low, high):
            profile = build_spec({**base, key: value}).profile
            assert getattr(profile, key) == (value or getattr(LocalProfile(), key))
    assert build_spec({**base, "tile_size": 16384}).tile_size == 16384
