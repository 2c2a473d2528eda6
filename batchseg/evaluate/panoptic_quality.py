"""Panoptic quality (Kirillov et al. 2019) of one panoptic map against its truth (pure numpy).

Follows ``pq_compute`` of the COCO panopticapi: a truth and a predicted segment of the same
class match when their IoU > 0.5, the IoU's union leaving out the predicted segment's pixels on
truth void (segment id 0); crowd truth segments never match. Unmatched truth segments (not
crowd) are false negatives; an unmatched predicted segment is a false positive unless more than
half of its area lies on truth void or on a crowd segment of its own class. Per class::

    PQ = sum(IoU of matches) / (TP + FP/2 + FN/2)
    SQ = sum(IoU of matches) / TP           (0 when TP = 0)
    RQ = TP / (TP + FP/2 + FN/2)            (PQ = SQ x RQ)

and a set of classes scores the mean over its classes with TP + FP + FN > 0. The per-class
counts ``[TP, FP, FN, IoU sum]`` add up over images, so dataset values come from their sums.
Truth PNG ids that ``segments_info`` does not list are ignored, as in the panopticapi.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from batchseg.measure.panoptic import OFFSET

#: Columns of a counts array: one row per class.
TP, FP, FN, IOU = 0, 1, 2, 3
#: Per-image values, in column order.
IMAGE_METRICS = ("pq", "sq", "rq", "tp", "fp", "fn")


def rgb_ids(rgb: np.ndarray) -> np.ndarray:
    """Segment ids of a COCO panoptic PNG: ``R + 256 G + 256^2 B`` (grey: the value)."""
    if rgb.ndim == 2:
        return rgb.astype(np.int64)
    c = rgb[..., :3].astype(np.int64)
    return c[..., 0] + 256 * c[..., 1] + 65536 * c[..., 2]


def pq_counts(
    truth_ids: np.ndarray,
    truth_segments: Sequence[tuple[int, int, bool]],
    pred_labels: np.ndarray,
    n_classes: int,
    scored: Sequence[int] | None = None,
) -> np.ndarray:
    """``(n_classes, 4)`` float64 counts ``[TP, FP, FN, IoU sum]`` of one image.

    ``truth_segments``: ``(id, class, iscrowd)`` of the truth's segments; ``pred_labels``: the
    store's panoptic labels (``class * 1000 + instance``, 0 void); ``scored``: the classes
    the truth lists (predicted segments of other classes are left out); default all.
    """
    if truth_ids.shape != pred_labels.shape:
        raise ValueError(
            f"truth is {truth_ids.shape[0]}x{truth_ids.shape[1]}, prediction "
            f"{pred_labels.shape[0]}x{pred_labels.shape[1]} (height x width); never resized"
        )
    counts = np.zeros((n_classes, 4), dtype=np.float64)
    gt = {int(i): (int(c), bool(crowd)) for i, c, crowd in truth_segments}
    keep = set(range(n_classes)) if scored is None else set(int(c) for c in scored)
    pairs, overlap = np.unique(
        truth_ids.astype(np.int64) * (1 << 32) + pred_labels.astype(np.int64), return_counts=True
    )
    t_of, p_of = pairs >> 32, pairs & ((1 << 32) - 1)
    labels = np.unique(p_of)
    if labels.size and int(labels[-1]) // OFFSET >= n_classes:
        raise ValueError(f"predicted label {int(labels[-1])} outside the {n_classes} classes")
    pred_area = np.bincount(np.searchsorted(labels, p_of), overlap)
    pred = {
        int(p): (int(p) // OFFSET, int(a))
        for p, a in zip(labels, pred_area, strict=True)
        if p and int(p) // OFFSET in keep
    }
    ids, at = np.unique(t_of, return_inverse=True)
    areas = np.bincount(at, overlap).astype(np.int64)
    area_of = dict(zip(ids.tolist(), areas.tolist(), strict=True))
    gt_area = {i: area_of.get(i, 0) for i in gt}
    inter = {(int(t), int(p)): int(n) for t, p, n in zip(t_of, p_of, overlap, strict=True)}
    gt_hit, pred_hit = _match(gt, gt_area, pred, inter, counts)
    crowd = {c: i for i, (c, is_crowd) in gt.items() if is_crowd and i not in gt_hit}
    for i, (c, is_crowd) in gt.items():
        if i not in gt_hit and not is_crowd:
            counts[c, FN] += 1
    for p, (c, area) in pred.items():
        if p in pred_hit:
            continue
        ignored = inter.get((0, p), 0) + (inter.get((crowd[c], p), 0) if c in crowd else 0)
        if ignored / area <= 0.5:
            counts[c, FP] += 1
    return counts


def _match(
    gt: dict[int, tuple[int, bool]],
    gt_area: dict[int, int],
    pred: dict[int, tuple[int, int]],
    inter: dict[tuple[int, int], int],
    counts: np.ndarray,
) -> tuple[set[int], set[int]]:
    """Count the matches (same class, IoU > 0.5; unique by the > 0.5 rule) into ``counts``."""
    gt_hit: set[int] = set()
    pred_hit: set[int] = set()
    for (t, p), n in inter.items():
        if t not in gt or p not in pred or gt[t][1] or gt[t][0] != pred[p][0]:
            continue
        union = pred[p][1] + gt_area[t] - n - inter.get((0, p), 0)
        iou = n / union
        if iou > 0.5:
            counts[gt[t][0], TP] += 1
            counts[gt[t][0], IOU] += iou
            gt_hit.add(t)
            pred_hit.add(p)
    return gt_hit, pred_hit


def pq_scores(
    counts: np.ndarray, classes: Sequence[int] | None = None
) -> dict[str, float | int | None]:
    """``pq``, ``sq``, ``rq`` (means over ``classes``, default all, with TP + FP + FN > 0) and
    ``n`` (how many classes that is); None when no class counts."""
    c = np.asarray(counts, dtype=np.float64)
    rows = c if classes is None else c[list(classes)]
    seen = rows[:, TP] + rows[:, FP] + rows[:, FN] > 0
    if not seen.any():
        return {"pq": None, "sq": None, "rq": None, "n": 0}
    pq, sq, rq = class_pq(rows[seen])
    return {"pq": float(pq.mean()), "sq": float(sq.mean()), "rq": float(rq.mean()),
            "n": int(seen.sum())}  # fmt: skip


def class_pq(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row PQ, SQ, RQ of counts rows (rows without TP + FP + FN give 0, as panopticapi)."""
    tp, fp, fn, iou = (counts[:, k] for k in (TP, FP, FN, IOU))
    denom = tp + 0.5 * fp + 0.5 * fn
    with np.errstate(divide="ignore", invalid="ignore"):
        pq = np.where(denom > 0, iou / denom, 0.0)
        sq = np.where(tp > 0, iou / tp, 0.0)
        rq = np.where(denom > 0, tp / denom, 0.0)
    return pq, sq, rq


def image_row(counts: np.ndarray) -> np.ndarray:
    """Per-image values ``[pq, sq, rq, tp, fp, fn]`` (NaN scores when nothing counts)."""
    s = pq_scores(counts)
    scores = [np.nan if s[k] is None else s[k] for k in ("pq", "sq", "rq")]
    return np.array([*scores, *counts[:, [TP, FP, FN]].sum(axis=0)], dtype=np.float64)
