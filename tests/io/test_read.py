"""Tests for batchseg.io.read: formats, modes, orientation, limits and failures."""

from __future__ import annotations

import builtins
import io
import os
import struct
import uuid
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageFile, ImageOps, features

from batchseg.errors import ImageError
from batchseg.io import read as readers
from batchseg.io.read import (
    DEFAULT_MAX_PIXELS,
    SUPPORTED_SUFFIXES,
    read_header,
    read_image,
)

pytestmark = pytest.mark.filterwarnings("error")  # no PIL/tifffile/ResourceWarning noise


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def _rgb(rng: np.random.Generator, h: int = 24, w: int = 36) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _grey(rng: np.random.Generator, h: int = 24, w: int = 36) -> np.ndarray:
    return rng.integers(0, 256, (h, w), dtype=np.uint8)


def _check(path: Path | str, expected: np.ndarray) -> np.ndarray:
    """read_image equals expected (shape, dtype, values); read_header agrees with it."""
    out = read_image(str(path))
    assert out.dtype == expected.dtype
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)
    assert read_header(str(path)) == out.shape[:2]
    return out


def _assert_one_line(exc: pytest.ExceptionInfo[ImageError], *needles: str) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg and "\r" not in msg
    low = msg.lower()
    for needle in needles:
        assert needle.lower() in low, msg
    return msg


def _both_fail(path: Path | str, *needles: str, **kwargs: object) -> None:
    for fn in (read_header, read_image):
        with pytest.raises(ImageError) as exc:
            fn(str(path), **kwargs)
        _assert_one_line(exc, *needles)


# --------------------------------------------------------------------------- API


def test_public_constants() -> None:
    assert DEFAULT_MAX_PIXELS == 1 << 28
    assert SUPPORTED_SUFFIXES == frozenset(
        {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
    )
    assert isinstance(SUPPORTED_SUFFIXES, frozenset)


# --------------------------------------------------------------------------- PNG modes


def test_png_l(tmp_path: Path, rng: np.random.Generator) -> None:
    g = _grey(rng)
    Image.fromarray(g).save(tmp_path / "g.png")
    _check(tmp_path / "g.png", g)


def test_png_la_drops_alpha(tmp_path: Path, rng: np.random.Generator) -> None:
    g, alpha = _grey(rng), _grey(rng)
    Image.fromarray(np.dstack([g, alpha]), mode="LA").save(tmp_path / "la.png")
    with Image.open(tmp_path / "la.png") as ref:
        assert ref.mode == "LA"
    _check(tmp_path / "la.png", g)


def test_png_rgb(tmp_path: Path, rng: np.random.Generator) -> None:
    a = _rgb(rng)
    Image.fromarray(a).save(tmp_path / "c.png")
    _check(tmp_path / "c.png", a)


def test_png_rgba_drops_alpha_without_compositing(tmp_path: Path, rng: np.random.Generator) -> None:
    a = _rgb(rng)
    alpha = np.zeros(a.shape[:2], np.uint8)  # fully transparent: compositing would blank it
    Image.fromarray(np.dstack([a, alpha]), mode="RGBA").save(tmp_path / "c.png")
    _check(tmp_path / "c.png", a)


def test_png_palette(tmp_path: Path, rng: np.random.Generator) -> None:
    img = Image.fromarray(_rgb(rng)).quantize(16)
    img.save(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as ref:
        assert ref.mode == "P"
        expected = np.asarray(ref.convert("RGB"))
    _check(tmp_path / "p.png", expected)


def test_png_palette_with_trns_transparency(tmp_path: Path, rng: np.random.Generator) -> None:
    img = Image.fromarray(_rgb(rng)).quantize(16)
    img.save(tmp_path / "p.png", transparency=0)
    with Image.open(tmp_path / "p.png") as ref:
        assert ref.mode == "P" and "transparency" in ref.info
        expected = np.asarray(ref.convert("RGBA"))[:, :, :3]
    _check(tmp_path / "p.png", expected)  # filterwarnings=error: no PIL palette warning


def test_png_16bit_grey(tmp_path: Path, rng: np.random.Generator) -> None:
    g16 = rng.integers(0, 65536, (20, 30), dtype=np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as ref:
        assert ref.mode.startswith("I")
    _check(tmp_path / "g16.png", g16)


def test_png_bilevel(tmp_path: Path, rng: np.random.Generator) -> None:
    bits = rng.integers(0, 2, (17, 23), dtype=np.uint8).astype(bool)
    Image.fromarray(bits).save(tmp_path / "b.png")
    _check(tmp_path / "b.png", bits.astype(np.uint8) * 255)


def test_mode_i_and_f_conversion(rng: np.random.Generator) -> None:
    small = rng.integers(0, 65536, (5, 7)).astype(np.int32)
    out = readers._pil_to_array(Image.fromarray(small, mode="I"))
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, small)

    wide = small.copy()
    wide[0, 0] = -5
    wide[1, 1] = 100_000
    out = readers._pil_to_array(Image.fromarray(wide, mode="I"))
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, wide)

    f = rng.random((5, 7)).astype(np.float32)
    out = readers._pil_to_array(Image.fromarray(f, mode="F"))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, f)


