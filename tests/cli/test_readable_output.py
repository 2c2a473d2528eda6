"""Human-readable output is safe and readable (issue 17 items 10 and 14, item 4's CLI part,
and issue 11's ``mask --confidence --level`` bug).

- control characters in file names never reach the terminal raw (status, query table and CSV,
  plain lines, error lines); JSON escapes them by itself;
- ``status`` groups many failures by error (``--all`` lists each, ``--json`` keeps them all);
- ``verify`` finds a done image whose label data is gone and sets it back for the next run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from batchseg.cli.text import failure_lines, group_failures, printable
from tests.helpers.cli import run_cli
from tests.helpers.images import make_image

EVIL_GOOD = "evil\x1b[31m.png"
EVIL_BAD = "bad\x1b]0;pwned\x07\u009b2J.png"
N_CORRUPT = 12
RAW = ("\x1b", "\x07", "\u009b")


def _no_raw_controls(text: str) -> None:
    for ch in RAW:
        assert ch not in text, repr(text)


def test_printable_escapes_every_kind_of_control():
    assert printable("a\x1b[31mb") == "a\\x1b[31mb"
    assert printable("x\ny\tz\x7f\u0085\u009b") == "x\\x0ay\\x09z\\x7f\\x85\\x9b"
    assert printable("right\u202eleft") == "right\\u202eleft"
    assert printable("bytes\udcff\udcfe.png") == "bytes\\xff\\xfe.png"  # not UTF-8 on disk
    assert printable("plain é ü 日本.png") == "plain é ü 日本.png"


def test_failures_are_grouped_by_message():
    pairs = [
        (f"img_{i:06d}.png", f"cannot identify image file '/data/img_{i:06d}.png'")
        for i in range(100_000)
    ] + [("huge.png", "image has too many pixels")]
    groups = group_failures(pairs)
    assert [g.count for g in groups] == [100_000, 1]
    assert groups[0].message == "cannot identify image file <image>"
    assert groups[0].image_ids == [f"img_{i:06d}.png" for i in range(5)]
    lines = failure_lines(pairs, label="failed", show_all=False, command="batchseg status S")
    assert len(lines) == 5 and "and 99995 more" in lines[1] and "--all" in lines[-1]
    every = failure_lines(pairs, label="failed", show_all=True, command="batchseg status S")
    assert len(every) == 100_001
    many_kinds = [(f"i{i}", f"error number {i}") for i in range(1000)]
    lines = failure_lines(many_kinds, label="failed", show_all=False, command="c")
    assert len(lines) < 50 and "more kinds of error" in lines[-2]


@pytest.fixture(scope="module")
def evil_store(tmp_path_factory, cluster_address) -> Path:
    base = tmp_path_factory.mktemp("evil")
    images = base / "images"
    images.mkdir()
    rng = np.random.default_rng(3)
    for name in ("a.png", "b.png", EVIL_GOOD):
        Image.fromarray(make_image(rng, 40, 48, colour=False)).save(images / name, format="PNG")
    for i in range(N_CORRUPT):
        (images / f"corrupt_{i:02d}.png").write_bytes(b"garbage, not a png")
    (images / EVIL_BAD).write_bytes(b"garbage, not a png")
    out = base / "out.zarr"
    args = ["run", images, "-m", "skimage.otsu", "-o", out, "--shard-size", "4"]
    result = run_cli(*args, "--scheduler", cluster_address)
    assert result.exit_code == 3, result.output
    _no_raw_controls(result.output)
    return out


def test_status_escapes_and_groups(evil_store):
    result = run_cli("status", evil_store)
    assert result.exit_code == 3  # images failed (issue 18 item 7)
    _no_raw_controls(result.output)
    lines = result.stdout.splitlines()
    assert "3 done, 13 failed, 0 pending" in lines[0]
    assert len(lines) < 10  # grouped, not one line per failure
    assert any(line.strip().startswith("13 failed:") for line in lines)
    assert "--all" in lines[-1]
    every = run_cli("status", evil_store, "--all")
    failed = [line for line in every.stdout.splitlines() if line.startswith("  failed  ")]
    assert len(failed) == 13
    _no_raw_controls(every.output)
    assert any(printable(EVIL_BAD) in line for line in failed)
    report = json.loads(run_cli("status", evil_store, "--json").stdout)
    assert len(report["failures"]) == 13  # JSON keeps every failure
    assert EVIL_BAD in {f["image_id"] for f in report["failures"]}  # escaped by JSON, exact


def test_query_table_and_csv_escape(evil_store):
    for fmt in ("table", "csv"):
        result = run_cli("query", evil_store, "-f", fmt, "-c", "status,error")
        assert result.exit_code == 0, result.output
        _no_raw_controls(result.output)
        assert printable(EVIL_GOOD) in result.stdout
    as_json = json.loads(run_cli("query", evil_store, "-f", "json").stdout)
    assert EVIL_GOOD in {row["image_id"] for row in as_json}


def test_error_lines_escape(evil_store, tmp_path):
    result = run_cli("mask", evil_store, EVIL_BAD, "-o", tmp_path / "m.png")
    assert result.exit_code == 1
    _no_raw_controls(result.output)
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1


def test_mask_confidence_with_a_level_is_refused(evil_store, tmp_path):
    result = run_cli(
        "mask", evil_store, "a.png", "-o", tmp_path / "c.png", "--confidence", "--level", "2"
    )
    assert result.exit_code == 2, result.output
    assert "--level" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "c.png").exists()


def test_verify_finds_missing_label_data_and_the_next_run_repairs_it(
    evil_store, tmp_path, cluster_address
):
    store = tmp_path / "copy.zarr"
    shutil.copytree(evil_store, store)
    clean = run_cli("verify", store)
    assert clean.exit_code == 0 and "no damage" in clean.stdout, clean.output
    chunks = [p for p in (store / "labels").rglob("*") if p.is_file() and "c" in p.parts]
    assert chunks
    for chunk in chunks:  # every label chunk gone: the 3 done images lost their data
        chunk.unlink()
    report = run_cli("verify", store)
    assert report.exit_code == 3, report.output
    _no_raw_controls(report.output)
    assert "3 damaged" in report.stdout and "set back to pending" in report.stdout
    assert printable(EVIL_GOOD) in report.stdout
    status = json.loads(run_cli("status", store, "--json").stdout)
    assert (status["done"], status["pending"]) == (0, 3)
    images = Path(json.loads(run_cli("status", evil_store, "--json").stdout)["store"]).parent
    args = ["run", images / "images", "-m", "skimage.otsu", "-o", store, "--shard-size", "4"]
    rerun = run_cli(*args, "--scheduler", cluster_address)
    assert rerun.exit_code == 3, rerun.output  # the corrupt files still fail
    again = run_cli("status", store, "--verify")
    assert again.exit_code == 3 and "3 done" in again.stdout, again.output  # failures remain


def test_export_overwrite_never_replaces_a_job_store(evil_store, tmp_path):
    """The same --overwrite rule for export (issue 17 item 1): a job store is not an export."""
    victim = tmp_path / "victim.zarr"
    shutil.copytree(evil_store, victim)
    result = run_cli("export", evil_store, "a.png", "-o", victim, "--overwrite")
    assert result.exit_code == 2, result.output
    assert "not a batchseg OME-Zarr export" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert run_cli("status", victim).exit_code == 3  # still a readable job store (failures)
    ok = tmp_path / "a.ome.zarr"
    assert run_cli("export", evil_store, "a.png", "-o", ok).exit_code == 0
    assert run_cli("export", evil_store, "b.png", "-o", ok, "--overwrite").exit_code == 0
