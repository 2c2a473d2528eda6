"""Truth files are read with the input side's checks and stay inside the truth folder."""

from __future__ import annotations

import json
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from batchseg.errors import ImageError
from batchseg.evaluate import truth_read
from batchseg.evaluate.coco_truth import panoptic_items, read_coco_truth
from batchseg.evaluate.truth import match_truth
from batchseg.evaluate.truth_read import outside, read_panoptic_truth, read_truth
from tests.helpers.images import png_chunk, short_png


def _huge_png(side: int = 12000) -> bytes:
    """A grey PNG whose header says ``side x side`` but whose data is a few KB (one zlib
    stream of zero rows would decode to side^2 bytes: never done here)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 4096))
        + png_chunk(b"IEND", b"")
    )


def test_half_row_truth_png_fails_instead_of_black_rows(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(short_png(width=16, height=16, rows=8))
    with Image.open(path) as im:  # the attack: Pillow alone gives 8 black rows, no error
        assert (np.asarray(im)[8:] == 0).all()
    with pytest.raises(ImageError, match=r"truth a.png: truncated PNG file .*8 of 16 rows"):
        read_truth(str(path), (16, 16))


def test_oversized_truth_fails_from_its_header(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(_huge_png())
    assert path.stat().st_size < 10_000

    def no_decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded a truth file of the wrong size")

    monkeypatch.setattr(truth_read, "read_label_image", no_decode)
    monkeypatch.setattr(truth_read, "read_image", no_decode)
    with pytest.raises(ImageError, match=r"is 12000x12000, prediction 360x480.*never resized"):
        read_truth(str(path), (360, 480))
    with pytest.raises(ImageError, match="never resized"):
        read_panoptic_truth(str(path), (360, 480))
    # the pixel limit (--max-pixels) applies to truth as to inputs, also from the header
    with pytest.raises(ImageError, match=r"exceeds the pixel limit 1000000 \(--max-pixels\)"):
        read_truth(str(path), (12000, 12000), max_pixels=1_000_000)


def test_truth_decode_is_bounded_by_the_label_map(tmp_path: Path, monkeypatch) -> None:
    """Even a file swapped after its header was read decodes no more than the label map."""
    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(path)
    seen: list[int | None] = []
    real = truth_read.read_label_image

    def spy(uri: str, max_pixels: int | None = None) -> np.ndarray:
        seen.append(max_pixels)
        return real(uri, max_pixels)

    monkeypatch.setattr(truth_read, "read_label_image", spy)
    assert read_truth(str(path), (20, 30)).shape == (20, 30)
    assert seen == [600]


def test_fifo_truth_fails_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "a.png"
    os.mkfifo(fifo)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            read_truth(str(fifo), (4, 4))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=20)
    if reader.is_alive():  # unblock the reader so the test process can end
        with open(fifo, "wb"):
            pass
        pytest.fail("reading a FIFO as truth blocked")
    assert len(errors) == 1 and "not a regular file" in str(errors[0])


def test_truth_values_are_kept_as_stored(tmp_path: Path) -> None:
    """Palette indices stay indices (class maps), 16-bit grey stays 16-bit; panoptic PNGs are
    read as RGB colours."""
    indices = np.arange(12, dtype=np.uint8).reshape(3, 4) % 5
    palette = Image.fromarray(indices, mode="P")
    palette.putpalette([200, 10, 10, 10, 200, 10, 10, 10, 200, 9, 9, 9, 1, 2, 3] + [0] * 753)
    palette.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_truth(str(tmp_path / "p.png"), (3, 4)), indices)
    rgb = read_panoptic_truth(str(tmp_path / "p.png"), (3, 4))
    assert rgb.shape == (3, 4, 3) and tuple(rgb[0, 1]) == (10, 200, 10)
    deep = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    np.testing.assert_array_equal(read_truth(str(tmp_path / "d.png"), (3, 4)), deep)


def _grey(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)


def test_truth_pattern_does_not_follow_dotdot_out_of_the_truth_folder(tmp_path: Path) -> None:
    truth, cam = tmp_path / "truth", tmp_path / "cam"
    _grey(truth / "a_L.png")
    _grey(cam / "secret_L.png")  # beside the truth folder: never to be read as truth
    found = match_truth(str(truth), ["a.png", "../cam/secret.png"], "{stem}_L.png")
    assert list(found.files) == ["a.png"]
    assert "leads outside the truth folder" in found.refused["../cam/secret.png"]
    assert found.missing == []
    # the same through the pattern
    found = match_truth(str(truth), ["secret.png"], "../cam/{stem}_L.png")
    assert found.files == {} and "leads outside" in found.refused["secret.png"]


def test_symlinked_truth_file_leading_out_is_refused(tmp_path: Path) -> None:
    truth = tmp_path / "truth"
    _grey(truth / "a.png")
    _grey(tmp_path / "elsewhere" / "b.png")
    (truth / "b.png").symlink_to(tmp_path / "elsewhere" / "b.png")
    found = match_truth(str(truth), ["a.jpg", "b.jpg"])
    assert list(found.files) == ["a.jpg"] and "outside the truth folder" in found.refused["b.jpg"]
    assert outside(str(truth), "a.png") is None
    assert outside(str(truth), str(truth / "a.png")) is None
    assert outside(str(truth), "/etc/passwd") is not None


def test_panoptic_file_name_outside_the_png_folder_fails_that_image(tmp_path: Path) -> None:
    folder = tmp_path / "ann"
    _grey(folder / "a.png")
    _grey(tmp_path / "x.png")
    doc = {
        "images": [
            {"id": k, "file_name": f"{n}.jpg", "height": 4, "width": 4}
            for k, n in enumerate("abc", start=1)
        ],
        "categories": [{"id": 1, "name": "sky", "isthing": 0}],
        "annotations": [
            {"image_id": 1, "file_name": "a.png", "segments_info": []},
            {"image_id": 2, "file_name": "../x.png", "segments_info": []},
            {"image_id": 3, "file_name": str(tmp_path / "x.png"), "segments_info": []},
        ],
    }
    path = folder / "pan.json"
    path.write_text(json.dumps(doc))
    items = panoptic_items(read_coco_truth(str(path), ["a.png", "b.png", "c.png"], ["void", "sky"]))
    assert items["a.png"].error == ""
    assert "leads outside the truth folder" in items["b.png"].error
    assert "leads outside the truth folder" in items["c.png"].error