# --------------------------------------------------------------------------- JPEG / BMP / WebP


def test_jpeg_rgb(tmp_path: Path, rng: np.random.Generator) -> None:
    Image.fromarray(_rgb(rng)).save(tmp_path / "c.jpg", quality=90)
    with Image.open(tmp_path / "c.jpg") as ref:
        expected = np.asarray(ref.convert("RGB"))
    _check(tmp_path / "c.jpg", expected)


def test_jpeg_cmyk(tmp_path: Path, rng: np.random.Generator) -> None:
    Image.fromarray(_rgb(rng)).convert("CMYK").save(tmp_path / "k.jpg", quality=95)
    with Image.open(tmp_path / "k.jpg") as ref:
        assert ref.mode == "CMYK"
        expected = np.asarray(ref.convert("RGB"))
    _check(tmp_path / "k.jpg", expected)


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[274] = orientation
    return exif.tobytes()


def test_jpeg_exif_orientation_6(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "rot.jpeg"
    Image.fromarray(_rgb(rng, 20, 50)).save(path, exif=_exif(6), quality=95)
    with Image.open(path) as im:
        stored = np.asarray(im.convert("RGB"))
        reference = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert stored.shape[:2] == (20, 50)
    assert read_header(str(path)) == (50, 20)
    out = read_image(str(path))
    assert out.shape == (50, 20, 3)
    np.testing.assert_array_equal(out, reference)
    np.testing.assert_array_equal(out, np.rot90(stored, k=-1))  # 6 = rotate 90 clockwise


@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_every_exif_orientation(
    tmp_path: Path, rng: np.random.Generator, orientation: int
) -> None:
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(_rgb(rng, 10, 16)).save(path, exif=_exif(orientation))
    with Image.open(path) as im:
        reference = np.asarray(ImageOps.exif_transpose(im))
    _check(path, reference)
    assert read_header(str(path)) == ((16, 10) if orientation >= 5 else (10, 16))


def test_png_header_does_not_decode(tmp_path: Path, rng: np.random.Generator, monkeypatch) -> None:
    path = tmp_path / "o.png"
    Image.fromarray(_rgb(rng, 10, 16)).save(path, exif=_exif(8))
    calls: list[object] = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: calls.append(self))
    assert read_header(str(path)) == (16, 10)
    assert calls == []


