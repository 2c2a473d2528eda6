"""Issue 18, the first hour of a new user: exit codes, edge cases, refusals that say why."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import batchseg
from batchseg.cli.progress import EtaEstimator
from batchseg.words import plural
from tests.helpers.cli import run_cli

BATCHSEG = [sys.executable, "-m", "batchseg.cli"]


@pytest.fixture(scope="module")
def stores(tmp_path_factory, cluster_address) -> dict[str, Path]:
    """A finished store without failures and one with a failed image."""
    from tests.helpers.images import write_collection

    base = tmp_path_factory.mktemp("first_hour")
    clean, broken = base / "clean", base / "broken"
    write_collection(clean)
    write_collection(broken)
    (broken / "zz_corrupt.png").write_bytes(b"garbage")
    out = {"clean_images": clean, "broken_images": broken}
    for name, folder, code in (("clean", clean, 0), ("broken", broken, 3)):
        path = base / f"{name}.zarr"
        args = ["run", folder, "-m", "skimage.otsu", "-o", path, "--scheduler", cluster_address]
        result = run_cli(*args, "--shard-size", "6")
        assert result.exit_code == code, result.output
        out[name] = path
    return out


@pytest.mark.integration
def test_status_exits_3_when_images_failed(stores):
    broken = run_cli("status", stores["broken"])
    assert broken.exit_code == 3, broken.output
    assert "1 failed" in broken.stdout
    as_json = run_cli("status", stores["broken"], "--json")
    assert as_json.exit_code == 3
    assert json.loads(as_json.stdout)["failed"] == 1  # keys unchanged
    assert run_cli("status", stores["clean"]).exit_code == 0


@pytest.mark.integration
def test_noop_resume_starts_no_cluster_and_records_no_run(stores, monkeypatch):
    from batchseg.cluster import connect

    def no_cluster(*args, **kwargs):
        raise AssertionError("a finished store must not start a cluster")

    monkeypatch.setattr(connect, "connect", no_cluster)
    path = stores["clean"]
    runs_before = batchseg.open(str(path)).attrs["runs"]
    result = run_cli("run", stores["clean_images"], "-m", "skimage.otsu", "-o", path)
    assert result.exit_code == 0, result.output
    assert "nothing to do" in result.stdout
    view = batchseg.open(str(path))
    assert view.attrs["runs"] == runs_before  # no run of 0 images
    assert len(view.table()) == 24 and (view.table()["status"] == "done").all()
    # failures left alone on purpose: nothing to do either, and exit 3 as the store says
    again = run_cli(
        "run", stores["broken_images"], "-m", "skimage.otsu", "-o", stores["broken"],
        "--no-retry-failed",
    )  # fmt: skip
    assert again.exit_code == 3 and "nothing to do" in again.stdout, again.output


@pytest.mark.integration
def test_refusal_names_what_differs(stores, tmp_path):
    path, images = stores["clean"], stores["clean_images"]
    other_method = run_cli("run", images, "-m", "skimage.yen", "-o", path)
    assert other_method.exit_code == 1
    assert "method skimage.otsu -> skimage.yen" in other_method.output
    lines = [line for line in other_method.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    # two images more, one less: counted
    more = tmp_path / "more"
    shutil.copytree(images, more)
    files = sorted(p for p in more.rglob("*.png"))
    files[0].unlink()
    for i in range(2):
        (more / f"new_{i}.png").write_bytes(files[1].read_bytes())
    moved = run_cli("run", more, "-m", "skimage.otsu", "-o", path)
    assert moved.exit_code == 1
    assert "2 images added" in moved.output and "1 image removed" in moved.output, moved.output


@pytest.mark.integration
def test_refusal_names_the_changed_parameter(tmp_path, cluster_address):
    from tests.helpers.images import write_collection

    images = tmp_path / "images"
    write_collection(images)
    out = tmp_path / "slic.zarr"
    base = ["run", images, "-m", "skimage.slic", "-o", out, "--scheduler", cluster_address]
    assert run_cli(*base, "-p", "n_segments=50").exit_code == 0
    refused = run_cli(*base, "-p", "n_segments=80")
    assert refused.exit_code == 1
    assert "n_segments 50 -> 80" in refused.output, refused.output


@pytest.mark.integration
def test_mask_creates_folders_and_refuses_a_wrong_suffix(stores, tmp_path):
    path = stores["clean"]
    image_id = batchseg.open(str(path)).table()["image_id"].iloc[0]
    target = tmp_path / "missing" / "deeper" / "x.png"
    made = run_cli("mask", path, image_id, "-o", target)
    assert made.exit_code == 0, made.output
    assert target.read_bytes().startswith(b"\x89PNG")
    jpg = tmp_path / "x.jpg"
    refused = run_cli("mask", path, image_id, "-o", jpg)
    assert refused.exit_code == 2
    assert refused.output.strip().count("\n") == 0 and ".png" in refused.output
    assert not jpg.exists()


def _cut_pipe(*args: object) -> subprocess.CompletedProcess[bytes]:
    """Run ``batchseg ARGS`` with a stdout whose reader has gone (``| head -0``)."""
    read, write = os.pipe()
    os.close(read)  # every write to stdout now fails with EPIPE
    try:
        return subprocess.run(
            [*BATCHSEG, *map(str, args)], stdout=write, stderr=subprocess.PIPE, timeout=120
        )
    finally:
        os.close(write)


@pytest.mark.integration
def test_broken_pipe_ends_quietly(stores):
    for args in (
        ("status", stores["broken"], "--all"),
        ("query", stores["clean"], "--format", "csv"),
        ("query", stores["clean"]),  # a rich table
        ("stats", stores["clean"]),
        ("methods",),
        ("--help",),
    ):
        done = _cut_pipe(*args)
        assert done.stderr == b"", (args, done.stderr.decode())
        # 141 = 128 + SIGPIPE, as a shell reports it; click ends its own help output with 1
        assert done.returncode == (1 if args == ("--help",) else 141), args


def test_plural():
    assert plural(1, "shape bucket") == "1 shape bucket"
    assert plural(0, "shape") == "0 shapes" and plural(2, "image") == "2 images"


def test_eta_waits_for_a_few_shards():
    now = [0.0]
    eta = EtaEstimator(min_updates=3, clock=lambda: now[0])
    # the first shard takes 30 s (warm-up), then one shard of 10 images every second
    now[0] = 30.0
    eta.update(10, 1000)
    assert eta.seconds_left() is None and "few shards" in eta.text()
    for k in range(1, 4):
        now[0] = 30.0 + k
        eta.update(10 + 10 * k, 1000)
        if k < 3:
            assert eta.seconds_left() is None
    left = eta.seconds_left()
    assert left is not None and abs(left - 96.0) < 1e-6  # 960 images at 10/s, not 960 * 3 s
    assert eta.text() == "ETA 96 s"
    now[0] = 200.0
    eta.update(1000, 1000)
    assert eta.seconds_left() == 0.0


@pytest.mark.integration
def test_query_defaults_sort_ids_and_integers(stores):
    path = stores["clean"]
    table = run_cli("query", path, "-w", "pixels_foreground > 0", "--sort", "-pixels_foreground")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    head = "".join(lines[: next(i for i, line in enumerate(lines) if line.startswith("┡"))])
    assert "image_id" in head and "status" in head and "pixels_" in head  # headers break at _
    assert "error" not in head and "uri" not in head  # a few key columns, not all
    rows = json.loads(
        run_cli(
            "query", path, "-w", "pixels_foreground > 0", "--sort", "-pixels_foreground",
            "-f", "json", "-c", "image_id,pixels_*", "--id", "colour/*",
        ).stdout
    )  # fmt: skip
    assert rows and all(r["image_id"].startswith("colour/") for r in rows)
    values = [r["pixels_foreground"] for r in rows]
    assert values == sorted(values, reverse=True)
    assert all(isinstance(v, int) for v in values)  # not 264.0
    csv = run_cli("query", path, "-f", "csv", "-c", "height,width").stdout
    assert ".0," not in csv and ".0\n" not in csv
    hint = run_cli("query", path, "-w", "status = 'done'")
    assert hint.exit_code == 2 and "'=='" in hint.output


@pytest.mark.integration
def test_unknown_image_id_suggests_near_matches(stores, tmp_path):
    path = stores["clean"]
    image_id = str(batchseg.open(str(path)).table()["image_id"].iloc[0])  # e.g. colour/img_00.png
    typed = image_id.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    for command, out in (("mask", tmp_path / "m.png"), ("export", tmp_path / "e.ome.zarr")):
        result = run_cli(command, path, typed, "-o", out)
        assert result.exit_code == 1
        assert f"did you mean {image_id!r}" in result.stderr, result.output
        assert len(result.stderr.splitlines()) == 1
