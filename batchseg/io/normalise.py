"""The one image normaliser: any decoded image -> grey or RGB, scaled by one rule.

The rule (:func:`unit_float`): ``bool`` 0/1; ``uint8`` / ``uint16`` by their dtype range;
any other integer type (e.g. Pillow's mode ``I``, int32, which holds 16-bit data) is
clipped to 0..65535 and scaled as 16-bit; floats are taken as already in [0, 1] (clipped,
NaN as 0). Kernels (:func:`to_grey`, :func:`to_rgb`), semantic models (:func:`model_rgb`)
and overlays (:func:`display_rgb`) all use it, so one image looks the same to each.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from batchseg.errors import ImageError

__all__ = [
    "display_rgb",
    "is_colour",
    "model_rgb",
    "split_alpha",
    "to_grey",
    "to_rgb",
    "unit_float",
]

_NATIVE = (np.dtype(np.bool_), np.dtype(np.uint8), np.dtype(np.uint16))


def unit_float(image: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
    """``image`` as floats in [0, 1] by the module's rule (``dtype`` float64 or float32)."""
    image = np.asarray(image)
    if image.dtype in _NATIVE:  # scikit-image's own scaling, bit for bit
        from skimage.util import img_as_float, img_as_float32  # (lazy: a slow import)

        scaled = img_as_float32(image) if dtype is np.float32 else img_as_float(image)
        return scaled.astype(dtype, copy=False)
    if np.issubdtype(image.dtype, np.integer):
        # e.g. Pillow "I" mode (int32) holds 16-bit data: scaling by int32's range would
        # squash it to ~0, so clip to 0..65535 and scale as uint16.
        return np.clip(image, 0, 65535).astype(dtype) / dtype(65535.0)
    if np.issubdtype(image.dtype, np.floating):
        return np.clip(np.nan_to_num(image.astype(dtype)), 0.0, 1.0)
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


def split_alpha(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """(``image`` without alpha: H x W grey or H x W x 3 colour, whether it is colour)."""
    return _split(image)


def is_colour(image: np.ndarray) -> bool:
    """Whether ``image`` carries colour (RGB or RGBA) rather than grey (+ alpha)."""
    return _split(image)[1]


def to_grey(image: np.ndarray) -> np.ndarray:
    """H x W float64 grey in [0, 1]; colour goes through ``skimage.color.rgb2gray``."""
    pixels, colour = _split(image)
    grey = unit_float(pixels)
    if not colour:
        return grey
    from skimage.color import rgb2gray  # (lazy: imports scipy.linalg)

    return rgb2gray(grey)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """H x W x 3 float64 RGB in [0, 1]; grey is replicated to three channels."""
    pixels, colour = _split(image)
    rgb = unit_float(pixels)
    return rgb if colour else np.repeat(rgb[..., None], 3, axis=2)


def _rgb_pixels(image: np.ndarray) -> np.ndarray:
    """H x W x 3 in the input dtype (grey replicated, alpha dropped); H x W x 2 refused."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return arr[:, :, :3]
    raise ImageError(f"expected an H x W or H x W x 3 image, got shape {arr.shape}")


def model_rgb(image: np.ndarray) -> np.ndarray:
    """H x W x 3 input of a network: uint8 kept as is (scaled later), else float32 in [0, 1]."""
    arr = _rgb_pixels(image)
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"empty image of shape {arr.shape}")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    return np.ascontiguousarray(unit_float(arr, np.float32))


def display_rgb(image: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 for display (overlays): 0..1 of :func:`unit_float` mapped to 0..255."""
    arr = _rgb_pixels(image)
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    return np.rint(unit_float(arr, np.float32) * np.float32(255.0)).astype(np.uint8)