def test_png_exif_after_idat(tmp_path: Path, rng: np.random.Generator, monkeypatch) -> None:
    """An eXIf chunk after IDAT is found by the header without decoding pixels."""
    buf = io.BytesIO()
    Image.fromarray(_rgb(rng, 10, 16)).save(buf, format="PNG", exif=_exif(6))
    data = buf.getvalue()
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append(data[pos : pos + 12 + length])
        pos += 12 + length
    exif = [c for c in chunks if c[4:8] == b"eXIf"]
    assert len(exif) == 1
    rest = [c for c in chunks if c[4:8] != b"eXIf"]
    path = tmp_path / "late.png"
    path.write_bytes(data[:8] + b"".join(rest[:-1] + exif + rest[-1:]))  # before IEND
    with Image.open(path) as im:
        assert "exif" not in im.info
        reference = np.asarray(ImageOps.exif_transpose(im))
    assert reference.shape == (16, 10, 3)
    np.testing.assert_array_equal(read_image(str(path)), reference)
    calls: list[object] = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: calls.append(self))
    assert read_header(str(path)) == (16, 10)
    assert calls == []


def test_bmp(tmp_path: Path, rng: np.random.Generator) -> None:
    a, g = _rgb(rng), _grey(rng)
    Image.fromarray(a).save(tmp_path / "c.bmp")
    Image.fromarray(g).save(tmp_path / "g.bmp")
    _check(tmp_path / "c.bmp", a)
    _check(tmp_path / "g.bmp", g)


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_webp_lossless(tmp_path: Path, rng: np.random.Generator) -> None:
    a = _rgb(rng)
    Image.fromarray(a).save(tmp_path / "c.webp", lossless=True)
    _check(tmp_path / "c.webp", a)


# --------------------------------------------------------------------------- TIFF


def test_tiff_8bit_grey(tmp_path: Path, rng: np.random.Generator) -> None:
    g = _grey(rng)
    tifffile.imwrite(tmp_path / "g.tif", g)
    _check(tmp_path / "g.tif", g)


def test_tiff_16bit_grey(tmp_path: Path, rng: np.random.Generator) -> None:
    g16 = rng.integers(0, 65536, (20, 30), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "g16.tiff", g16)
    _check(tmp_path / "g16.tiff", g16)


def test_tiff_16bit_rgb_stays_uint16(tmp_path: Path, rng: np.random.Generator) -> None:
    c16 = rng.integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "c16.tif", c16, photometric="rgb")
    _check(tmp_path / "c16.tif", c16)


def test_tiff_planar_separate_rgb(tmp_path: Path, rng: np.random.Generator) -> None:
    a = _rgb(rng)
    tifffile.imwrite(
        tmp_path / "p.tif", a.transpose(2, 0, 1), photometric="rgb", planarconfig="separate"
    )
    _check(tmp_path / "p.tif", a)


