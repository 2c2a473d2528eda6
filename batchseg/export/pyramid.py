"""Pyramid levels of an OME-Zarr export: windows, level arrays, downsampling, codecs."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from batchseg import store

Shapes = list[tuple[int, ...]]

CHUNK = 256
"""Chunk edge (y and x) of every level; smaller levels use their own size."""


def windows(shape: tuple[int, int], step: tuple[int, int]) -> Iterator[tuple[slice, slice]]:
    """``(rows, columns)`` slices covering ``shape`` in row-major windows of ``step``."""
    (h, w), (sy, sx) = shape, step
    for y0 in range(0, h, sy):
        for x0 in range(0, w, sx):
            yield slice(y0, min(y0 + sy, h)), slice(x0, min(x0 + sx, w))


def half_step(tile: int) -> int:
    """Window side of a computed level: a multiple of the chunk side, about half a tile.

    The window reads twice that side from the level above, so at most ``max(tile, 512)``
    squared pixels.
    """
    return max(CHUNK, (tile // 2) // CHUNK * CHUNK)


def aligned_step(stored_chunk: int, out_chunk: int, tile: int) -> int:
    """Window side that is whole chunks of both the stored and the output level."""
    step = math.lcm(stored_chunk, out_chunk)
    return step if step <= max(tile, out_chunk) else out_chunk


def shape_of(array: zarr.Array) -> tuple[int, ...]:
    """An array's shape as plain ints."""
    return tuple(int(s) for s in array.shape)


def write_pyramid(
    group: zarr.Group,
    data: np.ndarray,
    n_levels: int,
    codec: BloscCodec,
    downsample: Any,
    axes: list[dict[str, str]],
) -> Shapes:
    shapes = []
    level = data
    for k in range(n_levels):
        if k:
            level = downsample(level)
        array = create_level(group, k, level.shape, level.dtype, codec, axes)
        array[...] = level
        shapes.append(tuple(int(s) for s in level.shape))
    return shapes


def create_level(
    group: zarr.Group,
    k: int,
    shape: tuple[int, ...],
    dtype: Any,
    codec: BloscCodec,
    axes: list[dict[str, str]],
) -> zarr.Array:
    """The empty array of level ``k``: chunks of ``CHUNK`` (y, x), 1 on the leading axis."""
    chunks = (1,) * (len(shape) - 2) + tuple(min(CHUNK, s) for s in shape[-2:])
    return group.create_array(
        name=str(k),
        shape=shape,
        dtype=dtype,
        chunks=chunks,
        compressors=codec,
        fill_value=0,
        dimension_names=[a["name"] for a in axes],
    )


def nearest(labels: np.ndarray) -> np.ndarray:
    """Every 2nd pixel along y and x (top-left of each 2x2 block): values stay label values."""
    return np.ascontiguousarray(labels[..., ::2, ::2])


def block_mean(image: np.ndarray) -> np.ndarray:
    """2x2 block means along the last two axes, rounded for integer images.

    Odd sizes repeat the last row/column, so the result has ``ceil(n / 2)`` pixels per axis
    like :func:`nearest`.
    """
    h, w = image.shape[-2:]
    if h % 2 or w % 2:
        pad = [(0, 0)] * (image.ndim - 2) + [(0, h % 2), (0, w % 2)]
        image = np.pad(image, pad, mode="edge")
    if np.issubdtype(image.dtype, np.floating):
        acc: type = np.float64 if image.dtype == np.float64 else np.float32
    elif image.dtype == np.uint8:
        acc = np.uint16
    elif image.dtype == np.uint16:
        acc = np.uint32
    else:
        acc = np.int64
    total: np.ndarray = image[..., 0::2, 0::2].astype(acc)
    total += image[..., 1::2, 0::2]
    total += image[..., 0::2, 1::2]
    total += image[..., 1::2, 1::2]
    if np.issubdtype(image.dtype, np.floating):
        return (total / 4).astype(image.dtype)
    total += 2  # round half up
    return (total // 4).astype(image.dtype)


def image_codec(dtype: np.dtype) -> BloscCodec:
    """Compressor of exported image levels: zstd 5, bit-shuffled for 8-bit, else byte-shuffled."""
    if np.dtype(dtype).itemsize == 1:
        return BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")
    return BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")


def label_codec(dtype: np.dtype) -> BloscCodec:
    """Compressor of exported label levels: the store's label compressor."""
    return store.label_codec(dtype)
