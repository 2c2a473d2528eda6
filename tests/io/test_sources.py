"""Tests for batchseg.io.sources: directories, globs and manifests (no pixels are read)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from batchseg.errors import InputError
from batchseg.io.sources import ImageRef, discover


def _png(path: Path, h: int = 6, w: int = 8, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(path)
    return path


def _ids(refs: list[ImageRef]) -> list[str]:
    return [r.image_id for r in refs]


# --------------------------------------------------------------------------- directories


def test_directory_recurses_sorted_relative_posix_ids(tmp_path: Path) -> None:
    for rel in ["b.png", "a.png", "sub/c.png"]:
        _png(tmp_path / rel)
    (tmp_path / "sub" / "deeper").mkdir()
    (tmp_path / "other").mkdir()
    Image.new("RGB", (5, 4)).save(tmp_path / "sub/deeper/d.jpg")
    Image.new("L", (5, 4)).save(tmp_path / "other/e.tif")
    refs = discover(str(tmp_path))
    assert _ids(refs) == sorted(["a.png", "b.png", "other/e.tif", "sub/c.png", "sub/deeper/d.jpg"])
    assert _ids(refs) == sorted(_ids(refs))
    for ref in refs:
        assert "\\" not in ref.image_id
        assert os.path.isabs(ref.uri)
        assert Path(ref.uri) == (tmp_path / ref.image_id).absolute()
        assert ref.height is None and ref.width is None


def test_directory_skips_non_images_and_hidden(tmp_path: Path) -> None:
    _png(tmp_path / "keep.png")
    _png(tmp_path / "UPPER.PNG")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "data.csv").write_text("path\nkeep.png\n")
    (tmp_path / "noext").write_bytes(b"\x89PNG")
    _png(tmp_path / ".hidden.png")
    _png(tmp_path / ".cache" / "inside.png")
    _png(tmp_path / "sub" / ".also_hidden.png")
    refs = discover(str(tmp_path))
    assert _ids(refs) == ["UPPER.PNG", "keep.png"]


def test_directory_unusual_names(tmp_path: Path) -> None:
    names = ["with space.png", "café ü.png", "日本語/画像 1.png", "a[1].png", "100%.png"]
    for i, name in enumerate(names):
        _png(tmp_path / name, seed=i)
    refs = discover(str(tmp_path))
    assert _ids(refs) == sorted(names)
    for ref in refs:
        assert os.path.isfile(ref.uri)


@pytest.mark.timeout(30)
def test_directory_symlink_loop_does_not_hang_or_duplicate(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _png(root / "a.png")
    _png(root / "sub" / "b.png")
    try:
        os.symlink(root, root / "sub" / "loop", target_is_directory=True)
        os.symlink(root / "sub", root / "sub" / "self", target_is_directory=True)
    except (OSError, NotImplementedError):
        pytest.skip("symlinks not supported here")
    refs = discover(str(root))
    assert _ids(refs) == ["a.png", "sub/b.png"]
    assert len({os.path.realpath(r.uri) for r in refs}) == len(refs)


def test_single_image_file(tmp_path: Path) -> None:
    path = _png(tmp_path / "one image.png")
    refs = discover(str(path))
    assert refs == [ImageRef("one image.png", str(path.absolute()))]


def test_unsupported_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "thing.dat"
    path.write_text("x")
    with pytest.raises(InputError, match="thing.dat"):
        discover(str(path))


# --------------------------------------------------------------------------- globs


def test_glob_recursive_ids_relative_to_fixed_prefix(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for rel in ["x.png", "s1/y.png", "s1/s2/z.png"]:
        _png(data / rel)
    Image.new("RGB", (4, 4)).save(data / "s1" / "skip.jpg")
    (data / "s1" / "fake.png").mkdir()  # a folder matching the pattern is not an image
    refs = discover(f"{data}/**/*.png")
    assert _ids(refs) == ["s1/s2/z.png", "s1/y.png", "x.png"]
    for ref in refs:
        assert Path(ref.uri) == (data / ref.image_id).absolute()


def test_glob_relative_pattern(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _png(tmp_path / "imgs" / "a.png")
    _png(tmp_path / "imgs" / "b.png")
    _png(tmp_path / "imgs" / "c.jpg")
    monkeypatch.chdir(tmp_path)
    refs = discover("imgs/*.png")
    assert _ids(refs) == ["a.png", "b.png"]
    assert all(os.path.isabs(r.uri) for r in refs)
    refs = discover("imgs/[ab].png")
    assert _ids(refs) == ["a.png", "b.png"]


def test_glob_prefix_within_name(tmp_path: Path) -> None:
    _png(tmp_path / "d" / "cat_1.png")
    _png(tmp_path / "d" / "cat_2.png")
    _png(tmp_path / "d" / "dog_1.png")
    refs = discover(f"{tmp_path}/d/cat_*.png")
    assert _ids(refs) == ["cat_1.png", "cat_2.png"]


def test_glob_without_matches_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no images"):
        discover(f"{tmp_path}/**/*.png")


def test_existing_folder_with_glob_characters_is_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "set[1]"
    _png(folder / "a.png")
    assert _ids(discover(str(folder))) == ["a.png"]


# --------------------------------------------------------------------------- txt manifests


def test_txt_manifest(tmp_path: Path) -> None:
    _png(tmp_path / "imgs" / "a.png")
    _png(tmp_path / "imgs" / "sub" / "b.png")
    absolute = _png(tmp_path / "elsewhere" / "c.png")
    manifest = tmp_path / "lists" / "m.txt"
    manifest.parent.mkdir()
    manifest.write_text(
        "# a comment\n"
        "\n"
        "../imgs/sub/b.png\n"
        "   ../imgs/a.png   \n"
        f"{absolute}\n"
        "   # indented comment\n"
        "\n",
        encoding="utf-8",
    )
    refs = discover(str(manifest))
    by_id = {r.image_id: r for r in refs}
    assert _ids(refs) == sorted(["../imgs/sub/b.png", "../imgs/a.png", str(absolute)])
    assert os.path.samefile(by_id["../imgs/a.png"].uri, tmp_path / "imgs" / "a.png")
    assert os.path.samefile(by_id["../imgs/sub/b.png"].uri, tmp_path / "imgs" / "sub" / "b.png")
    assert by_id[str(absolute)].uri == str(absolute)


def test_txt_manifest_relative_to_manifest_not_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _png(tmp_path / "m" / "a.png")
    (tmp_path / "m" / "list.txt").write_text("a.png\n")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (ref,) = discover("../m/list.txt")
    assert ref.image_id == "a.png"
    assert os.path.isabs(ref.uri)
    assert os.path.samefile(ref.uri, tmp_path / "m" / "a.png")


def test_txt_manifest_crlf_bom_and_unicode(tmp_path: Path) -> None:
    manifest = tmp_path / "m.txt"
    manifest.write_bytes("\ufeffcafé.png\r\nb c.png\r\n".encode())
    assert _ids(discover(str(manifest))) == ["b c.png", "café.png"]


def test_txt_manifest_keeps_urls(tmp_path: Path) -> None:
    manifest = tmp_path / "m.txt"
    manifest.write_text("s3://bucket/x.png\nhttps://host/y.png\n")
    refs = discover(str(manifest))
    assert [(r.image_id, r.uri) for r in refs] == [
        ("https://host/y.png", "https://host/y.png"),
        ("s3://bucket/x.png", "s3://bucket/x.png"),
    ]


def test_manifest_duplicates_deduplicated(tmp_path: Path) -> None:
    manifest = tmp_path / "m.txt"
    manifest.write_text("a.png\nb.png\na.png\n  a.png\nb.png\n")
    refs = discover(str(manifest))
    assert _ids(refs) == ["a.png", "b.png"]


def test_comment_only_manifest_is_an_error(tmp_path: Path) -> None:
    manifest = tmp_path / "m.txt"
    manifest.write_text("# nothing\n\n")
    with pytest.raises(InputError, match="no images"):
        discover(str(manifest))


def test_undecodable_txt_manifest_is_an_input_error(tmp_path: Path) -> None:
    manifest = tmp_path / "m.txt"
    manifest.write_bytes(b"\xff\xfe\xfa bad\n")
    with pytest.raises(InputError, match="manifest"):
        discover(str(manifest))


# --------------------------------------------------------------------------- csv manifests


def test_csv_manifest_without_sizes(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    manifest = tmp_path / "m.csv"
    manifest.write_text("label,path\ncat,b.png\ndog,a.png\n,\n")
    refs = discover(str(manifest))
    assert _ids(refs) == ["a.png", "b.png"]
    assert refs[0].uri == str(tmp_path / "a.png")
    assert all(r.height is None and r.width is None for r in refs)


def test_csv_manifest_with_sizes(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        ' path , width , height \nsub/b.png, 40, 30\na.png,20,10\nc.png,,\n"with, comma.png",7,5\n'
    )
    refs = {r.image_id: r for r in discover(str(manifest))}
    assert sorted(refs) == ["a.png", "c.png", "sub/b.png", "with, comma.png"]
    assert (refs["a.png"].height, refs["a.png"].width) == (10, 20)
    assert (refs["sub/b.png"].height, refs["sub/b.png"].width) == (30, 40)
    assert (refs["with, comma.png"].height, refs["with, comma.png"].width) == (5, 7)
    assert (refs["c.png"].height, refs["c.png"].width) == (None, None)
    assert refs["sub/b.png"].uri == str(tmp_path / "sub" / "b.png")


def test_csv_manifest_with_bom(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("\ufeffpath,width,height\na.png,4,3\n".encode())
    (ref,) = discover(str(manifest))
    assert (ref.image_id, ref.height, ref.width) == ("a.png", 3, 4)


def test_csv_manifest_bad_size(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,width,height\na.png,wide,3\n")
    with pytest.raises(InputError, match="line 2"):
        discover(str(manifest))


def test_csv_manifest_without_path_column(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,width,height\na.png,1,1\n")
    with pytest.raises(InputError, match="'path'"):
        discover(str(manifest))


def test_csv_manifest_duplicates_keep_first(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,width,height\na.png,4,3\nb.png,1,1\na.png,9,9\n")
    refs = discover(str(manifest))
    assert _ids(refs) == ["a.png", "b.png"]
    assert (refs[0].height, refs[0].width) == (3, 4)


# --------------------------------------------------------------------------- errors


def test_missing_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        discover(str(tmp_path / "nowhere"))
    with pytest.raises(InputError):
        discover(str(tmp_path / "nowhere.txt"))


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        discover(str(tmp_path / "empty"))


def test_folder_with_only_non_images(tmp_path: Path) -> None:
    (tmp_path / "readme.md").write_text("x")
    _png(tmp_path / ".hidden.png")
    with pytest.raises(InputError, match="no images"):
        discover(str(tmp_path))


def test_input_error_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        discover(str(tmp_path / "missing"))
