"""Read one image (local path or fsspec URL) into a normalised numpy array.

Two entry points:

* :func:`read_header` returns ``(height, width)`` after EXIF orientation without
  decoding pixels (cheap enough to run over a whole collection at discovery time).
* :func:`read_image` decodes to ``H x W`` (grey) or ``H x W x 3`` (RGB).

Both check ``height * width`` against ``max_pixels`` from the header *before* any
pixel data is decoded, so a decompression bomb costs a few bytes of I/O.  Every
per-image failure is raised as :class:`~batchseg.errors.ImageError` with a
one-line message; raw PIL / OS errors never escape.

TIFF files (detected by magic bytes, not suffix) are read with ``tifffile``;
everything else with Pillow, restricted to the formats in :data:`SUPPORTED_SUFFIXES`
so that arbitrary bytes are never "recognised" by a weak-magic plugin. Incomplete data
fails: Pillow's ``LOAD_TRUNCATED_IMAGES`` is kept off, and a PNG whose compressed data
ends before its last row (which Pillow decodes silently, leaving black rows) is caught by
:func:`batchseg.io.png.png_incomplete`, and a JPEG whose scan stops early (decoded grey by
Pillow even when the file ends with an end-of-image marker) by the strict libjpeg-turbo decode
of :mod:`batchseg.io.jpeg`, which also reads grey and RGB JPEGs faster than Pillow. Plain PNGs (8-bit RGB, 8/16-bit grey, no
transparency or EXIF) are decoded by libpng through imagecodecs when it is installed: the same
array in about half the time, and short data fails there (:func:`~batchseg.io.png.fast_png_decode`).
Zarr images (:func:`batchseg.io.formats.is_zarr`)
are read through :class:`batchseg.io.chunked.ZarrSource`.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from batchseg.core.limits import DEFAULT_MAX_PIXELS
from batchseg.errors import ImageError
from batchseg.io.axes import channels_refusal, stack_refusal, tiff_layout
from batchseg.io.chunked import ZarrSource, windowed_shape
from batchseg.io.formats import (
    IMAGE_SUFFIXES,
    ORIENTATION_TAG,
    TIFF_MAGIC,
    PixelLimitError,
    check_pixels,
    describe,
    is_zarr,
    native,
    open_binary,
    orient_array,
    orient_shape,
    os_error_message,
    sniff,
    tiff_geometry,
    tiff_normalise,
    tiff_open,
    tiff_orientation,
    tiff_page,
)
from batchseg.io.jpeg import jpeg_check, jpeg_decode
from batchseg.io.png import PNG_SIGNATURE, fast_png_decode, png_incomplete, png_size

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_SUFFIXES",
    "PixelLimitError",
    "read_header",
    "read_image",
    "read_label_image",
]

log = logging.getLogger(__name__)

"""Decompression-bomb guard (pixels per image); configurable per job (--max-pixels)."""

SUPPORTED_SUFFIXES: frozenset[str] = IMAGE_SUFFIXES

# Pillow formats we accept (a JPEG with several pictures opens as MPO).
_PIL_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "MPO", "BMP", "WEBP")
_JPEG_FORMATS = ("JPEG", "MPO")  # decoded by libjpeg-turbo, strictly (batchseg.io.jpeg)

# Pillow's own bomb check (Image.MAX_IMAGE_PIXELS) runs inside Image.open; it is
# switched off only for the duration of our header parse, under a lock, and our
# own max_pixels check replaces it.  The lock is never held while decoding.
_PIL_LIMIT_LOCK = threading.Lock()


# --------------------------------------------------------------------------- Pillow


def _pil_formats() -> tuple[str, ...]:
    """Our Pillow formats that this Pillow build has (plugins registered on demand)."""
    Image.init()  # no-op after the first call; MPO/WEBP are not in Image.preinit()
    return tuple(fmt for fmt in _PIL_FORMATS if fmt in Image.OPEN)


@contextmanager
def _pil_open(fh: IO[bytes]) -> Iterator[Image.Image]:
    """Image.open restricted to our formats, PIL's bomb check off during the parse."""
    try:
        with _PIL_LIMIT_LOCK:
            saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
            try:
                img = Image.open(fh, formats=_pil_formats())
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except UnidentifiedImageError as exc:
        raise ImageError("not an image (unrecognised format)") from exc
    except OSError as exc:
        if exc.errno is not None:  # a real I/O error, not a plugin's complaint
            raise ImageError(os_error_message(exc)) from exc
        raise ImageError(f"corrupt or truncated image header ({describe(exc)})") from exc
    except Exception as exc:  # SyntaxError, ValueError, struct.error... from a plugin
        raise ImageError(f"corrupt image header ({describe(exc)})") from exc
    with img:
        yield img


