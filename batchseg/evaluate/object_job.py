"""The launcher's side of scoring instance and panoptic stores against COCO truth: the tasks'
truth items, and the dataset result from what the tasks sent back (COCOeval on the collected
detections; PQ from the summed per-class counts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from batchseg.core.kinds import Kind
from batchseg.evaluate.coco_eval import coco_ap
from batchseg.evaluate.coco_truth import (
    CocoTruth,
    ObjectTruth,
    instance_items,
    panoptic_items,
    png_folder,
)
from batchseg.evaluate.panoptic_quality import FN, FP, TP, class_pq, pq_scores
from batchseg.evaluate.score import EvalContext, Scores


def truth_items(kind: str, truth: CocoTruth) -> dict[str, ObjectTruth]:
    """What each scoring task gets per image id."""
    return instance_items(truth) if Kind(kind) is Kind.INSTANCES else panoptic_items(truth)


def object_result(
    ctx: EvalContext,
    truth: CocoTruth,
    scores: Sequence[Scores],
    is_thing: Sequence[bool] | None,
) -> dict[str, Any]:
    """The dataset values of an instance or panoptic evaluation. Instances: also fills each
    ``Scores.values`` with its images' rows (from the launcher's COCOeval)."""
    out: dict[str, Any] = {
        "classes_not_in_truth": truth.not_in_truth(ctx.class_names),
    }
    if Kind(ctx.kind) is Kind.INSTANCES:
        detections = {i: d for s in scores for i, d in zip(s.image_ids, s.detections, strict=True)}
        if not detections:
            return out
        result, rows = coco_ap(truth, detections, ctx.class_names)
        for s in scores:
            s.values = [rows[i] for i in s.image_ids]
        return {**result, **out}
    out["truth_png_folder"] = png_folder(truth.path)
    total = np.zeros((len(ctx.class_names), 4), dtype=np.float64)
    for s in scores:
        if s.counts is not None:
            total += s.counts
    return {**panoptic_values(total, ctx, _things(truth, is_thing, len(ctx.class_names))), **out}


def panoptic_values(
    total: np.ndarray, ctx: EvalContext, is_thing: Sequence[bool] | None
) -> dict[str, Any]:
    """``pq``, ``sq``, ``rq`` over the scored classes, the same over things and stuff (when
    known), and ``per_class`` ``{pq, sq, rq, tp, fp, fn}``."""
    scored = list(ctx.scored)
    out: dict[str, Any] = {}
    groups: list[tuple[str, list[int]]] = [("", scored)]
    if is_thing is not None:
        groups += [
            ("_things", [c for c in scored if is_thing[c]]),
            ("_stuff", [c for c in scored if not is_thing[c]]),
        ]
    for suffix, classes in groups:
        values = pq_scores(total, classes) if classes else {"pq": None, "sq": None, "rq": None,
                                                            "n": 0}  # fmt: skip
        for key, value in values.items():
            out[f"{'n_classes' if key == 'n' else key}{suffix}"] = value
    pq, sq, rq = class_pq(total)
    per_class = {}
    for c in scored:
        seen = total[c, TP] + total[c, FP] + total[c, FN] > 0
        per_class[str(ctx.class_names[c])] = {
            "pq": float(pq[c]) if seen else None,
            "sq": float(sq[c]) if seen else None,
            "rq": float(rq[c]) if seen else None,
            "tp": int(total[c, TP]),
            "fp": int(total[c, FP]),
            "fn": int(total[c, FN]),
        }
    out["per_class"] = per_class
    return out


def _things(truth: CocoTruth, store_is_thing: Sequence[bool] | None, n: int) -> list[bool] | None:
    """Which store classes are things: the truth's ``isthing`` when every category has it
    (as the panopticapi does), else the store's ``is_thing``; None when neither says."""
    cats = truth.doc.get("categories") or []
    if cats and all("isthing" in c for c in cats):
        out = [False] * n
        for c in cats:
            out[truth.classes[int(c["id"])]] = bool(c["isthing"])
        return out
    if store_is_thing is not None and len(store_is_thing) == n:
        return [bool(t) for t in store_is_thing]
    return None
