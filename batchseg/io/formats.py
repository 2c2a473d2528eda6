"""Shared pieces of image reading: opening files safely, sniffing, pixel limits, TIFF.

Used by :mod:`batchseg.io.read` (whole-image decodes) and :mod:`batchseg.io.windowed`
(window by window). Also the one rule for "is this a Zarr image" and the one set of image
suffixes used by discovery.
"""

from __future__ import annotations

import io
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import numpy as np
import tifffile

from batchseg.errors import ImageError

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
)
"""File suffixes treated as images by discovery (the formats :func:`read_image` accepts)."""

TIFF_MAGIC: tuple[bytes, ...] = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
ORIENTATION_TAG = 274
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_ZARR_METADATA = ("zarr.json", ".zarray", ".zgroup", ".zattrs")


def is_zarr(uri: str) -> bool:
    """Whether ``uri`` names a Zarr image rather than a file.

    A local path: a folder holding Zarr metadata (v3 ``zarr.json`` or v2 ``.zarray``,
    ``.zgroup``, ``.zattrs``). A URL (``s3://...``): its path ends in ``.zarr`` (no
    request is made to find out).
    """
    path = uri.rstrip("/")
    if "://" in path:
        return path.lower().endswith(".zarr")
    return os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, name)) for name in _ZARR_METADATA
    )


def escape_name(text: str) -> str:
    """``text`` with the bytes of a file name that is not valid UTF-8 as ``\\xHH`` escapes.

    Python lists such names with lone surrogates, which no store, JSON or terminal can hold;
    the escaped form is readable and is what batchseg records as the image id and uri.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


def unescape_name(text: str) -> str:
    """The file name that :func:`escape_name` turned into ``text`` (``os.fsdecode`` form)."""
    raw = re.sub(
        rb"\\x([89a-fA-F][0-9a-fA-F])", lambda m: bytes([int(m[1], 16)]), text.encode("utf-8")
    )
    return os.fsdecode(raw)


def _open_error(uri: str, exc: OSError) -> str:
    """The message for a failed open; a missing file whose escaped name exists is named so."""
    if isinstance(exc, FileNotFoundError):
        path = uri[len("file://") :] if uri.startswith("file://") else uri
        if "://" not in path:
            original = unescape_name(path)
            if original != path and os.path.lexists(original):
                return "file name is not valid UTF-8 (recorded with \\x escapes); rename the file"
    return os_error_message(exc)


def _squash(text: object) -> str:
    return " ".join(str(text).split())


def describe(exc: BaseException) -> str:
    detail = _squash(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def os_error_message(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not an image file"
    return f"cannot read file ({_squash(exc.strerror or exc)})"


def _nonblocking_opener(path: str, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


@contextmanager
def open_binary(uri: str) -> Iterator[IO[bytes]]:
    """Open ``uri`` for binary reading; map every open/read failure to ImageError."""
    if "://" in uri:
        try:
            import fsspec

            with fsspec.open(uri, "rb") as remote:
                data = remote.read()
        except OSError as exc:
            raise ImageError(_open_error(uri, exc)) from exc
        except Exception as exc:  # unknown protocol, missing backend, bad URL...
            raise ImageError(f"cannot open URL ({describe(exc)})") from exc
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
        raise ImageError(_open_error(uri, exc)) from exc
    try:
        mode = os.fstat(fh.fileno()).st_mode
    except OSError as exc:
        fh.close()
        raise ImageError(os_error_message(exc)) from exc
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


def sniff(fh: IO[bytes]) -> bytes:
    try:
        head = fh.read(16)
        fh.seek(0)
    except OSError as exc:
        raise ImageError(os_error_message(exc)) from exc
    if not head:
        raise ImageError("empty file (0 bytes)")
    return head


class PixelLimitError(ImageError):
    """The image has more pixels than a whole decode may hold (``--max-pixels``)."""


def check_pixels(height: int, width: int, max_pixels: int | None) -> None:
    if height <= 0 or width <= 0:
        raise ImageError(f"image has an invalid size {width}x{height}")
    if max_pixels is not None and height * width > max_pixels:
        raise PixelLimitError(
            f"image {width}x{height} exceeds the pixel limit {max_pixels} (--max-pixels)"
        )


def orient_shape(height: int, width: int, orientation: int) -> tuple[int, int]:
    if orientation in _SWAPPING_ORIENTATIONS:
        return width, height
    return height, width


def orient_array(arr: np.ndarray, orientation: int) -> np.ndarray:
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


def native(arr: np.ndarray) -> np.ndarray:
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return np.ascontiguousarray(arr)


@contextmanager
def tiff_open(fh: IO[bytes]) -> Iterator[tifffile.TiffFile]:
    try:
        tif = tifffile.TiffFile(fh)
    except Exception as exc:
        raise ImageError(f"corrupt TIFF file ({describe(exc)})") from exc
    with tif:
        if not tif.pages:
            raise ImageError("corrupt or truncated TIFF file (no readable image directory)")
        yield tif


def tiff_page(tif: tifffile.TiffFile) -> Any:
    try:
        page = tif.pages.first
    except Exception as exc:
        raise ImageError(f"corrupt TIFF file ({describe(exc)})") from exc
    return page


def tiff_geometry(page: Any) -> tuple[int, int]:
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


def tiff_orientation(page: Any) -> int:
    tag = page.tags.get(ORIENTATION_TAG)
    if tag is None:
        return 1
    try:
        value = int(tag.value)
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def tiff_normalise(arr: np.ndarray, page: Any, height: int, width: int) -> np.ndarray:
    axes = str(page.axes)
    if arr.ndim != len(axes):
        arr = arr.reshape(page.shape)
    # Bring to (Y, X[, S]) order, dropping singleton axes.
    order = [axes.index("Y"), axes.index("X")]
    if "S" in axes:
        order.append(axes.index("S"))
    keep = set(order)
    for i in sorted((i for i in range(arr.ndim) if i not in keep), reverse=True):
        arr = arr.take(0, axis=i)  # singleton (checked in tiff_geometry)
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
        return native(arr).astype(np.float32, copy=False)
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ImageError(f"unsupported TIFF sample type {arr.dtype}")
    return native(arr)