def test_tiff_rgba_drops_alpha(tmp_path: Path, rng: np.random.Generator) -> None:
    a = _rgb(rng)
    rgba = np.dstack([a, _grey(rng)])
    tifffile.imwrite(tmp_path / "a.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    _check(tmp_path / "a.tif", a)


def test_tiff_multipage_is_refused_naming_planes(tmp_path: Path, rng: np.random.Generator) -> None:
    """A stack is never read as its first page (it was, silently): one line naming --planes."""
    stack = rng.integers(0, 256, (3, 20, 30), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "m.tif", stack, photometric="minisblack")
    with tifffile.TiffFile(tmp_path / "m.tif") as tif:
        assert len(tif.pages) == 3
    for read in (read_header, read_image):
        with pytest.raises(ImageError, match="z-stack .*--planes z") as err:
            read(str(tmp_path / "m.tif"))
        assert "\n" not in str(err.value)


def test_tiff_detected_by_magic_not_suffix(tmp_path: Path, rng: np.random.Generator) -> None:
    g = _grey(rng)
    tifffile.imwrite(tmp_path / "really_tiff.png", g)
    _check(tmp_path / "really_tiff.png", g)


def test_tiff_orientation_tag(tmp_path: Path, rng: np.random.Generator) -> None:
    g = _grey(rng, 10, 16)
    tifffile.imwrite(tmp_path / "o.tif", g, extratags=[(274, "H", 1, 6, True)])
    assert read_header(str(tmp_path / "o.tif")) == (16, 10)
    np.testing.assert_array_equal(read_image(str(tmp_path / "o.tif")), np.rot90(g, k=-1))


def test_tiff_volume_refused(tmp_path: Path, rng: np.random.Generator) -> None:
    vol = rng.integers(0, 256, (4, 16, 16), dtype=np.uint8)
    tifffile.imwrite(
        tmp_path / "v.tif", vol, volumetric=True, tile=(16, 16), photometric="minisblack"
    )
    _both_fail(tmp_path / "v.tif", "z-stack")


@pytest.mark.parametrize("mode", ["L", "RGB", "P"])
def test_tiff_lzw_falls_back_to_pillow(tmp_path: Path, rng: np.random.Generator, mode: str) -> None:
    """LZW needs imagecodecs in tifffile; Pillow's libtiff decodes it instead."""
    Image.fromarray(_rgb(rng)).convert(mode).save(tmp_path / "l.tif", compression="tiff_lzw")
    with Image.open(tmp_path / "l.tif") as ref:
        expected = np.asarray(ref.convert("L" if mode == "L" else "RGB"))
    _check(tmp_path / "l.tif", expected)


# --------------------------------------------------------------------------- fsspec


def test_fsspec_memory_round_trip(rng: np.random.Generator) -> None:
    fsspec = pytest.importorskip("fsspec")
    a = _rgb(rng)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    url = f"memory://batchseg-test-{uuid.uuid4().hex}/img.png"
    with fsspec.open(url, "wb") as f:
        f.write(buf.getvalue())
    try:
        assert read_header(url) == (24, 36)
        np.testing.assert_array_equal(read_image(url), a)
    finally:
        fsspec.filesystem("memory").rm(url)
    _both_fail(url, "file not found")


# --------------------------------------------------------------------------- limits


def _png_with_declared_size(path: Path, width: int, height: int) -> None:
    """A tiny real PNG whose IHDR is patched to claim width x height (valid CRC)."""
    buf = io.BytesIO()
    Image.new("1", (8, 8)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))


def test_decompression_bomb_rejected_before_decode(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "bomb.png"
    _png_with_declared_size(path, 50000, 50000)
    assert path.stat().st_size < 200
    calls: list[object] = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: calls.append(self))
    _both_fail(path, "50000x50000", "pixel limit", "100000000", max_pixels=10**8)
    _both_fail(path, "pixel limit")  # the default limit (2.7e8) catches 2.5e9 too
    assert calls == []


def test_our_limit_not_pils(tmp_path: Path) -> None:
    """Sizes beyond PIL's MAX_IMAGE_PIXELS (and 2x it) pass when under our limit."""
    path = tmp_path / "big.png"
    _png_with_declared_size(path, 30000, 20000)  # 6e8 > 2 * PIL default (1.8e8)
    saved = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_header(str(path), max_pixels=None) == (20000, 30000)
        assert read_header(str(path), max_pixels=10**9) == (20000, 30000)
    assert Image.MAX_IMAGE_PIXELS == saved  # global left as it was
    _both_fail(path, "pixel limit", max_pixels=30000 * 20000 - 1)


def test_limit_boundary(tmp_path: Path, rng: np.random.Generator) -> None:
    g = _grey(rng, 10, 20)
    Image.fromarray(g).save(tmp_path / "g.png")
    assert read_header(str(tmp_path / "g.png"), max_pixels=200) == (10, 20)
    np.testing.assert_array_equal(read_image(str(tmp_path / "g.png"), max_pixels=200), g)
    _both_fail(tmp_path / "g.png", "20x10", "pixel limit 199", max_pixels=199)


def test_tiff_limit(tmp_path: Path, rng: np.random.Generator) -> None:
    tifffile.imwrite(tmp_path / "g.tif", _grey(rng, 10, 20))
    _both_fail(tmp_path / "g.tif", "pixel limit", max_pixels=100)


# --------------------------------------------------------------------------- failures


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    _both_fail(tmp_path / "empty.png", "empty file")


