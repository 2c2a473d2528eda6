"""Strict JPEG decode: a scan cut short fails as that image's error; valid JPEGs read as Pillow."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from batchseg.errors import ImageError
from batchseg.io.jpeg import jpeg_check, jpeg_decode
from batchseg.io.read import read_header, read_image, read_label_image

pytestmark = pytest.mark.filterwarnings("error")

RNG = np.random.default_rng(30)
SOS = b"\xff\xda"
EOI = b"\xff\xd9"


def _smooth(h: int = 64, w: int = 96) -> np.ndarray:
    """An RGB picture with structure (so that the scan is long and compresses like a photo)."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (h + w)], axis=-1)
    noise = RNG.integers(0, 40, (h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _jpeg(array: np.ndarray, **save: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="JPEG", quality=90, **save)
    return out.getvalue()


def _cut_mid_scan(data: bytes) -> bytes:
    """``data`` cut half way through its (last) scan, then given an end-of-image marker."""
    start = data.rfind(SOS)
    assert start > 0
    return data[: start + (len(data) - start) // 2] + EOI


def _pillow(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(ImageOps.exif_transpose(img))


@pytest.mark.parametrize("progressive", [False, True])
def test_scan_cut_with_end_marker_fails(tmp_path: Path, progressive: bool) -> None:
    path = tmp_path / "cut.jpg"
    path.write_bytes(_cut_mid_scan(_jpeg(_smooth(), progressive=progressive)))
    with Image.open(path) as img:
        img.load()  # what batchseg had to catch: Pillow decodes it without a word
    assert read_header(str(path)) == (64, 96)  # the header itself is intact
    for reader in (read_image, read_label_image):
        with pytest.raises(ImageError) as exc:
            reader(str(path))
        msg = str(exc.value)
        assert "\n" not in msg and "truncated JPEG file" in msg, msg


def test_cut_cmyk_fails(tmp_path: Path) -> None:
    path = tmp_path / "k.jpg"
    rgb = Image.fromarray(_smooth())
    buf = io.BytesIO()
    rgb.convert("CMYK").save(buf, format="JPEG", quality=90)
    path.write_bytes(_cut_mid_scan(buf.getvalue()))
    with pytest.raises(ImageError, match="truncated JPEG file"):
        read_image(str(path))
    with pytest.raises(ImageError, match="truncated JPEG file"):
        jpeg_check(path.read_bytes())


@pytest.mark.parametrize("subsampling", [0, 2])
def test_valid_rgb_reads_as_pillow(tmp_path: Path, subsampling: int) -> None:
    path = tmp_path / "ok.jpg"
    path.write_bytes(_jpeg(_smooth(), subsampling=subsampling))
    out = read_image(str(path))
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, _pillow(path))


def test_valid_grey_reads_as_pillow(tmp_path: Path) -> None:
    path = tmp_path / "grey.jpg"
    path.write_bytes(_jpeg(_smooth()[..., 0]))
    out = read_image(str(path))
    assert out.shape == (64, 96)
    np.testing.assert_array_equal(out, _pillow(path))
    np.testing.assert_array_equal(read_label_image(str(path)), out)


def test_orientation_applied(tmp_path: Path) -> None:
    path = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[274] = 6
    Image.fromarray(_smooth()).save(path, format="JPEG", quality=90, exif=exif)
    out = read_image(str(path))
    assert out.shape == (96, 64, 3) == (*read_header(str(path)), 3)
    np.testing.assert_array_equal(out, _pillow(path))


def test_extraneous_bytes_tolerated(tmp_path: Path) -> None:
    """Junk between the scan and the end marker: every block is decoded, as Pillow does."""
    data = _jpeg(_smooth())
    assert data.endswith(EOI)
    path = tmp_path / "junk.jpg"
    path.write_bytes(data[:-2] + b"\x00\x01\x02" + EOI)
    np.testing.assert_array_equal(read_image(str(path)), _pillow(path))


def test_other_modes_left_to_pillow() -> None:
    assert jpeg_decode(_jpeg(_smooth()), "CMYK") is None


def test_not_a_jpeg_is_one_line() -> None:
    with pytest.raises(ImageError) as exc:
        jpeg_check(b"\xff\xd8\xff" + b"\x00" * 20)
    assert "\n" not in str(exc.value) and "JPEG" in str(exc.value)
