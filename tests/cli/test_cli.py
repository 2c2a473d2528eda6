"""The CLI as a user runs it: commands, outputs and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.cli import run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def done_store(tmp_path_factory, cluster_address) -> tuple[Path, Path]:
    from tests.helpers.images import write_collection

    base = tmp_path_factory.mktemp("cli")
    images = base / "images"
    write_collection(images)
    (images / "corrupt.png").write_bytes(b"garbage")
    out = base / "out.zarr"
    result = run_cli(
        "run",
        str(images),
        "--method",
        "skimage.otsu",
        "--output",
        str(out),
        "--scheduler",
        cluster_address,
        "--shard-size",
        "4",
    )
    assert result.exit_code == 3, result.output
    return images, out


def test_run_reports_and_exit_code(done_store):
    _, out = done_store
    result = run_cli("status", str(out), "--json")
    assert result.exit_code == 3  # a store with a failed image, like `run`
    report = json.loads(result.stdout)
    assert (report["done"], report["failed"], report["pending"]) == (24, 1, 0)
    assert report["failures"][0]["image_id"] == "corrupt.png"


def test_query_formats(done_store):
    _, out = done_store
    result = run_cli(
        "query",
        str(out),
        "--where",
        "fraction_foreground > 0.1 and status == 'done'",
        "--columns",
        "fraction_foreground,pixels_*",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows and all(r["fraction_foreground"] > 0.1 for r in rows)
    assert set(rows[0]) == {
        "image_id",
        "fraction_foreground",
        "pixels_background",
        "pixels_foreground",
    }
    limited = run_cli(
        "query", str(out), "--where", "fraction_foreground >= 0", "--limit", "3", "--format", "csv"
    )
    assert limited.stdout.count("\n") == 4  # header + 3 rows
    table = run_cli("query", str(out), "--where", "height > 0")
    assert table.exit_code == 0 and "image_id" in table.stdout


def test_query_refuses_code(done_store, tmp_path):
    _, out = done_store
    marker = tmp_path / "pwned"
    result = run_cli("query", str(out), "--where", f"__import__('os').system('touch {marker}')")
    assert result.exit_code == 2
    assert not marker.exists()
    assert "error:" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_mask_and_overlay(done_store, tmp_path):
    images, out = done_store
    target = tmp_path / "m.png"
    assert run_cli("mask", str(out), "colour/img_000.png", "--output", str(target)).exit_code == 0
    mask = np.asarray(Image.open(target))
    source = np.asarray(Image.open(images / "colour/img_000.png"))
    assert mask.shape == source.shape
    over = tmp_path / "o.png"
    assert (
        run_cli("mask", str(out), "colour/img_000.png", "-o", str(over), "--overlay").exit_code == 0
    )
    assert np.asarray(Image.open(over)).shape == source.shape
    missing = run_cli("mask", str(out), "nope.png", "-o", str(over))
    assert missing.exit_code == 1 and "not in the store" in missing.stderr
    failed = run_cli("mask", str(out), "corrupt.png", "-o", str(over))
    assert failed.exit_code == 1 and "failed" in failed.stderr


def test_stats(done_store):
    _, out = done_store
    result = run_cli("stats", str(out), "--json")
    summary = json.loads(result.stdout)
    assert summary["done"] == 24 and summary["failed"] == 1
    assert set(summary["classes"]) == {"background", "foreground"}
    text = run_cli("stats", str(out))
    assert "foreground" in text.stdout


def test_methods_lists_everything():
    result = run_cli("methods", "--json")
    info = {m["id"]: m for m in json.loads(result.stdout)}
    for mid in ("skimage.otsu", "skimage.slic", "kmeans", "skimage.watershed"):
        assert mid in info
    assert info["skimage.otsu"]["classes"] == ["background", "foreground"]
    assert info["skimage.slic"]["kind"] == "regions"
    assert "n_segments" in run_cli("methods").stdout


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["run", "{images}", "--method", "nope", "-o", "{out}"], 2, "unknown method"),
        (
            ["run", "{images}", "--method", "skimage.otsu", "-o", "{out}", "-p", "x=1"],
            2,
            "no parameter",
        ),
        (
            ["run", "{images}", "--method", "skimage.slic", "-o", "{out}", "-p", "n_segments=abc"],
            2,
            "expects int",
        ),
        (
            ["run", "/does/not/exist", "--method", "skimage.otsu", "-o", "{out}"],
            1,
            "input not found",
        ),
        (["run", "{images}", "-o", "{out}"], 2, "missing 'method'"),
        (["status", "/does/not/exist.zarr"], 1, "no store"),
    ],
)
def test_errors_are_one_line(done_store, tmp_path, args, code, needle):
    images, _ = done_store
    args = [a.format(images=images, out=tmp_path / "x.zarr") for a in args]
    result = run_cli(*args)
    assert result.exit_code == code, result.output
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_job_spec_file_and_unknown_key(tmp_path, cluster_address):
    from tests.helpers.images import write_collection

    write_collection(tmp_path / "imgs", n=6)
    spec = tmp_path / "job.toml"
    spec.write_text(
        'input = "imgs"\nmethod = "skimage.slic"\noutput = "o.zarr"\n[params]\nn_segments = 20\n'
    )
    result = run_cli("run", str(spec), "--scheduler", cluster_address, "-p", "compactness=5")
    assert result.exit_code == 0, result.output
    import batchseg

    params = batchseg.open(str(tmp_path / "o.zarr")).attrs["method"]["params"]
    assert params["n_segments"] == 20 and params["compactness"] == 5.0
    spec.write_text('input = "imgs"\nmethod = "skimage.otsu"\noutput = "o.zarr"\ncolour = 1\n')
    bad = run_cli("run", str(spec))
    assert bad.exit_code == 2 and "'colour'" in bad.stderr


def test_console_script_version():
    exe = Path(sys.executable).with_name("batchseg")
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, env=os.environ)
    assert out.returncode == 0 and out.stdout.startswith("batchseg ")
