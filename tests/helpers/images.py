"""Seeded synthetic test images and collections."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def make_image(rng: np.random.Generator, height: int, width: int, colour: bool) -> np.ndarray:
    """Bright discs on a dark noisy background (so thresholds and SLIC have structure)."""
    yy, xx = np.mgrid[:height, :width]
    image = rng.normal(40, 10, (height, width))
    for _ in range(int(rng.integers(2, 6))):
        cy, cx = rng.integers(0, height), rng.integers(0, width)
        r = rng.integers(min(height, width) // 10 + 2, min(height, width) // 4 + 3)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.normal(200, 15)
    image = np.clip(image, 0, 255).astype(np.uint8)
    if colour:
        tint = np.stack([image, np.roll(image, 3, axis=1), image // 2], axis=-1)
        return tint.astype(np.uint8)
    return image


def write_collection(folder: Path, n: int = 24, seed: int = 0) -> list[Path]:
    """``n`` PNG images of three shapes in two subfolders (colour/, grey/)."""
    rng = np.random.default_rng(seed)
    shapes = [(48, 64), (64, 48), (40, 40)]
    paths = []
    for i in range(n):
        h, w = shapes[i % len(shapes)]
        sub = folder / ("grey" if i % 2 else "colour")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img_{i:03d}.png"
        Image.fromarray(make_image(rng, h, w, colour=not i % 2)).save(path)
        paths.append(path)
    return paths


# The tiled test scene: small enough to segment whole (the reference), large enough for
# 3 x 5 tiles of 256, a 2-level label pyramid and a 4-level OME-Zarr export.
TILED_H, TILED_W, TILED_TILE = 700, 1100, 256
TILED_THRESHOLD = 500_000  # pixels: images above it take the tiled path


def blobs(seed: int, colour: bool, height: int = TILED_H, width: int = TILED_W) -> np.ndarray:
    """Smooth random blobs (grey, or RGB from shifted copies) of ``height`` x ``width``."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    grey = ndi.gaussian_filter(rng.random((height, width)), 9)
    grey = (grey - grey.min()) / (grey.max() - grey.min())
    grey = (grey * 230 + rng.normal(0, 6, (height, width))).clip(0, 255).astype(np.uint8)
    if not colour:
        return grey
    return np.stack([grey, np.roll(grey, 40, axis=1), 255 - grey], axis=-1)


def png_chunk(ctype: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and a valid CRC."""
    crc = zlib.crc32(ctype + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", crc)


def png_file(ihdr: bytes, raw: bytes) -> bytes:
    """A PNG of one IHDR, one IDAT holding ``raw`` (filtered scanlines) compressed, IEND."""
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b"")
    )


def short_png(width: int = 16, height: int = 16, rows: int = 8) -> bytes:
    """A well-formed grey PNG (valid CRCs, IEND) whose zlib stream holds only ``rows`` rows."""
    raw = b"".join(b"\x00" + bytes([200]) * width for _ in range(rows))
    return png_file(struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0), raw)


def interlaced_png(rgb: np.ndarray) -> bytes:
    """An Adam7-interlaced 8-bit RGB PNG of ``rgb`` (Pillow cannot write one)."""
    h, w, _ = rgb.shape
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4))
    raw = b""
    for x0, y0, dx, dy in (*passes, (1, 0, 2, 2), (0, 1, 1, 2)):
        sub = rgb[y0::dy, x0::dx]
        if sub.size:
            raw += b"".join(b"\x00" + row.tobytes() for row in sub)
    return png_file(struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1), raw)
