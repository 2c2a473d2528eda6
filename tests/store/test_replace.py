"""``--overwrite`` replaces only what batchseg recognisably wrote (issue 17, item 1)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from batchseg.errors import UsageError
from batchseg.store.replace import check_replaceable, recognised


def _zarr_group(folder: Path, attributes: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"zarr_format": 3, "node_type": "group", "attributes": attributes}
    (folder / "zarr.json").write_text(json.dumps(meta))
    return folder


def _job_store(folder: Path) -> Path:
    _zarr_group(folder, {"batchseg": {"schema_version": 1, "fingerprint": "x"}})
    (folder / "catalogue").mkdir()
    return folder


def _refused(path: Path | str, needle: str, **kw) -> None:
    with pytest.raises(UsageError, match=needle) as exc:
        check_replaceable(str(path), **kw)
    assert "\n" not in str(exc.value) and str(exc.value).startswith("--overwrite refuses")


def test_non_store_folder_is_refused_and_kept(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("x")
    _refused(precious, "non-empty folder but not a batchseg store")
    _zarr_group(tmp_path / "other.zarr", {"someone": "else"})
    _refused(tmp_path / "other.zarr", "not a batchseg store")
    _zarr_group(tmp_path / "broken.zarr", {})
    (tmp_path / "broken.zarr" / "zarr.json").write_text("{not json")
    _refused(tmp_path / "broken.zarr", "not a batchseg store")
    assert (precious / "thesis.txt").read_text() == "x"


def test_missing_empty_and_batchseg_stores_are_replaceable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_replaceable(str(tmp_path / "missing.zarr"))
    (tmp_path / "empty").mkdir()
    check_replaceable(str(tmp_path / "empty"))
    check_replaceable(str(_job_store(tmp_path / "out.zarr")))
    check_replaceable(str(tmp_path / "out.zarr") + "/.")  # the same store, written oddly
    # a store whose creation was interrupted is recognisable too
    check_replaceable(str(_zarr_group(tmp_path / "half.zarr", {"batchseg_creating": {}})))
    check_replaceable(f"file://{tmp_path / 'out.zarr'}")


def test_working_directory_inputs_and_their_ancestors_are_refused(tmp_path, monkeypatch):
    images = tmp_path / "project" / "imgs"
    images.mkdir(parents=True)
    (images / "a.png").write_bytes(b"png")
    monkeypatch.chdir(images)
    _refused(".", "working directory")  # `-o . --overwrite` in the image folder
    _refused(tmp_path / "project", "working directory")
    monkeypatch.chdir(tmp_path)
    _refused(images, "the input", inputs=[str(images)])
    _refused(tmp_path / "project", "the input", inputs=[str(images / "*.png")])
    _refused(tmp_path / "project", "the input", inputs=[str(images / "a.png")])
    # even a real batchseg store may not be replaced when it holds the input
    store = _job_store(tmp_path / "s.zarr")
    _refused(store, "the input", inputs=[str(store / "inside" / "*.png")])
    assert (images / "a.png").exists()


def test_files_and_symlinks_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("keep")
    _refused(tmp_path / "notes.txt", "it is a file")
    store = _job_store(tmp_path / "real.zarr")
    os.symlink(store, tmp_path / "alias.zarr")
    _refused(tmp_path / "alias.zarr", "symbolic link")


def test_export_kind_recognises_exports_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    export = _zarr_group(tmp_path / "e.ome.zarr", {"ome": {"version": "0.5"}, "batchseg": {}})
    (export / "0").mkdir()
    job = _job_store(tmp_path / "job.zarr")
    check_replaceable(str(export), kind="export")
    _refused(job, "not a batchseg OME-Zarr export", kind="export")  # never a job store
    _refused(export, "not a batchseg store")  # and `run` never replaces an export
    plain_ome = _zarr_group(tmp_path / "viewer.zarr", {"ome": {"version": "0.5"}})
    (plain_ome / "0").mkdir()
    _refused(plain_ome, "not a batchseg OME-Zarr export", kind="export")
    assert recognised({"batchseg": {}}) and not recognised({"ome": {}, "batchseg": {}})


def test_object_store_prefix_must_hold_a_batchseg_store():
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    base = "memory://replace-test"
    check_replaceable(f"{base}/missing.zarr")
    fs.pipe(f"{base}/data/thesis.txt", b"x")
    _refused(f"{base}/data", "holds objects but not a batchseg store")
    meta = {"zarr_format": 3, "node_type": "group", "attributes": {"batchseg": {}}}
    fs.pipe(f"{base}/out.zarr/zarr.json", json.dumps(meta).encode())
    check_replaceable(f"{base}/out.zarr")
    meta["attributes"] = {"other": 1}
    fs.pipe(f"{base}/foreign.zarr/zarr.json", json.dumps(meta).encode())
    _refused(f"{base}/foreign.zarr", "zarr.json is not that of a batchseg store")
    assert fs.cat(f"{base}/data/thesis.txt") == b"x"
    fs.rm(base, recursive=True)
