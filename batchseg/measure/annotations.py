"""COCO annotations of an instance map (numpy only; the RLE codec is passed in)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


def instance_annotations(
    mask_api: Any, ids: np.ndarray, kinds: np.ndarray, scores: np.ndarray
) -> Iterator[dict[str, Any]]:
    """One COCO annotation (no ``id``/``image_id`` yet) per instance id present in ``ids``."""
    present = np.flatnonzero(np.bincount(ids.ravel(), minlength=1)[1:]) + 1
    for k in present:
        rle = mask_api.encode(np.asfortranarray(ids == k, dtype=np.uint8))
        counts = rle["counts"]
        rle["counts"] = counts.decode("ascii") if isinstance(counts, bytes) else counts
        ann = {
            "category_id": int(kinds[k - 1]),
            "segmentation": rle,
            "area": float(mask_api.area(rle)),
            "bbox": [float(v) for v in mask_api.toBbox(rle)],
            "iscrowd": 0,
        }
        if np.isfinite(scores[k - 1]):
            ann["score"] = float(scores[k - 1])
        yield ann
