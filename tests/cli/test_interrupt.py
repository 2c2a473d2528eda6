"""Issue 18 item 5: Ctrl-C during ``run`` prints one line and exits 130; the rerun resumes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.system]

#: Thumbnails of the demo collection: on one worker about 10 s of SLIC, so Ctrl-C after the first
#: stored shard always lands mid-run.
N = 120
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (INFO|WARNING|DEBUG) batchseg")


def _default_sigint() -> None:
    """The child starts with SIGINT at its default, as from a terminal's shell: a process that
    inherits SIGINT *ignored* keeps ignoring it (Python installs no KeyboardInterrupt handler),
    and an earlier test in this pytest process may have left it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_prints_one_line_and_resumes(tmp_path: Path, cluster_address: str) -> None:
    from batchseg.demo import make_collection

    images, out = tmp_path / "images", tmp_path / "out.zarr"
    make_collection(images, N, max_side=96)  # thumbnails: the demo's own are full size
    command = [sys.executable, "-m", "batchseg.cli", "run", str(images), "-m", "skimage.slic"]
    command += ["-o", str(out), "--workers", "1", "--shard-size", "2"]
    job = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=_default_sigint,
    )  # fmt: skip
    seen = ""
    while "progress:" not in seen:  # the first shard is stored: the run is well under way
        line = job.stderr.readline()  # type: ignore[union-attr]
        assert line, f"run ended early: {seen}"
        seen += line
    os.killpg(job.pid, signal.SIGINT)  # a terminal's Ctrl-C goes to the whole process group
    stdout, stderr = job.communicate(timeout=120)
    assert job.returncode == 130, stderr
    other = [line for line in stderr.splitlines() if not _LOG_LINE.match(line)]
    assert other == ["error: interrupted; rerun the same command to resume"], stderr
    assert "Traceback" not in stderr and stdout == ""
    rerun = run_cli("run", images, "-m", "skimage.slic", "-o", out, "--shard-size", "2",
                    "--scheduler", cluster_address)  # fmt: skip
    assert rerun.exit_code == 0, rerun.output
    processed = int(re.search(r"; (\d+) processed", rerun.stdout).group(1))  # type: ignore[union-attr]
    assert 0 < processed < N  # only what the interrupted run left


def test_ctrl_c_during_evaluate_prints_one_line_and_stores_nothing(
    tmp_path: Path, cluster_address: str
) -> None:
    """evaluate connects through the same runner as run: its workers ignore SIGINT, the
    launcher closes the cluster and the store lock, prints one line and exits 130."""
    import numpy as np
    from PIL import Image

    from batchseg.demo import make_collection

    images, out, truth = tmp_path / "images", tmp_path / "out.zarr", tmp_path / "truth"
    make_collection(images, 40, max_side=96)
    made = run_cli("run", images, "-m", "skimage.slic", "-o", out, "--shard-size", "1",
                   "--scheduler", cluster_address)  # fmt: skip
    assert made.exit_code == 0, made.output
    rng = np.random.default_rng(5)
    for path in sorted(images.rglob("*.*")):  # 40 annotators per image: ~10 s on one worker
        h, w = np.asarray(Image.open(path)).shape[:2]
        folder = truth / path.parent.relative_to(images)
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(40):
            labels = rng.integers(0, 8, (h // 8 + 1, w // 8 + 1), dtype=np.uint8)
            block = np.kron(labels, np.ones((8, 8), np.uint8))[:h, :w]
            Image.fromarray(block).save(folder / f"{path.stem}_{k}.png")
    command = [sys.executable, "-m", "batchseg.cli", "evaluate", str(out), "--truth", str(truth)]
    command += ["--truth-pattern", "{stem}_*.png", "--workers", "1"]
    job = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=_default_sigint,
    )  # fmt: skip
    seen = ""
    while "progress:" not in seen:  # the first shard is scored
        line = job.stderr.readline()  # type: ignore[union-attr]
        assert line, f"evaluate ended early: {seen}"
        seen += line
    os.killpg(job.pid, signal.SIGINT)
    stdout, stderr = job.communicate(timeout=120)
    assert job.returncode == 130, stderr
    other = [line for line in stderr.splitlines() if not _LOG_LINE.match(line)]
    assert other == ["error: interrupted; rerun the same command to resume"], stderr
    assert "Traceback" not in stderr and stdout == ""
    shown = run_cli("evaluate", out, "--show", "--json")
    assert shown.exit_code == 0 and shown.stdout.strip() == "{}", shown.output
    assert not Path(f"{out}.lock").exists()  # the lock went with the launcher
