"""Image normalisation shared by the kernels: any supported image -> float grey or RGB in [0, 1]."""

from __future__ import annotations

import numpy as np
from skimage.color import rgb2gray
from skimage.util import img_as_float

from batchseg.errors import ImageError

_NATIVE = (np.bool_, np.uint8, np.uint16)


def _as_float(image: np.ndarray) -> np.ndarray:
    """float64 in [0, 1]: uint8/uint16/bool by their dtype range, wider ints as 16-bit."""
    if image.dtype.type in _NATIVE:
        return img_as_float(image).astype(np.float64, copy=False)
    if np.issubdtype(image.dtype, np.integer):
        # e.g. Pillow "I" mode (int32) holds 16-bit data: scaling by int32's range would
        # squash it to ~0, so clip to 0..65535 and scale as uint16.
        return np.clip(image, 0, 65535).astype(np.float64) / 65535.0
    if np.issubdtype(image.dtype, np.floating):
        return np.clip(np.nan_to_num(image.astype(np.float64)), 0.0, 1.0)
    raise ImageError(f"unsupported image dtype {image.dtype}")


def _split(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """(image without alpha, is_colour): H x W, H x W x 1/2 (grey[+alpha]), H x W x 3/4."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image, False
    if image.ndim == 3 and image.shape[2] in (1, 2):
        return image[..., 0], False
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return image[..., :3], True
    raise ImageError(f"unsupported image shape {image.shape}: want H x W or H x W x 1-4")


def is_colour(image: np.ndarray) -> bool:
    """Whether ``image`` carries colour (RGB or RGBA) rather than grey (+ alpha)."""
    return _split(image)[1]


def to_grey(image: np.ndarray) -> np.ndarray:
    """H x W float64 grey in [0, 1]; colour goes through ``skimage.color.rgb2gray``."""
    pixels, colour = _split(image)
    grey = _as_float(pixels)
    return rgb2gray(grey) if colour else grey


def to_rgb(image: np.ndarray) -> np.ndarray:
    """H x W x 3 float64 RGB in [0, 1]; grey is replicated to three channels."""
    pixels, colour = _split(image)
    rgb = _as_float(pixels)
    return rgb if colour else np.repeat(rgb[..., None], 3, axis=2)
