"""Issue 27 item 23: stored uris are normalised, however the input was spelled
(``batchseg run data/../data/imgs``), except where a ``..`` follows a folder link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batchseg.io.sources import discover, local_uri
from tests.helpers.images import write_collection


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``data/imgs`` (3 PNGs) and ``lists/`` in ``tmp_path``, which is the working directory."""
    write_collection(tmp_path / "data" / "imgs", n=3)
    (tmp_path / "lists").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _uris(source: str) -> dict[str, str]:
    return {r.image_id: r.uri for r in discover(source)}


def test_uris_of_every_spelling_are_normalised(tree: Path) -> None:
    want = _uris(str(tree / "data" / "imgs"))
    assert all(".." not in u and "//" not in u for u in want.values())
    for spelled in (
        "data/../data/imgs",
        "data/./imgs/",
        "lists/../data//imgs",
        "../" + tree.name + "/data/imgs",
    ):
        assert _uris(spelled) == want, spelled
    glob_ids = {i.rsplit("/", 1)[-1]: u for i, u in _uris("data/../data/imgs/*/*.png").items()}
    assert set(glob_ids.values()) <= set(want.values()) and glob_ids
    some = sorted(want)[0]
    assert _uris(f"data/../data/imgs/{some}") == {Path(some).name: want[some]}


def test_manifest_entries_with_dot_segments_are_normalised(tree: Path) -> None:
    want = _uris("data/imgs")
    ids = sorted(want)
    (tree / "lists" / "a.txt").write_text("".join(f"../data/./imgs/{i}\n" for i in ids))
    got = _uris("lists/../lists/a.txt")
    assert list(got) == [f"../data/./imgs/{i}" for i in ids]  # ids as written
    assert list(got.values()) == [want[i] for i in ids]


def test_a_dot_dot_after_a_folder_link_keeps_its_meaning(tree: Path) -> None:
    (tree / "elsewhere" / "deep").mkdir(parents=True)
    os.symlink(tree / "data" / "imgs", tree / "elsewhere" / "deep" / "link")
    spelled = "elsewhere/deep/link/../imgs"  # the OS: data/imgs/.. -> data, then data/imgs
    uri = local_uri(spelled)
    assert os.path.realpath(uri) == os.path.realpath(tree / "data" / "imgs")
    assert local_uri("data/../data/imgs") == str(tree / "data" / "imgs")
