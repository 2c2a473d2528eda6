"""An offline sample collection built from scikit-image's bundled pictures.

Every picture is written at its natural size (no rescaling): the twelve sources range from
191x384 (``page``) through 512x512 (``astronaut``, ``camera``, ...) to 872x1000 (``hubble``) and
1411x1411 (``retina``), grey and RGB. Later rounds over the sources rotate them by 90 degrees
(landscape becomes portrait), crop them to 80% of each side, then flip them, so the collection
has many shapes while every image stays large.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

log = logging.getLogger(__name__)

#: Sources by output name -> ``skimage.data`` loader name; all ship inside scikit-image
#: (no download). Ordered so that a short collection still mixes sizes, colour and grey.
SOURCES: dict[str, str] = {
    "astronaut": "astronaut",  # 512x512 RGB
    "coffee": "coffee",  # 400x600 RGB
    "camera": "camera",  # 512x512 grey
    "rocket": "rocket",  # 427x640 RGB
    "coins": "coins",  # 303x384 grey
    "hubble": "hubble_deep_field",  # 872x1000 RGB
    "chelsea": "chelsea",  # 300x451 RGB
    "moon": "moon",  # 512x512 grey
    "ihc": "immunohistochemistry",  # 512x512 RGB
    "cell": "cell",  # 660x550 grey
    "page": "page",  # 191x384 grey
    "retina": "retina",  # 1411x1411 RGB
}

#: Variant names in the order rounds of sources use them.
VARIANTS: tuple[str, ...] = ("original", "rot90", "crop", "fliplr", "flipud")

#: Side fraction kept by the ``crop`` variant.
CROP_FRACTION = 0.8


def _crop(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    ch, cw = int(h * CROP_FRACTION), int(w * CROP_FRACTION)
    top = int(rng.integers(0, h - ch + 1))
    left = int(rng.integers(0, w - cw + 1))
    return image[top : top + ch, left : left + cw]


_TRANSFORMS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "original": lambda image, rng: image,
    "fliplr": lambda image, rng: image[:, ::-1],
    "flipud": lambda image, rng: image[::-1],
    "rot90": lambda image, rng: np.rot90(image),
    "crop": _crop,
}


def plan(count: int) -> list[tuple[str, str, str]]:
    """``(relative path, source name, variant)`` of each of the ``count`` demo images."""
    names = list(SOURCES)
    out = []
    for i in range(count):
        name = names[i % len(names)]
        variant = VARIANTS[(i // len(names)) % len(VARIANTS)]
        suffix = ".jpg" if i % 3 == 0 else ".png"
        out.append((f"{name}/{name}_{i:04d}{suffix}", name, variant))
    return out


def load_source(name: str) -> np.ndarray:
    """The bundled picture behind demo source ``name`` as uint8 grey or RGB."""
    image = np.asarray(getattr(data, SOURCES[name])())
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    return image


def make_collection(
    folder: Path, count: int = 36, seed: int = 0, max_side: int | None = None
) -> int:
    """Write ``count`` PNG/JPEG images at natural sizes into ``folder``; returns the count.

    ``max_side`` (for quick tests) shrinks any image whose longer side exceeds it, keeping
    its aspect ratio; the demo itself leaves it unset.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if max_side is not None and max_side < 8:
        raise ValueError(f"max_side must be at least 8, got {max_side}")
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pictures: dict[str, np.ndarray] = {}
    for rel, name, variant in plan(count):
        if name not in pictures:
            pictures[name] = load_source(name)
        image = np.ascontiguousarray(_TRANSFORMS[variant](pictures[name], rng))
        path = folder / rel
        path.parent.mkdir(exist_ok=True)
        picture = Image.fromarray(image)
        if max_side is not None:
            picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        picture.save(path, quality=92)
    log.debug("wrote %d images to %s", count, folder)
    return count
