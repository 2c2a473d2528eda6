"""Instance output of libraries that return masks (Cellpose, Segment Anything), numpy only.

:func:`paint_by_score` resolves overlapping boolean masks like the Mask R-CNN methods: the
higher score wins, masks left without a pixel are dropped and ids stay contiguous.
:func:`segmentation` turns an instance-id map and per-instance scores into batchseg's
instance output (one class, ``object`` or ``cell``; boxes and areas from the map).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

from batchseg.methods.base import Segmentation, smallest_uint


def paint_by_score(
    masks: Sequence[np.ndarray], scores: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, kept): boolean masks painted so that, where they overlap, the higher score wins.

    Ties keep the library's order (a stable sort). ``ids`` (int64) numbers the masks that
    kept a pixel ``1..k`` by descending score; ``kept`` holds their indices into ``masks``.
    """
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    ids = np.zeros(shape, dtype=np.int64)
    for rank in range(len(order) - 1, -1, -1):  # lowest score first: higher scores overwrite
        ids[np.asarray(masks[order[rank]], dtype=bool)] = rank + 1
    counts = np.bincount(ids.ravel(), minlength=len(order) + 1)[1:]
    visible = counts > 0
    lut = np.zeros(len(order) + 1, dtype=np.int64)
    lut[1:][visible] = np.arange(1, int(visible.sum()) + 1)
    return lut[ids], order[visible]


def segmentation(
    ids: np.ndarray,
    scores: np.ndarray,
    dtype: np.dtype | None = None,
    extra: Mapping[str, np.ndarray] | None = None,
) -> Segmentation:
    """batchseg's instance output of an id map ``1..n`` (0: none) and each id's score.

    Class index 1 for every instance; confidence ``round(255 * score)`` of the pixel's
    instance; boxes are the id's pixel extent (max exclusive); ``mask_area`` its pixels.
    """
    ids = np.asarray(ids)
    n = len(scores)
    scores = np.asarray(scores, dtype=np.float64)
    boxes = np.zeros((n, 4), dtype=np.float64)
    for k, sl in enumerate(ndimage.find_objects(ids.astype(np.int64, copy=False), max_label=n)):
        if sl is not None:
            boxes[k] = (sl[0].start, sl[1].start, sl[0].stop, sl[1].stop)
    area = np.bincount(ids.ravel().astype(np.int64), minlength=n + 1)[1 : n + 1]
    conf_lut = np.concatenate([[0], np.clip(np.round(scores * 255.0), 0, 255)]).astype(np.uint8)
    instances = {
        "class_index": np.ones(n, dtype=np.int64),
        "score": scores,
        "box_min_row": boxes[:, 0].copy(),
        "box_min_col": boxes[:, 1].copy(),
        "box_max_row": boxes[:, 2].copy(),
        "box_max_col": boxes[:, 3].copy(),
        "mask_area": area.astype(np.int64),
        **{k: np.asarray(v, dtype=np.float64) for k, v in (extra or {}).items()},
    }
    out_dtype = dtype if dtype is not None else smallest_uint(max(n, 1))
    return Segmentation(
        labels=ids.astype(out_dtype),
        confidence=conf_lut[ids],
        classes=(ids > 0).astype(np.uint8),
        instances=instances,
    )


def renumbered(labels: np.ndarray) -> np.ndarray:
    """``labels`` with its ids made contiguous ``1..n`` in their order (0 stays 0)."""
    present = np.unique(labels)
    present = present[present > 0]
    if present.size == 0 or int(present[-1]) == present.size:
        return labels.astype(np.int64, copy=False)
    lut = np.zeros(int(present[-1]) + 1, dtype=np.int64)
    lut[present] = np.arange(1, present.size + 1)
    return lut[labels]
