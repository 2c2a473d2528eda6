"""JPEG decode by libjpeg-turbo (simplejpeg) that fails on a truncated or corrupt scan.

Pillow and libjpeg decode a JPEG whose scan stops early but which still ends with an
end-of-image marker without any error: libjpeg only *warns* ("Corrupt JPEG data: premature
end of data segment") and fills the missing blocks grey, and Pillow discards the warning.
simplejpeg's strict mode turns libjpeg's warnings into errors, so such a file fails as its
image's error. It is also faster than Pillow (1.3x on BSDS500's JPEGs from memory), with the
same pixels (both are libjpeg-turbo with the same settings; ``tests/io/test_jpeg.py``).

One warning is harmless and tolerated: extraneous bytes before a marker (common in files
from cameras and editors; every block is still decoded), which Pillow accepts as well.
"""

from __future__ import annotations

import logging

import numpy as np

from batchseg.errors import ImageError

__all__ = ["JPEG_MAGIC", "jpeg_check", "jpeg_decode"]

log = logging.getLogger(__name__)

JPEG_MAGIC = b"\xff\xd8\xff"
"""The first bytes of every JPEG (start-of-image marker, then the next marker's 0xFF)."""

_COLOURSPACES = {"L": "GRAY", "RGB": "RGB"}  # Pillow mode -> simplejpeg colour space
_HARMLESS = "extraneous bytes before marker"  # libjpeg's JWRN_EXTRANEOUS_DATA


def _error(exc: BaseException) -> ImageError:
    text = " ".join(str(exc).split())
    low = text.lower()
    if "premature end" in low:
        return ImageError(f"truncated JPEG file ({text})")
    return ImageError(f"corrupt JPEG file ({text})")


def _strict(data: bytes, colourspace: str) -> np.ndarray:
    """Decode with libjpeg's warnings as errors, but for the harmless one."""
    import simplejpeg

    try:
        return simplejpeg.decode_jpeg(data, colorspace=colourspace, strict=True)
    except ValueError as exc:
        if _HARMLESS not in str(exc):
            raise _error(exc) from exc
        log.debug("JPEG with extraneous bytes before a marker decoded: %s", exc)
    try:
        return simplejpeg.decode_jpeg(data, colorspace=colourspace, strict=False)
    except ValueError as exc:
        raise _error(exc) from exc


def jpeg_decode(data: bytes, mode: str) -> np.ndarray | None:
    """``data`` decoded to ``H x W`` (Pillow mode ``L``) or ``H x W x 3`` (``RGB``) uint8,
    stored orientation (no EXIF rotation); None for another mode (CMYK...), which Pillow
    decodes after :func:`jpeg_check`.

    Raises ImageError when the scan is truncated or corrupt, even if the file ends with an
    end-of-image marker.
    """
    colourspace = _COLOURSPACES.get(mode)
    if colourspace is None:
        return None
    arr = _strict(data, colourspace)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return np.ascontiguousarray(arr)


def jpeg_check(data: bytes) -> None:
    """Raise ImageError when the JPEG ``data`` (any colour space) has a truncated or corrupt
    scan; the pixels are decoded and dropped (for the modes :func:`jpeg_decode` leaves to
    Pillow)."""
    _strict(data, "CMYK" if _is_cmyk(data) else "GRAY")


def _is_cmyk(data: bytes) -> bool:
    import simplejpeg

    try:
        return simplejpeg.decode_jpeg_header(data)[2] == "CMYK"
    except ValueError as exc:
        raise _error(exc) from exc
