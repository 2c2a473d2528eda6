"""Issue 18 item 4: manifests of absolute paths give ids relative to their common folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

import batchseg
from batchseg.io import sources
from batchseg.io.sources import discover
from tests.helpers.cli import run_cli


def _images(root: Path) -> list[Path]:
    paths = []
    for sub, name in (("cam1", "a.png"), ("cam2", "b.png"), ("cam2/night", "c.png")):
        folder = root / "data" / sub
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 10), 40 * len(paths), np.uint8)).save(folder / name)
        paths.append(folder / name)
    return paths


def test_absolute_txt_and_csv_manifests_give_relative_ids(tmp_path):
    paths = _images(tmp_path)
    txt = tmp_path / "list.txt"
    txt.write_text("\n".join(str(p) for p in paths) + "\n")
    csv = tmp_path / "list.csv"
    csv.write_text("path,height,width\n" + "".join(f"{p},8,10\n" for p in paths))
    for manifest in (txt, csv):
        refs = discover(str(manifest))
        assert [r.image_id for r in refs] == ["cam1/a.png", "cam2/b.png", "cam2/night/c.png"]
        assert [r.uri for r in refs] == [str(p) for p in paths]  # still read from where they are


def test_one_absolute_entry_is_its_file_name_and_relative_entries_stay_as_written(tmp_path):
    paths = _images(tmp_path)
    one = tmp_path / "one.txt"
    one.write_text(f"{paths[2]}\n")
    assert [r.image_id for r in discover(str(one))] == ["c.png"]
    mixed = tmp_path / "mixed.txt"
    mixed.write_text(f"data/cam1/a.png\n{paths[1]}\n")
    assert sorted(r.image_id for r in discover(str(mixed))) == sorted(
        ["data/cam1/a.png", str(paths[1])]
    )


def test_store_written_with_whole_path_ids_still_resumes(tmp_path, monkeypatch, cluster_address):
    paths = _images(tmp_path)
    manifest = tmp_path / "list.txt"
    manifest.write_text("\n".join(str(p) for p in paths) + "\n")
    out = tmp_path / "old.zarr"
    args = ("run", manifest, "-m", "skimage.otsu", "-o", out, "--scheduler", cluster_address)
    with monkeypatch.context() as m:  # the ids of earlier versions: the paths as written
        m.setattr(sources, "relative_manifest_ids", lambda refs: refs)
        assert run_cli(*args).exit_code == 0
    old_ids = list(batchseg.open(str(out)).table()["image_id"])
    assert old_ids == [str(p) for p in paths]
    again = run_cli(*args)
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.output
    assert list(batchseg.open(str(out)).table()["image_id"]) == old_ids
    fresh = tmp_path / "new.zarr"
    assert run_cli("run", manifest, "-m", "skimage.otsu", "-o", fresh, "--scheduler",
                   cluster_address).exit_code == 0  # fmt: skip
    assert list(batchseg.open(str(fresh)).table()["image_id"])[0] == "cam1/a.png"
