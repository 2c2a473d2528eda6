"""Issue 17 attacks on the input side: non-UTF-8 names (2), short PNGs (9), links out (14)."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from batchseg.errors import ImageError
from batchseg.io import read as readers
from batchseg.io import sources
from batchseg.io.formats import escape_name, unescape_name
from batchseg.io.png import png_expected_bytes, png_incomplete
from tests.helpers.cli import run_cli
from tests.helpers.images import short_png

BAD_NAME = b"\xff\xfe.png"


# ------------------------------------------------------------------ item 9: short PNG


def test_short_png_is_decoded_by_pillow_with_black_rows() -> None:
    """The attack itself: Pillow accepts the file and fills the missing rows with 0."""
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    with Image.open(io.BytesIO(short_png())) as img:
        arr = np.asarray(img)
    assert (arr[:8] == 200).all() and (arr[8:] == 0).all()


def test_short_png_fails_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "short.png"
    path.write_bytes(short_png())
    with pytest.raises(ImageError) as info:
        readers.read_image(str(path))
    assert str(info.value) == "truncated PNG file (image data holds 8 of 16 rows)"
    assert readers.read_header(str(path)) == (16, 16)  # the header is fine: fails at decode


def test_short_png_fails_even_if_pillow_was_told_to_load_truncated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "short.png"
    path.write_bytes(short_png(rows=1))
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(ImageError, match="truncated PNG file"):
        readers.read_image(str(path))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "I;16", "1", "P"])
def test_complete_pngs_still_read(tmp_path: Path, mode: str, interlace: bool) -> None:
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 255, (37, 23, 3), dtype=np.uint8)
    img = Image.fromarray(arr).convert(mode if mode != "I;16" else "I")
    if mode == "I;16":
        img = Image.fromarray((rng.integers(0, 65535, (37, 23))).astype(np.uint16))
    path = tmp_path / "ok.png"
    img.save(path, interlace=interlace, optimize=False)
    readers.read_image(str(path))
    with open(path, "rb") as fh:
        assert png_incomplete(fh) is None


def test_png_expected_bytes_interlaced_matches_adam7() -> None:
    # 1x1 grey 8-bit: only the first pass has a pixel -> one row of 1 filter + 1 data byte
    assert png_expected_bytes(1, 1, 8, 0, 1) == 2
    assert png_expected_bytes(8, 8, 8, 0, 0) == 8 * 9
    assert png_expected_bytes(8, 8, 8, 0, 1) == sum(
        ph * (1 + pw) for pw, ph in [(1, 1), (1, 1), (2, 1), (2, 2), (4, 2), (4, 4), (8, 4)]
    )


def test_short_png_fails_alone_in_a_job(tmp_path: Path, cluster_address: str) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "short.png").write_bytes(short_png())
    out = tmp_path / "out.zarr"
    result = run_cli("run", folder, "-m", "skimage.otsu", "-o", out, "--scheduler", cluster_address)
    assert result.exit_code == 3, result.output
    status = run_cli("status", out, "--json")
    assert "truncated PNG file (image data holds 8 of 16 rows)" in status.output


# ------------------------------------------------------- item 2: names not valid UTF-8


def test_escape_name_round_trips() -> None:
    name = os.fsdecode(b"/data/a\xff\xfe b.png")
    escaped = escape_name(name)
    assert escaped == "/data/a\\xff\\xfe b.png"
    escaped.encode("utf-8")  # storable
    assert unescape_name(escaped) == name
    assert escape_name("plain é.png") == "plain é.png"


def _bad_collection(tmp_path: Path, good: int = 11) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(good):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(folder / f"{i}.png")
    Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(
        os.path.join(os.fsencode(folder), BAD_NAME)
    )
    return folder


def test_non_utf8_name_is_discovered_escaped(tmp_path: Path) -> None:
    folder = _bad_collection(tmp_path, good=2)
    refs = sources.discover(str(folder))
    assert [r.image_id for r in refs] == ["0.png", "1.png", "\\xff\\xfe.png"]
    for ref in refs:
        ref.image_id.encode("utf-8")
        ref.uri.encode("utf-8")
    with pytest.raises(ImageError, match="^file name is not valid UTF-8"):
        readers.read_header(refs[-1].uri)
    with pytest.raises(ImageError, match="^file name is not valid UTF-8"):
        readers.read_image(refs[-1].uri)


def test_non_utf8_name_fails_alone_in_a_job(tmp_path: Path, cluster_address: str) -> None:
    folder = _bad_collection(tmp_path)
    out = tmp_path / "out.zarr"
    dry = run_cli("run", folder, "-m", "skimage.otsu", "-o", out, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["unreadable_headers"] == 1
    result = run_cli("run", folder, "-m", "skimage.otsu", "-o", out, "--scheduler", cluster_address)
    assert result.exit_code == 3, result.output
    status = run_cli("status", out, "--json")
    data = json.loads(status.stdout)
    assert data["done"] == 11 and data["failed"] == 1, status.output
    assert "\\\\xff\\\\xfe.png" in status.output  # JSON-escaped backslash
    assert "file name is not valid UTF-8" in status.output
    again = run_cli("run", folder, "-m", "skimage.otsu", "-o", out, "--scheduler", cluster_address)
    assert again.exit_code == 3, again.output  # a rerun retries it and fails it the same way


# ------------------------------------------------------- item 14: links out of the root


def test_folder_link_out_of_the_root_is_not_followed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "imgs"
    (root / "inside").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.new("L", (4, 4)).save(root / "inside" / "a.png")
    Image.new("L", (4, 4)).save(outside / "secret.png")
    (root / "to_elsewhere").symlink_to(outside, target_is_directory=True)
    (root / "to_root").symlink_to("/", target_is_directory=True)
    (root / "to_inside").symlink_to(root / "inside", target_is_directory=True)  # stays inside
    with caplog.at_level(logging.WARNING, logger="batchseg"):
        refs = sources.discover(str(root))
    ids = [r.image_id for r in refs]
    assert ids == ["inside/a.png"] or ids == ["inside/a.png", "to_inside/a.png"]
    assert any("skipped 2 folder link(s) leading out of" in r.getMessage() for r in caplog.records)
    # asked to: links are followed (not the one to "/": that would walk the machine)
    (root / "to_root").unlink()
    refs = sources.discover(str(root), follow_links=True)
    assert "to_elsewhere/secret.png" in [r.image_id for r in refs]


def test_glob_does_not_follow_links_out_of_the_root(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    root.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.new("L", (4, 4)).save(root / "a.png")
    Image.new("L", (4, 4)).save(outside / "secret.png")
    (root / "link").symlink_to(outside, target_is_directory=True)
    pattern = str(root / "**" / "*.png")
    assert [r.image_id for r in sources.discover(pattern)] == ["a.png"]
    assert [r.image_id for r in sources.discover(pattern, follow_links=True)] == [
        "a.png",
        "link/secret.png",
    ]


def test_cli_follow_links_flag(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    root.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.new("L", (4, 4)).save(root / "a.png")
    Image.new("L", (4, 4)).save(outside / "secret.png")
    (root / "link").symlink_to(outside, target_is_directory=True)
    out = tmp_path / "out.zarr"
    args = ("run", root, "-m", "skimage.otsu", "-o", out, "--dry-run", "--json")
    skipped = run_cli(*args)
    assert skipped.exit_code == 0, skipped.output
    assert json.loads(skipped.stdout)["images"] == 1
    followed = run_cli(*args, "--follow-links")
    assert followed.exit_code == 0, followed.output
    assert json.loads(followed.stdout)["images"] == 2


def test_non_utf8_name_under_a_file_url(tmp_path: Path) -> None:
    folder = _bad_collection(tmp_path, good=1)
    refs = sources.discover(f"file://{folder}")
    bad = [r for r in refs if "\\xff" in r.image_id]
    assert len(bad) == 1 and bad[0].uri.startswith("file://")
    bad[0].uri.encode("utf-8")
    with pytest.raises(ImageError, match="^file name is not valid UTF-8"):
        readers.read_image(bad[0].uri)