def _png_trailing_exif(fh: IO[bytes]) -> bytes | None:
    """Find an eXIf chunk by walking PNG chunk headers (skipping IDAT data unread)."""
    try:
        fh.seek(8)
        while True:
            header = fh.read(8)
            if len(header) < 8:
                return None
            length, ctype = struct.unpack(">I4s", header)
            if ctype == b"eXIf":
                data = fh.read(length)
                return data if len(data) == length else None
            if ctype == b"IEND":
                return None
            fh.seek(length + 4, io.SEEK_CUR)  # data + CRC
    except (OSError, struct.error):
        return None


def _pil_orientation(img: Image.Image, fh: IO[bytes]) -> int:
    """EXIF orientation as exif_transpose will see it, without decoding pixels."""
    try:
        if img.format == "PNG":
            # PngImageFile.getexif() decodes the image to reach a trailing eXIf
            # chunk; find it ourselves and use the base implementation instead.
            if "exif" not in img.info and "Raw profile type exif" not in img.info:
                pos = fh.tell()
                data = _png_trailing_exif(fh)
                fh.seek(pos)
                if data is not None:
                    img.info["exif"] = data
            exif = Image.Image.getexif(img)
        else:
            exif = img.getexif()
        orientation = int(exif.get(ORIENTATION_TAG, 1))
    except Exception:  # malformed EXIF is not fatal; exif_transpose would agree or fail later
        return 1
    return orientation if 1 <= orientation <= 8 else 1


def _pil_header(img: Image.Image, fh: IO[bytes], max_pixels: int | None) -> tuple[int, int]:
    width, height = img.size
    check_pixels(height, width, max_pixels)
    return orient_shape(height, width, _pil_orientation(img, fh))


def _decode_error(img: Image.Image, exc: BaseException) -> ImageError:
    fmt = img.format or "image"
    text = str(exc).lower()
    if isinstance(exc, EOFError) or "truncated" in text or "premature end" in text:
        return ImageError(f"truncated {fmt} file")
    if isinstance(exc, MemoryError):
        return ImageError(f"out of memory decoding {fmt} file")
    return ImageError(f"corrupt {fmt} file ({describe(exc)})")


def _pil_to_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode == "P" or mode == "PA":
        has_alpha = mode == "PA" or "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
        mode = img.mode
    if mode in ("LA", "La"):
        img = img.getchannel(0) if mode == "LA" else img.convert("L")
        mode = "L"
    elif mode in ("RGBA", "RGBa"):
        img = _drop_alpha(img if mode == "RGBA" else img.convert("RGBA"))
        mode = "RGB"
    elif mode == "RGBX":
        img = img.convert("RGB")
        mode = "RGB"
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        try:
            img = img.convert("RGB")
        except ValueError as exc:
            raise ImageError(f"unsupported image mode {mode}") from exc
        mode = "RGB"

    if mode in ("L", "RGB"):
        return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
    if mode == "1":
        return np.asarray(img, dtype=bool).astype(np.uint8) * np.uint8(255)
    if mode.startswith("I;16"):
        arr = np.asarray(img)
        return native(arr).astype(np.uint16, copy=False)
    if mode == "I":
        arr = native(np.asarray(img)).astype(np.int32, copy=False)
        if arr.size == 0 or (int(arr.min()) >= 0 and int(arr.max()) <= 0xFFFF):
            return arr.astype(np.uint16)
        return arr
    if mode == "F":
        return native(np.asarray(img)).astype(np.float32, copy=False)
    raise ImageError(f"unsupported image mode {mode}")


def _drop_alpha(img: Image.Image) -> Image.Image:
    """RGBA -> RGB by discarding alpha (no compositing)."""
    r, g, b, _ = img.split()
    return Image.merge("RGB", (r, g, b))


