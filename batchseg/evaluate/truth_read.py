"""Reading truth files: confined to the truth folder and bounded by the prediction's size.

Truth files go through the input side's checks (:mod:`batchseg.io.read`): only regular files
are opened (a FIFO fails instead of blocking), the size comes from the header before any pixel
is decoded, and incomplete data (a PNG that holds half its rows) fails instead of being scored
with black rows. A truth file must have the size of the label map it is scored against, so its
header is compared with that size first: a 12000x12000 truth PNG of a 360x480 image fails
from a few bytes of I/O. Truth paths built from image ids, patterns or COCO ``file_name`` must
resolve inside the truth folder (:func:`outside`).
"""

from __future__ import annotations

import os

import numpy as np

from batchseg.errors import ImageError
from batchseg.io.read import DEFAULT_MAX_PIXELS, read_header, read_image, read_label_image


def outside(folder: str, path: str) -> str | None:
    """None when ``path`` (relative to ``folder``, or absolute) resolves inside ``folder``,
    symlinks and ``..`` followed; else the reason."""
    root = os.path.join(os.path.realpath(folder), "")
    if not os.path.realpath(os.path.join(folder, path)).startswith(root):
        return f"truth path {path!r} leads outside the truth folder {folder}"
    return None


def read_truth(
    path: str, shape: tuple[int, ...], max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """A truth label image of ``shape`` (height, width) as stored (palette indices stay
    indices, alpha dropped); ImageError naming the file when it cannot be, without decoding
    more than ``shape`` pixels."""
    try:
        limit = _check_header(path, shape, max_pixels)
        return read_label_image(path, limit)
    except ImageError as exc:
        raise ImageError(f"truth {os.path.basename(path)}: {exc}") from None


def read_panoptic_truth(
    path: str, shape: tuple[int, ...], max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """A COCO panoptic PNG of ``shape`` as RGB (palette PNGs by their colours) or grey, with the
    checks of :func:`read_truth`."""
    try:
        limit = _check_header(path, shape, max_pixels)
        return read_image(path, limit)
    except ImageError as exc:
        raise ImageError(f"truth {os.path.basename(path)}: {exc}") from None


def _check_header(path: str, shape: tuple[int, ...], max_pixels: int | None) -> int:
    """The pixel limit of the decode: the file's header must give ``shape``."""
    height, width = int(shape[0]), int(shape[1])
    found = read_header(path, max_pixels)
    if found != (height, width):
        raise ImageError(
            f"is {found[0]}x{found[1]}, prediction {height}x{width} (height x width); never resized"
        )
    return max(1, height * width)