def _truncated(tmp_path: Path, rng: np.random.Generator, fmt: str, suffix: str) -> Path:
    buf = io.BytesIO()
    Image.fromarray(_rgb(rng, 64, 64)).save(buf, format=fmt)
    data = buf.getvalue()
    path = tmp_path / f"trunc{suffix}"
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def test_truncated_png(tmp_path: Path, rng: np.random.Generator) -> None:
    path = _truncated(tmp_path, rng, "PNG", ".png")
    assert read_header(str(path)) == (64, 64)  # the header itself is intact
    with pytest.raises(ImageError) as exc:
        read_image(str(path))
    _assert_one_line(exc, "truncated", "png")


def test_truncated_jpeg(tmp_path: Path, rng: np.random.Generator) -> None:
    path = _truncated(tmp_path, rng, "JPEG", ".jpg")
    with pytest.raises(ImageError) as exc:
        read_image(str(path))
    _assert_one_line(exc, "truncated", "jpeg")


def test_truncation_is_not_tolerated() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_random_bytes_png(tmp_path: Path, rng: np.random.Generator) -> None:
    (tmp_path / "noise.png").write_bytes(rng.bytes(4096))
    _both_fail(tmp_path / "noise.png", "not an image")


def test_text_file_jpg(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("this is not a JPEG\nsecond line\n")
    _both_fail(tmp_path / "notes.jpg", "not an image")


def test_corrupt_tiff(tmp_path: Path) -> None:
    (tmp_path / "bad.tif").write_bytes(b"II*\x00" + b"\xff" * 60)
    _both_fail(tmp_path / "bad.tif", "tiff")


def test_truncated_tiff(tmp_path: Path, rng: np.random.Generator) -> None:
    buf = io.BytesIO()
    tifffile.imwrite(buf, _rgb(rng, 64, 64))
    data = buf.getvalue()
    (tmp_path / "t.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as exc:
        read_image(str(tmp_path / "t.tif"))
    _assert_one_line(exc, "truncated", "tiff")


def test_truncated_lzw_tiff(tmp_path: Path, rng: np.random.Generator) -> None:
    buf = io.BytesIO()
    Image.fromarray(_rgb(rng, 64, 64)).save(buf, format="TIFF", compression="tiff_lzw")
    data = buf.getvalue()
    (tmp_path / "t.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as exc:
        read_image(str(tmp_path / "t.tif"))
    _assert_one_line(exc, "tiff")


def test_unsupported_format_is_refused(tmp_path: Path, rng: np.random.Generator) -> None:
    Image.fromarray(_rgb(rng)).save(tmp_path / "anim.png", format="GIF")
    _both_fail(tmp_path / "anim.png", "not an image")


def test_missing_file(tmp_path: Path) -> None:
    _both_fail(tmp_path / "nope.png", "file not found")


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.png").mkdir()
    _both_fail(tmp_path / "dir.png", "directory")


def test_permission_denied(tmp_path: Path, rng: np.random.Generator, monkeypatch) -> None:
    path = tmp_path / "secret.png"
    Image.fromarray(_grey(rng)).save(path)
    os.chmod(path, 0)
    try:
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # root reads anything: simulate the kernel refusing this one path.
            real_open = builtins.open

            def guarded_open(file, *args, **kwargs):
                if os.fspath(file) == str(path):
                    raise PermissionError(13, "Permission denied", str(path))
                return real_open(file, *args, **kwargs)

            monkeypatch.setattr(builtins, "open", guarded_open)
        _both_fail(path, "permission denied")
    finally:
        monkeypatch.undo()
        os.chmod(path, 0o644)


def test_pathlike_accepted(tmp_path: Path, rng: np.random.Generator) -> None:
    g = _grey(rng)
    Image.fromarray(g).save(tmp_path / "g.png")
    assert read_header(tmp_path / "g.png") == g.shape  # type: ignore[arg-type]
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), g)  # type: ignore[arg-type]
