"""An offline sample collection built from scikit-image's bundled pictures."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data, transform, util

log = logging.getLogger(__name__)

_SOURCES = ("astronaut", "coffee", "chelsea", "camera", "coins", "rocket", "moon", "page")


def _variants(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A flipped / cropped / rescaled variant, snapped to a few shapes per source."""
    choice = rng.integers(0, 4)
    if choice == 1:
        image = image[:, ::-1]
    elif choice == 2:
        image = image[::-1]
    elif choice == 3:
        h, w = image.shape[:2]
        image = image[h // 8 : h - h // 8, w // 8 : w - w // 8]
    scale = (0.25, 0.5)[int(rng.integers(0, 2))]
    out = transform.rescale(
        image, scale, channel_axis=-1 if image.ndim == 3 else None, anti_aliasing=True
    )
    return util.img_as_ubyte(np.clip(out, 0, 1))


def make_collection(folder: Path, count: int = 240, seed: int = 0) -> int:
    """Write ``count`` PNG/JPEG images of several shapes into ``folder``; returns the count."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    pictures = {name: getattr(data, name)() for name in _SOURCES}
    for i in range(count):
        name = _SOURCES[i % len(_SOURCES)]
        image = _variants(pictures[name], rng)
        sub = folder / name
        sub.mkdir(exist_ok=True)
        suffix = ".jpg" if i % 3 == 0 else ".png"
        Image.fromarray(image).save(sub / f"{name}_{i:04d}{suffix}", quality=92)
    log.info("wrote %d images to %s", count, folder)
    return count