def _refuse_truncated_loads() -> None:
    """Pillow must fail on truncated data: undo a process-wide LOAD_TRUNCATED_IMAGES."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        log.warning(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES was set; batchseg resets it so that "
            "truncated images fail instead of being stored with missing rows"
        )
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def _label_array(img: Image.Image) -> np.ndarray:
    """A label image's values as stored: palette indices stay indices, 1-bit is 0/1, alpha
    is dropped; other modes as :func:`_pil_to_array`."""
    if img.mode == "P":
        return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
    if img.mode == "PA":
        return np.ascontiguousarray(np.asarray(img, dtype=np.uint8)[..., 0])
    if img.mode == "1":
        return np.asarray(img, dtype=bool).astype(np.uint8)
    return _pil_to_array(img)


def _pil_decode(
    img: Image.Image,
    max_pixels: int | None,
    fh: IO[bytes] | None = None,
    to_array: Callable[[Image.Image], np.ndarray] = _pil_to_array,
) -> np.ndarray:
    """Decode an opened image; with ``fh``, a PNG must hold all its rows."""
    width, height = img.size
    check_pixels(height, width, max_pixels)
    _refuse_truncated_loads()
    if img.format in _JPEG_FORMATS and fh is not None:
        fast = _jpeg(img, fh)
        if fast is not None:
            return fast
    try:
        img.load()
        ImageOps.exif_transpose(img, in_place=True)
    except ImageError:
        raise
    except Exception as exc:
        raise _decode_error(img, exc) from exc
    if img.format == "PNG" and fh is not None:
        try:
            reason = png_incomplete(fh)
        except OSError as exc:
            raise ImageError(os_error_message(exc)) from exc
        if reason is not None:
            raise ImageError(reason)
    try:
        return to_array(img)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(
            f"cannot convert {img.format or 'image'} mode {img.mode} ({describe(exc)})"
        ) from exc


def _jpeg(img: Image.Image, fh: IO[bytes]) -> np.ndarray | None:
    """A grey or RGB JPEG decoded by libjpeg-turbo, EXIF orientation applied; other modes are
    only checked (None: Pillow decodes them). A truncated or corrupt scan fails either way."""
    orientation = _pil_orientation(img, fh)
    try:
        fh.seek(0)
        data = fh.read()
        fh.seek(0)
    except OSError as exc:
        raise ImageError(os_error_message(exc)) from exc
    arr = jpeg_decode(data, img.mode)
    if arr is None:
        jpeg_check(data)
        return None
    return np.ascontiguousarray(orient_array(arr, orientation))


# --------------------------------------------------------------------------- TIFF


def _refuse_stack(tif: Any) -> None:
    """A stack or a picture of several channels is never read as its first page: refused
    with one line naming the option that reads it (``--planes``, ``--channels``)."""
    try:
        layout = tiff_layout(tif)
    except ImageError:
        return  # an unusual layout: the first page's own checks decide
    refusal = stack_refusal(layout) or channels_refusal(layout)
    if refusal is not None:
        raise ImageError(refusal)


def _tiff_header(fh: IO[bytes], max_pixels: int | None) -> tuple[int, int]:
    with tiff_open(fh) as tif:
        _refuse_stack(tif)
        page = tiff_page(tif)
        height, width = tiff_geometry(page)
        check_pixels(height, width, max_pixels)
        return orient_shape(height, width, tiff_orientation(page))


def _tiff_decode(fh: IO[bytes], max_pixels: int | None) -> np.ndarray:
    with tiff_open(fh) as tif:
        _refuse_stack(tif)
        page = tiff_page(tif)
        height, width = tiff_geometry(page)
        check_pixels(height, width, max_pixels)
        try:
            arr = page.asarray()
        except Exception as exc:
            text = str(exc)
            if "imagecodecs" in text:
                # LZW, PackBits, JPEG, CCITT... without imagecodecs: let Pillow's
                # libtiff try (8-bit and 16-bit grey, 8-bit RGB/palette/bilevel).
                fallback = _tiff_decode_with_pil(fh, max_pixels)
                if fallback is not None:
                    return fallback
                compression = getattr(page.compression, "name", page.compression)
                raise ImageError(
                    f"unsupported TIFF compression {compression} (install imagecodecs to read it)"
                ) from exc
            low = text.lower()
            if isinstance(exc, EOFError) or "truncat" in low or "failed to read" in low:
                raise ImageError(f"truncated TIFF file ({describe(exc)})") from exc
            raise ImageError(f"corrupt TIFF file ({describe(exc)})") from exc
        arr = tiff_normalise(np.asarray(arr), page, height, width)
        return np.ascontiguousarray(orient_array(arr, tiff_orientation(page)))


def _tiff_decode_with_pil(fh: IO[bytes], max_pixels: int | None) -> np.ndarray | None:
    """Decode the first TIFF page with Pillow; None if Pillow cannot either."""
    try:
        fh.seek(0)
        with _PIL_LIMIT_LOCK:
            saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
            try:
                img = Image.open(fh, formats=("TIFF",))
            finally:
                Image.MAX_IMAGE_PIXELS = saved
        with img:
            return _pil_decode(img, max_pixels)
    except ImageError as exc:
        text = str(exc)
        if text.startswith(("unsupported image mode", "cannot convert")):
            return None  # e.g. 16-bit RGB: Pillow cannot represent it
        raise  # pixel limit, truncated / corrupt data: Pillow's verdict stands
    except Exception:
        return None


# --------------------------------------------------------------------------- public API


def read_header(
    uri: str,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    *,
    windowed_above: int | None = None,
) -> tuple[int, int]:
    """(height, width) after EXIF orientation, read from the header only (no pixel decode).

    Raises ImageError when the file cannot be read, is not a supported image, or
    exceeds ``max_pixels`` (``None`` disables the limit). With ``windowed_above``, an image
    of more than that many pixels that can be read in windows (tiled/stripped TIFF, Zarr)
    is accepted whatever its size: it is segmented tile by tile, never decoded whole.
    """
    uri = os.fspath(uri)
    try:
        return _header(uri, max_pixels)
    except PixelLimitError:
        if windowed_above is None:
            raise
        shape = windowed_shape(uri)
        if shape is None or shape[0] * shape[1] <= windowed_above:
            raise
        return shape


def _header(uri: str, max_pixels: int | None) -> tuple[int, int]:
    if is_zarr(uri):
        height, width = ZarrSource(uri).shape
        check_pixels(height, width, max_pixels)
        return height, width
    with open_binary(uri) as fh:
        head = sniff(fh)
        if head[:4] in TIFF_MAGIC:
            return _tiff_header(fh, max_pixels)
        if head[:8] == PNG_SIGNATURE:
            size = png_size(fh)
            fh.seek(0)
            if size is not None:
                check_pixels(*size, max_pixels)
                return size
        with _pil_open(fh) as img:
            return _pil_header(img, fh, max_pixels)


def read_image(uri: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode to H x W (grey) or H x W x 3 (RGB) numpy, EXIF orientation applied.

    Grey/RGB 8-bit images give uint8, 16-bit ones uint16, PIL mode ``I`` uint16 when
    the values fit else int32, mode ``F`` float32.  Alpha channels are dropped (not
    composited).  ``height * width`` is checked against ``max_pixels`` before decoding.
    """
    uri = os.fspath(uri)
    if is_zarr(uri):
        source = ZarrSource(uri)
        height, width = source.shape
        check_pixels(height, width, max_pixels)
        return np.ascontiguousarray(source.read(0, height, 0, width))
    return _decode_file(uri, max_pixels)


