"""The issue-17 item 1 attacks through the CLI: ``--overwrite`` never deletes what is not ours.

Each refusal happens before any cluster or store exists (exit 2, one line).
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.cli import run_cli
from tests.helpers.images import write_collection


def _one_usage_error(result, needle: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_overwrite_refuses_a_precious_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    imgs = tmp_path / "imgs"
    write_collection(imgs, n=3)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("x")
    result = run_cli("run", imgs, "-m", "skimage.otsu", "-o", precious, "--overwrite")
    _one_usage_error(result, "not a batchseg store")
    assert (precious / "thesis.txt").read_text() == "x"
    dry = run_cli("run", imgs, "-m", "skimage.otsu", "-o", precious, "--overwrite", "--dry-run")
    _one_usage_error(dry, "not a batchseg store")


def test_overwrite_refuses_the_working_directory_holding_the_inputs(tmp_path, monkeypatch):
    imgs = tmp_path / "imgs"
    inputs = write_collection(imgs, n=3)
    monkeypatch.chdir(imgs)
    result = run_cli("run", ".", "-m", "skimage.otsu", "-o", ".", "--overwrite")
    _one_usage_error(result, "working directory")
    monkeypatch.chdir(tmp_path)
    for out in (imgs, tmp_path, Path(str(imgs) + "/.")):
        result = run_cli("run", imgs, "-m", "skimage.otsu", "-o", out, "--overwrite")
        assert result.exit_code == 2, (out, result.output)
    assert all(p.exists() for p in inputs)


def test_overwrite_refuses_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    imgs = tmp_path / "imgs"
    write_collection(imgs, n=3)
    notes = tmp_path / "notes.txt"
    notes.write_text("keep")
    result = run_cli("run", imgs, "-m", "skimage.otsu", "-o", notes, "--overwrite")
    _one_usage_error(result, "it is a file")
    assert notes.read_text() == "keep"


def test_a_running_job_is_safe_from_aliases_of_its_store(tmp_path, monkeypatch):
    """Issue 17 item 6: `-o STORE/.` or a symlink alias no longer gets a lock of its own, so a
    second `--overwrite` launcher is refused instead of wiping the running job's store."""
    import json
    import os

    from batchseg.store.lock import StoreLock

    monkeypatch.chdir(tmp_path)
    imgs = tmp_path / "imgs"
    write_collection(imgs, n=3)
    store = tmp_path / "out.zarr"
    store.mkdir()
    meta = {"zarr_format": 3, "node_type": "group", "attributes": {"batchseg": {}}}
    (store / "zarr.json").write_text(json.dumps(meta))
    os.symlink(tmp_path, tmp_path / "alias")
    with StoreLock(str(store)):  # the running job
        for out in (f"{store}/.", tmp_path / "alias" / "out.zarr", f"{store}/"):
            result = run_cli("run", imgs, "-m", "skimage.otsu", "-o", out, "--overwrite")
            assert result.exit_code == 1, (out, result.output)
            assert "in use by another launcher" in result.stderr
            assert len(result.stderr.strip().splitlines()) == 1
        assert (store / "zarr.json").exists()
        assert sorted(os.listdir(tmp_path)) == ["alias", "imgs", "out.zarr", "out.zarr.lock"]
        assert not (store / "..lock").exists()
