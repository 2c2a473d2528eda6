"""Windowed reads of large images: a rectangle at a time, never the whole picture.

Sources (picked by content, not suffix):

* TIFF / BigTIFF, tiled or stripped: tifffile's Zarr view of the first page, so a window
  decodes only the segments (tiles or strips) it touches. A segment larger than
  :data:`MAX_SEGMENT_PIXELS` (e.g. a TIFF written as one strip) cannot be read in windows.
* Zarr arrays (v2 or v3; a ``.zarr`` folder or URL), including OME-Zarr images (level 0 of
  the first multiscale).
* Anything else (PNG, JPEG, ...): Pillow cannot crop these lazily, so the image is decoded
  whole (within ``--max-pixels``) and windows are cut from memory.

Every window is normalised like :func:`batchseg.io.read.read_image` (grey ``H x W`` or RGB
``H x W x 3``; palette, MINISWHITE, bool and float handled the same way).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np

from batchseg.io import read as readers
from batchseg.io.chunked import (
    MAX_SEGMENT_PIXELS,
    TiffSource,
    ZarrSource,
    open_file,
    windowed_shape,
)
from batchseg.io.formats import TIFF_MAGIC, is_zarr, sniff, tiff_open
from batchseg.io.planes import StackReader, StackView
from batchseg.io.read import DEFAULT_MAX_PIXELS

__all__ = [
    "MAX_SEGMENT_PIXELS",
    "WindowSource",
    "ZarrSource",
    "is_zarr",
    "open_source",
    "read_overlay_source",
    "read_strided",
    "windowed_header",
]


class WindowSource(Protocol):
    """An open image that reads rectangles."""

    shape: tuple[int, int]
    windowed: bool

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]``, normalised (grey 2-D or RGB H x W x 3)."""
        ...


# --------------------------------------------------------------------------- in memory


class _MemorySource:
    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.shape = (int(image.shape[0]), int(image.shape[1]))
        self.windowed = False

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return self.image[y0:y1, x0:x1]


@contextmanager
def open_source(uri: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Iterator[Any]:
    """An open :class:`WindowSource` for ``uri``.

    TIFF and Zarr images are read window by window (``max_pixels`` does not apply: no more
    than a few segments are decoded at once); other formats, and TIFFs whose segments are too
    large, are decoded whole within ``max_pixels``.
    """
    uri = os.fspath(uri)
    if is_zarr(uri):
        zsource = ZarrSource(uri)
        yield (
            zsource
            if zsource.windowed
            else _MemorySource(readers.read_image(uri, max_pixels=max_pixels))
        )
        return
    with contextlib.ExitStack() as stack:
        fh = stack.enter_context(open_file(uri))
        head = sniff(fh)
        if head[:4] in TIFF_MAGIC:
            tif = stack.enter_context(tiff_open(fh))
            source = TiffSource(tif)
            if source.windowed:
                yield source
                return
    yield _MemorySource(readers.read_image(uri, max_pixels=max_pixels))


def windowed_header(uri: str) -> tuple[int, int] | None:
    """(height, width) when ``uri`` can be read in windows (no pixel limit applies), else None."""
    return windowed_shape(uri)


def read_strided(
    uri: str, step: int, band: int = 2048, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """``image[::step, ::step]`` read in bands of rows (memory: one band plus the result).

    Images that cannot be read in windows are decoded whole, within ``max_pixels``.
    """
    with open_source(uri, max_pixels=max_pixels) as src:
        h, w = src.shape
        parts = []
        rows = band - band % step or step
        for y0 in range(0, h, rows):
            parts.append(src.read(y0, min(h, y0 + rows), 0, w)[::step, ::step])
        return np.ascontiguousarray(np.concatenate(parts, axis=0))


def read_overlay_source(
    uri: str,
    shape: tuple[int, int],
    level: int = 0,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    *,
    stacks: StackView | None = None,
) -> np.ndarray:
    """The source image behind a label map of ``shape`` (pyramid ``level``), for overlays.

    Every decode is limited twice: by ``max_pixels`` and by the size the label map implies
    (a source that is larger cannot be its image). A source file replaced after the job by
    a decompression bomb fails from its header, before any pixel is decoded. With ``stacks``
    (a stack job's options, the channels to show), the plane is read as a job reads it.
    """
    if level < 0:
        raise ValueError(f"level must be >= 0, not {level}")
    step = 1 << level
    implied = max(1, int(shape[0]) * step) * max(1, int(shape[1]) * step)
    limit = implied if max_pixels is None else min(implied, max_pixels)
    if stacks is not None:
        reader = StackReader(stacks)
        try:
            return reader.read(uri, limit).image[::step, ::step]
        finally:
            reader.close()
    if level:
        return read_strided(uri, step, max_pixels=limit)
    return readers.read_image(uri, max_pixels=limit)