def _decode_file(uri: str, max_pixels: int | None, *convert: Any) -> np.ndarray:
    """Decode the regular file ``uri`` by its magic bytes: TIFF, PNG (libpng fast path) or
    Pillow (``convert``: Pillow's image to array, default the pixel normaliser's)."""
    with open_binary(uri) as fh:
        head = sniff(fh)
        if head[:4] in TIFF_MAGIC:
            return _tiff_decode(fh, max_pixels)
        if head[:8] == PNG_SIGNATURE:
            fast = _fast_png(fh, max_pixels)
            if fast is not None:
                return fast
        with _pil_open(fh) as img:
            return _pil_decode(img, max_pixels, fh, *convert)


def read_label_image(uri: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A label image (ground truth) with the checks of :func:`read_image` (regular files only,
    size from the header before any decoding, incomplete data fails) and its values as stored:
    palette indices stay indices, 1-bit images are 0/1, alpha is dropped."""
    return _decode_file(os.fspath(uri), max_pixels, _label_array)


def _fast_png(fh: IO[bytes], max_pixels: int | None) -> np.ndarray | None:
    """A plain PNG decoded by libpng (:func:`batchseg.io.png.fast_png_decode`), its size
    checked first; None: Pillow reads it (``fh`` rewound)."""
    fh.seek(0)
    head = fh.read(24)
    if len(head) == 24 and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        check_pixels(height, width, max_pixels)
    data = head + fh.read()
    fh.seek(0)
    return fast_png_decode(data)
