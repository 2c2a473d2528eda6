"""Checks of COCO ``segmentation`` geometry before anything is rasterised.

pycocotools rasterises a polygon edge by edge, at five times the resolution, with memory in
proportion to its perimeter: one coordinate of ``1e20`` (or NaN) grows the process by tens of
GB. It decodes RLE counts without checking that they add up to the image. So every truth
annotation is checked first (pure Python, no pixels): polygons need at least 3 points of
finite coordinates within :data:`MARGIN` image sizes of the image; RLE needs ``size`` equal
to the image's and non-negative counts (uncompressed, or COCO's compressed string) that add
up to its pixels. An annotation that fails makes its image fail with the reason; it is never
rasterised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: How far outside the image (in image heights and widths) polygon coordinates may lie.
MARGIN = 1.0


def annotation_problem(ann: Mapping[str, Any], height: int, width: int) -> str | None:
    """None when ``ann``'s ``segmentation`` may be rasterised on a ``height x width`` image;
    else a one-line reason naming the annotation."""
    segm = ann.get("segmentation")
    if isinstance(segm, list):
        reason = _polygon_problem(segm, height, width)
    elif isinstance(segm, dict):
        reason = _rle_problem(segm, height, width)
    else:
        reason = "segmentation is neither polygons nor RLE"
    return None if reason is None else f"annotation {ann.get('id', '?')}: {reason}"


def _polygon_problem(polygons: list[Any], height: int, width: int) -> str | None:
    if not polygons:
        return "segmentation has no polygon"
    low_x, high_x = -MARGIN * width, (1 + MARGIN) * width
    low_y, high_y = -MARGIN * height, (1 + MARGIN) * height
    for polygon in polygons:
        if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
            size = len(polygon) if isinstance(polygon, list) else type(polygon).__name__
            return f"a polygon needs at least 3 points (x y pairs), got {size} numbers"
        for k, value in enumerate(polygon):
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"polygon coordinate {value!r} is not a number"
            if not math.isfinite(value):
                return f"polygon coordinate {value} is not finite"
            low, high = (low_x, high_x) if k % 2 == 0 else (low_y, high_y)
            if not low <= value <= high:
                return (
                    f"polygon coordinate {value:g} is far outside the image {height}x{width} "
                    "(height x width)"
                )
    return None


def _rle_problem(rle: Mapping[str, Any], height: int, width: int) -> str | None:
    size = rle.get("size")
    if not isinstance(size, list) or [type(v) for v in size] != [int, int]:
        return f"RLE size {size!r} is not [height, width]"
    if size != [height, width]:
        return f"RLE size {size[0]}x{size[1]} is not the image's {height}x{width}"
    counts = rle.get("counts")
    if isinstance(counts, str):
        decoded = _decode_counts(counts)
        if decoded is None:
            return "RLE counts are not a COCO compressed RLE string"
        counts = decoded
    elif not isinstance(counts, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) for c in counts
    ):
        return "RLE counts are neither a list of integers nor a compressed string"
    if any(c < 0 for c in counts):
        return "RLE counts has a negative run"
    if sum(counts) != height * width:
        return f"RLE counts add up to {sum(counts)} pixels, the image has {height * width}"
    return None


def _decode_counts(text: str) -> list[int] | None:
    """The runs of a COCO compressed RLE string (pycocotools' ``rleFrString``); None when it
    is not one."""
    counts: list[int] = []
    p = 0
    while p < len(text):
        x = k = 0
        more = True
        while more:
            if p >= len(text) or k == 8:  # ended inside a run, or a run over 40 bits
                return None
            c = ord(text[p]) - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts
