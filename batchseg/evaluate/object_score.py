"""One task's scoring of instance and panoptic stores (no Dask: the graph layer calls
:func:`score_objects` inside a task). Instance images go back as COCO RLE detections with
scores (the launcher runs COCOeval on all of them); panoptic images as per-class PQ counts and
per-image values. Never pixels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from batchseg import store
from batchseg.core.kinds import Kind
from batchseg.errors import BatchsegError, ImageError, one_line
from batchseg.evaluate.coco_truth import ObjectTruth
from batchseg.evaluate.panoptic_quality import image_row, pq_counts, rgb_ids
from batchseg.evaluate.score import EvalContext, Scores
from batchseg.evaluate.truth_read import read_panoptic_truth
from batchseg.measure.annotations import instance_annotations
from batchseg.store.instance_table import InstanceTable


def score_objects(ctx: EvalContext, items: Sequence[tuple[store.ImageInfo, ObjectTruth]]) -> Scores:
    """Score each ``(image, truth)`` of an instance or panoptic store; a failing image is
    recorded, the rest go on."""
    root = store.open_group(ctx.store, mode="r")
    out = Scores()
    if Kind(ctx.kind) is Kind.PANOPTIC:
        out.counts = np.zeros((len(ctx.class_names), 4), dtype=np.float64)
    table = (
        InstanceTable(ctx.store, root, store.read_meta(root, ctx.store))
        if Kind(ctx.kind) is Kind.INSTANCES
        else None
    )
    mask_api = _mask_api() if table is not None else None
    for info, truth in items:
        image_id = info.image_id
        try:
            if truth.error:
                raise ImageError(truth.error)
            labels = store.read_map(root, info)
            _check_size(truth, labels.shape)
            if table is not None:
                found = _detections(ctx, root, table, mask_api, info, labels)
            else:
                counts = _panoptic(ctx, truth, labels)
        except Exception as exc:  # noqa: BLE001 - recorded per image
            out.errors[image_id] = one_line(exc)
            continue
        out.image_ids.append(image_id)
        if table is not None:
            out.detections.append(found)
        else:
            assert out.counts is not None
            out.counts += counts
            out.values.append(image_row(counts))
    return out


def _mask_api() -> Any:
    try:
        from pycocotools import mask
    except ImportError:
        raise BatchsegError(
            "scoring instances needs pycocotools: pip install 'batchseg[coco]'"
        ) from None
    return mask


def _check_size(truth: ObjectTruth, shape: tuple[int, ...]) -> None:
    if (truth.height, truth.width) != tuple(shape[:2]):
        raise ValueError(
            f"truth is {truth.height}x{truth.width}, prediction {shape[0]}x{shape[1]} "
            "(height x width); never resized"
        )


def _detections(
    ctx: EvalContext,
    root: Any,
    table: InstanceTable,
    mask_api: Any,
    info: store.ImageInfo,
    ids: np.ndarray,
) -> list[dict[str, Any]]:
    """COCO annotations (RLE, area, bbox, store class as ``category_id``, score) of the
    instances in ``ids`` whose class the truth lists. Without an object table the score is
    the stored confidence of the instance's pixels (``round(255 x score) / 255``)."""
    kinds, scores = table.of(info, ids)
    if np.isnan(scores).any():
        confidence = store.read_map(root, info, confidence=True)
        best = np.zeros(len(scores) + 1)
        np.maximum.at(best, ids.ravel(), confidence.ravel() / 255.0)
        scores = np.where(np.isnan(scores), best[1:], scores)
    keep = set(ctx.scored)
    return [
        ann
        for ann in instance_annotations(mask_api, ids, kinds, scores)
        if ann["category_id"] in keep
    ]


def _panoptic(ctx: EvalContext, truth: ObjectTruth, labels: np.ndarray) -> np.ndarray:
    truth_ids = rgb_ids(read_panoptic_truth(truth.png, labels.shape, ctx.max_pixels))
    return pq_counts(truth_ids, truth.segments, labels, len(ctx.class_names), ctx.scored)
