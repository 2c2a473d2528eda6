"""libpng (imagecodecs) decodes plain PNGs to exactly Pillow's array; other PNGs go to Pillow."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from batchseg.errors import ImageError
from batchseg.io import read as readers
from batchseg.io.png import fast_png_decode, png_size
from tests.helpers.images import interlaced_png, short_png

RNG = np.random.default_rng(7)


def _png(array: np.ndarray, **save: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG", **save)
    return out.getvalue()


def _pillow(data: bytes) -> np.ndarray:
    """What batchseg's Pillow path makes of ``data`` (the reference)."""
    fh = io.BytesIO(data)
    with Image.open(fh) as img:
        return readers._pil_decode(img, None, fh)  # noqa: SLF001


def _plain_kinds() -> dict[str, bytes]:
    rgb = RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    text = PngImagePlugin.PngInfo()
    text.add_text("Software", "batchseg test")
    return {
        "rgb8": _png(rgb),
        "rgb8_interlaced": interlaced_png(rgb),
        "rgb8_text_chunk": _png(rgb, pnginfo=text),
        "rgb8_level1": _png(rgb, compress_level=1),
        "grey8": _png(RNG.integers(0, 256, (41, 29), dtype=np.uint8)),
        "grey16": _png(RNG.integers(0, 65536, (23, 31), dtype=np.uint16)),
    }


@pytest.mark.parametrize("kind", sorted(_plain_kinds()))
def test_plain_pngs_decode_to_pillows_array(kind: str) -> None:
    data = _plain_kinds()[kind]
    fast = fast_png_decode(data)
    assert fast is not None, "a plain PNG must take the libpng path"
    reference = _pillow(data)
    assert (fast.dtype, fast.shape) == (reference.dtype, reference.shape)
    assert np.array_equal(fast, reference)


def _exif_png(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _png(RNG.integers(0, 256, (12, 20, 3), dtype=np.uint8), exif=exif)


def _other_kinds() -> dict[str, bytes]:
    rgb = RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    palette = io.BytesIO()
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8).save(palette, "PNG")
    rgb16 = interlaced_png(rgb).replace(struct.pack(">BB", 8, 2), struct.pack(">BB", 16, 2), 1)
    return {
        "rgba": _png(RNG.integers(0, 256, (16, 16, 4), dtype=np.uint8)),
        "palette": palette.getvalue(),
        "rgb_with_trns": _png(rgb, transparency=(1, 2, 3)),
        "exif_orientation": _exif_png(6),
        "rgb16_reduced_by_pillow": rgb16,
    }


@pytest.mark.parametrize("kind", sorted(_other_kinds()))
def test_other_pngs_are_left_to_pillow(kind: str) -> None:
    assert fast_png_decode(_other_kinds()[kind]) is None


def test_read_image_decodes_plain_pngs_and_still_rotates_exif_ones(tmp_path: Path) -> None:
    rgb = RNG.integers(0, 256, (10, 20, 3), dtype=np.uint8)
    plain = tmp_path / "plain.png"
    plain.write_bytes(_png(rgb))
    assert np.array_equal(readers.read_image(plain), rgb)
    rotated = tmp_path / "rotated.png"
    rotated.write_bytes(_exif_png(6))
    assert readers.read_image(rotated).shape == (20, 12, 3)  # orientation 6: a quarter turn


def test_short_and_corrupt_pngs_fail_with_pillows_words(tmp_path: Path) -> None:
    short = tmp_path / "short.png"
    short.write_bytes(short_png(rows=8))
    assert fast_png_decode(short.read_bytes()) is None  # libpng refuses it too
    with pytest.raises(ImageError, match=r"holds 8 of 16 rows"):
        readers.read_image(short)
    data = bytearray(_png(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8), compress_level=0))
    data[len(data) // 2] ^= 0xFF  # a flipped byte in the image data
    broken = tmp_path / "broken.png"
    broken.write_bytes(bytes(data))
    assert fast_png_decode(bytes(data)) is None
    with pytest.raises(ImageError):
        readers.read_image(broken)


def test_pixel_limit_is_checked_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(_png(np.zeros((40, 50, 3), dtype=np.uint8)))
    with pytest.raises(ImageError, match="pixel limit"):
        readers.read_image(path, max_pixels=1000)


@pytest.mark.parametrize("kind", sorted(_plain_kinds()))
def test_png_size_is_the_header_pillow_reads(kind: str, tmp_path: Path) -> None:
    data = _plain_kinds()[kind]
    size = png_size(io.BytesIO(data))
    with Image.open(io.BytesIO(data)) as img:
        assert size == (img.height, img.width)
    path = tmp_path / "plain.png"
    path.write_bytes(data)
    assert readers.read_header(path) == size


def test_png_size_leaves_exif_and_broken_files_to_pillow(tmp_path: Path) -> None:
    rotated = _exif_png(6)
    assert png_size(io.BytesIO(rotated)) is None
    path = tmp_path / "rotated.png"
    path.write_bytes(rotated)
    assert readers.read_header(path) == (20, 12)  # Pillow's path applies the quarter turn
    cut = _png(RNG.integers(0, 256, (8, 8), dtype=np.uint8))[:40]  # no IEND
    assert png_size(io.BytesIO(cut)) is None
    assert png_size(io.BytesIO(b"GIF89a" + bytes(40))) is None


def test_png_size_refuses_more_pixels_than_allowed(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(_png(np.zeros((40, 50), dtype=np.uint8)))
    with pytest.raises(ImageError, match="pixel limit"):
        readers.read_header(path, max_pixels=1000)
