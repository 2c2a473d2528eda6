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
so that arbitrary bytes are never "recognised" by a weak-magic plugin.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import numpy as np
import tifffile
from PIL import Image, ImageOps, UnidentifiedImageError

from batchseg.errors import ImageError

__all__ = ["DEFAULT_MAX_PIXELS", "SUPPORTED_SUFFIXES", "read_header", "read_image"]

DEFAULT_MAX_PIXELS: int = 1 << 28
"""Decompression-bomb guard (pixels per image); configurable per job (--max-pixels)."""

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
)

# Pillow formats we accept (a JPEG with several pictures opens as MPO).
_PIL_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "MPO", "BMP", "WEBP")

_TIFF_MAGIC: tuple[bytes, ...] = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_ORIENTATION_TAG = 274
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})

# Pillow's own bomb check (Image.MAX_IMAGE_PIXELS) runs inside Image.open; it is
# switched off only for the duration of our header parse, under a lock, and our
# own max_pixels check replaces it.  The lock is never held while decoding.
_PIL_LIMIT_LOCK = threading.Lock()


# --------------------------------------------------------------------------- helpers


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _describe(exc: BaseException) -> str:
    detail = _one_line(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _os_error_message(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not an image file"
    return f"cannot read file ({_one_line(exc.strerror or exc)})"


def _nonblocking_opener(path: str, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


@contextmanager
def _open_binary(uri: str) -> Iterator[IO[bytes]]:
    """Open ``uri`` for binary reading; map every open/read failure to ImageError."""
    if "://" in uri:
        try:
            import fsspec

            with fsspec.open(uri, "rb") as remote:
                data = remote.read()
        except OSError as exc:
            raise ImageError(_os_error_message(exc)) from exc
        except Exception as exc:  # unknown protocol, missing backend, bad URL...
            raise ImageError(f"cannot open URL ({_describe(exc)})") from exc
        if not data:
            raise ImageError("empty file (0 bytes)")
        with io.BytesIO(data) as buf:
            yield buf
        return

    if os.path.isdir(uri):
        raise ImageError("is a directory, not an image file")
    try:
        # O_NONBLOCK: opening a FIFO (or some devices) for reading would otherwise block
        # forever; it has no effect on regular files, and anything else is refused below.
        fh = open(uri, "rb", opener=_nonblocking_opener)  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ImageError(_os_error_message(exc)) from exc
    try:
        mode = os.fstat(fh.fileno()).st_mode
    except OSError as exc:
        fh.close()
        raise ImageError(_os_error_message(exc)) from exc
    if not stat.S_ISREG(mode):
        fh.close()
        raise ImageError("not a regular file (FIFO, socket or device)")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fh.fileno(), True)
    with fh:
        try:
            size = os.fstat(fh.fileno()).st_size
        except (OSError, io.UnsupportedOperation, AttributeError):
            size = None
        if size == 0:
            raise ImageError("empty file (0 bytes)")
        yield fh


def _sniff(fh: IO[bytes]) -> bytes:
    try:
        head = fh.read(16)
        fh.seek(0)
    except OSError as exc:
        raise ImageError(_os_error_message(exc)) from exc
    if not head:
        raise ImageError("empty file (0 bytes)")
    return head


class PixelLimitError(ImageError):
    """The image has more pixels than a whole decode may hold (``--max-pixels``)."""


def _check_pixels(height: int, width: int, max_pixels: int | None) -> None:
    if height <= 0 or width <= 0:
        raise ImageError(f"image has an invalid size {width}x{height}")
    if max_pixels is not None and height * width > max_pixels:
        raise PixelLimitError(
            f"image {width}x{height} exceeds the pixel limit {max_pixels} (--max-pixels)"
        )


def _orient_shape(height: int, width: int, orientation: int) -> tuple[int, int]:
    if orientation in _SWAPPING_ORIENTATIONS:
        return width, height
    return height, width


def _orient_array(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation to an (H, W[, C]) array, matching PIL's exif_transpose."""
    if orientation == 2:
        arr = arr[:, ::-1]
    elif orientation == 3:
        arr = arr[::-1, ::-1]
    elif orientation == 4:
        arr = arr[::-1]
    elif orientation == 5:
        arr = arr.swapaxes(0, 1)
    elif orientation == 6:
        arr = np.rot90(arr, k=-1)
    elif orientation == 7:
        arr = arr[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        arr = np.rot90(arr, k=1)
    return arr


def _native(arr: np.ndarray) -> np.ndarray:
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return np.ascontiguousarray(arr)


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
            raise ImageError(_os_error_message(exc)) from exc
        raise ImageError(f"corrupt or truncated image header ({_describe(exc)})") from exc
    except Exception as exc:  # SyntaxError, ValueError, struct.error... from a plugin
        raise ImageError(f"corrupt image header ({_describe(exc)})") from exc
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
        orientation = int(exif.get(_ORIENTATION_TAG, 1))
    except Exception:  # malformed EXIF is not fatal; exif_transpose would agree or fail later
        return 1
    return orientation if 1 <= orientation <= 8 else 1


def _pil_header(img: Image.Image, fh: IO[bytes], max_pixels: int | None) -> tuple[int, int]:
    width, height = img.size
    _check_pixels(height, width, max_pixels)
    return _orient_shape(height, width, _pil_orientation(img, fh))


def _decode_error(img: Image.Image, exc: BaseException) -> ImageError:
    fmt = img.format or "image"
    text = str(exc).lower()
    if isinstance(exc, EOFError) or "truncated" in text or "premature end" in text:
        return ImageError(f"truncated {fmt} file")
    if isinstance(exc, MemoryError):
        return ImageError(f"out of memory decoding {fmt} file")
    return ImageError(f"corrupt {fmt} file ({_describe(exc)})")


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
        return _native(arr).astype(np.uint16, copy=False)
    if mode == "I":
        arr = _native(np.asarray(img)).astype(np.int32, copy=False)
        if arr.size == 0 or (int(arr.min()) >= 0 and int(arr.max()) <= 0xFFFF):
            return arr.astype(np.uint16)
        return arr
    if mode == "F":
        return _native(np.asarray(img)).astype(np.float32, copy=False)
    raise ImageError(f"unsupported image mode {mode}")


def _drop_alpha(img: Image.Image) -> Image.Image:
    """RGBA -> RGB by discarding alpha (no compositing)."""
    r, g, b, _ = img.split()
    return Image.merge("RGB", (r, g, b))


def _pil_decode(img: Image.Image, max_pixels: int | None) -> np.ndarray:
    width, height = img.size
    _check_pixels(height, width, max_pixels)
    try:
        img.load()
        ImageOps.exif_transpose(img, in_place=True)
    except ImageError:
        raise
    except Exception as exc:
        raise _decode_error(img, exc) from exc
    try:
        return _pil_to_array(img)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(
            f"cannot convert {img.format or 'image'} mode {img.mode} ({_describe(exc)})"
        ) from exc


# --------------------------------------------------------------------------- TIFF


@contextmanager
def _tiff_open(fh: IO[bytes]) -> Iterator[tifffile.TiffFile]:
    try:
        tif = tifffile.TiffFile(fh)
    except Exception as exc:
        raise ImageError(f"corrupt TIFF file ({_describe(exc)})") from exc
    with tif:
        if not tif.pages:
            raise ImageError("corrupt or truncated TIFF file (no readable image directory)")
        yield tif


def _tiff_page(tif: tifffile.TiffFile) -> Any:
    try:
        page = tif.pages.first
    except Exception as exc:
        raise ImageError(f"corrupt TIFF file ({_describe(exc)})") from exc
    return page


def _tiff_geometry(page: Any) -> tuple[int, int]:
    """(height, width) of the stored (unoriented) first page, validated to be 2-D."""
    shape = tuple(int(n) for n in page.shape)
    axes = str(page.axes)
    extra = [ax for ax, n in zip(axes, shape, strict=False) if ax not in "YXS" and n > 1]
    if extra or "Y" not in axes or "X" not in axes:
        raise ImageError(
            f"TIFF image has {len(shape)} dimensions {shape} (axes {axes}); "
            "only 2-D grey or RGB images are supported"
        )
    return shape[axes.index("Y")], shape[axes.index("X")]


def _tiff_orientation(page: Any) -> int:
    tag = page.tags.get(_ORIENTATION_TAG)
    if tag is None:
        return 1
    try:
        value = int(tag.value)
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def _tiff_header(fh: IO[bytes], max_pixels: int | None) -> tuple[int, int]:
    with _tiff_open(fh) as tif:
        page = _tiff_page(tif)
        height, width = _tiff_geometry(page)
        _check_pixels(height, width, max_pixels)
        return _orient_shape(height, width, _tiff_orientation(page))


def _tiff_decode(fh: IO[bytes], max_pixels: int | None) -> np.ndarray:
    with _tiff_open(fh) as tif:
        page = _tiff_page(tif)
        height, width = _tiff_geometry(page)
        _check_pixels(height, width, max_pixels)
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
                raise ImageError(f"truncated TIFF file ({_describe(exc)})") from exc
            raise ImageError(f"corrupt TIFF file ({_describe(exc)})") from exc
        arr = _tiff_normalise(np.asarray(arr), page, height, width)
        return np.ascontiguousarray(_orient_array(arr, _tiff_orientation(page)))


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


def _tiff_normalise(arr: np.ndarray, page: Any, height: int, width: int) -> np.ndarray:
    axes = str(page.axes)
    if arr.ndim != len(axes):
        arr = arr.reshape(page.shape)
    # Bring to (Y, X[, S]) order, dropping singleton axes.
    order = [axes.index("Y"), axes.index("X")]
    if "S" in axes:
        order.append(axes.index("S"))
    keep = set(order)
    for i in sorted((i for i in range(arr.ndim) if i not in keep), reverse=True):
        arr = arr.take(0, axis=i)  # singleton (checked in _tiff_geometry)
        order = [o - 1 if o > i else o for o in order]
    arr = np.transpose(arr, order)

    photometric = int(getattr(page, "photometric", -1))
    if photometric == 3 and arr.ndim == 2 and page.colormap is not None:  # palette
        cmap = np.asarray(page.colormap)
        rgb = np.moveaxis(cmap[:, arr], 0, -1)
        arr = rgb.astype(np.uint8) if cmap.max() <= 255 else (rgb >> 8).astype(np.uint8)

    if arr.ndim == 3:
        samples = arr.shape[2]
        if samples >= 3:
            arr = arr[:, :, :3]  # drop alpha / extra samples
        else:
            arr = arr[:, :, 0]  # grey (+ alpha)
    if arr.ndim != 2 and not (arr.ndim == 3 and arr.shape[2] == 3):
        raise ImageError(f"unsupported TIFF sample layout {arr.shape}")

    if photometric == 0 and arr.ndim == 2:  # MINISWHITE: 0 is white
        if arr.dtype == bool:
            arr = ~arr
        elif np.issubdtype(arr.dtype, np.unsignedinteger):
            bits = int(getattr(page, "bitspersample", arr.dtype.itemsize * 8))
            arr = np.asarray((1 << bits) - 1 - arr.astype(np.int64), dtype=arr.dtype)

    if arr.dtype == bool:
        return arr.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(arr.dtype, np.floating):
        return _native(arr).astype(np.float32, copy=False)
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ImageError(f"unsupported TIFF sample type {arr.dtype}")
    return _native(arr)


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
        from batchseg.io.windowed import windowed_header

        shape = windowed_header(uri)
        if shape is None or shape[0] * shape[1] <= windowed_above:
            raise
        return shape


def _header(uri: str, max_pixels: int | None) -> tuple[int, int]:
    from batchseg.io.windowed import ZarrSource, is_zarr

    if is_zarr(uri):
        height, width = ZarrSource(uri).shape
        _check_pixels(height, width, max_pixels)
        return height, width
    with _open_binary(uri) as fh:
        head = _sniff(fh)
        if head[:4] in _TIFF_MAGIC:
            return _tiff_header(fh, max_pixels)
        with _pil_open(fh) as img:
            return _pil_header(img, fh, max_pixels)


def read_image(uri: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode to H x W (grey) or H x W x 3 (RGB) numpy, EXIF orientation applied.

    Grey/RGB 8-bit images give uint8, 16-bit ones uint16, PIL mode ``I`` uint16 when
    the values fit else int32, mode ``F`` float32.  Alpha channels are dropped (not
    composited).  ``height * width`` is checked against ``max_pixels`` before decoding.
    """
    uri = os.fspath(uri)
    from batchseg.io.windowed import ZarrSource, is_zarr

    if is_zarr(uri):
        source = ZarrSource(uri)
        height, width = source.shape
        _check_pixels(height, width, max_pixels)
        return np.ascontiguousarray(source.read(0, height, 0, width))
    with _open_binary(uri) as fh:
        head = _sniff(fh)
        if head[:4] in _TIFF_MAGIC:
            return _tiff_decode(fh, max_pixels)
        with _pil_open(fh) as img:
            return _pil_decode(img, max_pixels)
