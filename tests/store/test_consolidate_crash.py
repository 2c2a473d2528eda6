"""Issue 17 item 3: a launcher killed while it rewrites the consolidated table never leaves a
silently wrong store. The new table is built beside the old one and switched to with one
attribute write; readers are right (or loud) at every kill point, and a rerun repairs.

Attack reproduced: SIGKILL (``BATCHSEG_FAULT``) inside consolidation, in a real ``batchseg run``
subprocess and in a forced rewrite of a finished store's valid table.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

import batchseg
from batchseg import store
from tests.helpers.images import write_collection

pytestmark = [pytest.mark.integration, pytest.mark.system]

BATCHSEG = str(Path(sys.executable).with_name("batchseg"))
N_GOOD, N_BAD = 10, 3


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Ten good images and three that fail (not images at all)."""
    folder = tmp_path_factory.mktemp("consolidate") / "images"
    write_collection(folder, n=N_GOOD, seed=3)
    for i in range(N_BAD):
        (folder / f"zz_broken_{i}.png").write_bytes(b"not a png at all " * (i + 1))
    return folder


def _run(images: Path, out: Path, address: str, *extra: str, fault: str | None = None):
    cmd = [BATCHSEG, "run", str(images), "-m", "skimage.otsu", "-o", str(out),
           "--shard-size", "2", "--scheduler", address, *extra]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "BATCHSEG_FAULT"}
    if fault:
        env["BATCHSEG_FAULT"] = fault
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _truth(out: Path) -> dict[str, int]:
    """Counts from the per-shard arrays (the authority), not from any consolidated table."""
    root = zarr.open_group(str(out), mode="r")
    status = np.asarray(root["catalogue/status"][:])
    real = np.asarray(root["catalogue/bucket"][:]) >= 0
    return {
        "done": int((status[real] == 2).sum()),
        "failed": int((status[real] == 3).sum()),
        "pending": int((status[real] == 1).sum()),
    }


def _counts(out: Path) -> dict[str, int]:
    s = batchseg.open(str(out)).status()
    return {k: s[k] for k in ("done", "failed", "pending")}


def _table_nodes(out: Path) -> list[str]:
    root = zarr.open_group(str(out), mode="r")
    return sorted(k for k in root.group_keys() if k == "table" or k.startswith("table-"))


def _assert_readers_right(out: Path) -> None:
    want = {"done": N_GOOD, "failed": N_BAD, "pending": 0}
    assert _truth(out) == want
    assert _counts(out) == want
    view = batchseg.open(str(out))
    # NaN statistics of failed rows never match
    assert len(view.query("pixels_foreground >= 0")) == N_GOOD
    assert sorted(view.table()["status"].astype(str)) == sorted(
        ["done"] * N_GOOD + ["failed"] * N_BAD
    )


@pytest.fixture(scope="module")
def finished_once(images, cluster_address, tmp_path_factory) -> Path:
    """One finished run (some images failed), written once for the module."""
    out = tmp_path_factory.mktemp("finished") / "out.zarr"
    proc = _run(images, out, cluster_address)
    assert proc.returncode == 3, proc.stderr  # some images failed
    attrs = batchseg.open(str(out)).attrs
    assert attrs["consolidated"] and attrs["table_node"] in _table_nodes(out)
    _assert_readers_right(out)
    return out


@pytest.fixture
def finished(finished_once, tmp_path) -> Path:
    """A copy of the finished store for one test to attack (the job identity a rerun checks
    leaves out the output path)."""
    out = tmp_path / "out.zarr"
    shutil.copytree(finished_once, out)
    return out


@pytest.mark.parametrize("point", ["consolidating", "consolidated"])
def test_run_killed_while_consolidating(point, finished, images, cluster_address):
    """A rerun (--retry-failed: the broken images fail again) killed inside consolidation."""
    crashed = _run(images, finished, cluster_address, "--retry-failed", fault=point)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    _assert_readers_right(finished)  # right, at either kill point
    if point == "consolidating":
        assert not batchseg.open(str(finished)).attrs["consolidated"]  # readers use the shards
    # a rerun with nothing to do repairs: one valid consolidated table, leftovers removed
    again = _run(images, finished, cluster_address, "--no-retry-failed")  # nothing to do
    assert again.returncode == 3, again.stderr
    attrs = batchseg.open(str(finished)).attrs
    assert attrs["consolidated"] and _table_nodes(finished) == [attrs["table_node"]]
    _assert_readers_right(finished)


@pytest.mark.parametrize("point", ["consolidating", "consolidated"])
def test_forced_rewrite_of_a_valid_table_killed(point, finished):
    """Rewriting while ``consolidated`` stays true (the issue's window): the old table serves."""
    code = (
        "import sys; from batchseg import store; "
        "root = store.open_group(sys.argv[1], mode='r+'); store.consolidate(root, force=True)"
    )
    before = batchseg.open(str(finished)).attrs["table_node"]
    proc = subprocess.run(
        [sys.executable, "-c", code, str(finished)],
        env={**os.environ, "BATCHSEG_FAULT": point}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    attrs = batchseg.open(str(finished)).attrs
    assert attrs["consolidated"]
    if point == "consolidating":  # half-written new table beside the old one, not switched to
        assert attrs["table_node"] == before and len(_table_nodes(finished)) == 2
    else:  # switched; the old one not yet removed
        assert attrs["table_node"] != before and before in _table_nodes(finished)
    _assert_readers_right(finished)
    root = store.open_group(str(finished), mode="r+")
    assert store.consolidate(root, force=True)
    assert _table_nodes(finished) == [store.attributes(root)["table_node"]]
    _assert_readers_right(finished)


def test_rerun_with_nothing_to_do_keeps_the_valid_table(finished, images, cluster_address):
    node = batchseg.open(str(finished)).attrs["table_node"]
    files = sorted((finished / node).rglob("*"))
    stamps = [(p, p.stat().st_mtime_ns) for p in files if p.is_file()]
    again = _run(images, finished, cluster_address, "--no-retry-failed")
    assert again.returncode == 3, again.stderr
    assert "nothing to do" in again.stdout, again.stdout
    assert batchseg.open(str(finished)).attrs["table_node"] == node
    assert [(p, p.stat().st_mtime_ns) for p, _ in stamps] == stamps  # not rewritten
    _assert_readers_right(finished)
