"""Score one task's images against their truth (no Dask: the graph layer calls
:func:`score_images` inside a task). A task returns per-image values and, for class maps, the
summed confusion matrix: never pixels."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchseg import store
from batchseg.errors import one_line
from batchseg.evaluate import coco_eval, panoptic_quality
from batchseg.evaluate.metrics import boundary_scores, class_scores, confusion, region_scores
from batchseg.evaluate.truth import IGNORE, ValueMap
from batchseg.measure.stats import class_keys

CLASS_METRICS = ("pixel_accuracy", "mean_class_accuracy", "miou", "fw_iou", "mean_dice")
REGION_METRICS = (
    "adapted_rand_error",
    "rand_precision",
    "rand_recall",
    "vi_split",
    "vi_merge",
    "variation_of_information",
    "boundary_precision",
    "boundary_recall",
    "boundary_f",
)


@dataclass(frozen=True)
class EvalContext:
    """What every scoring task shares."""

    store: str
    kind: str  # "classes" (confusion matrix), "regions", "instances" (COCO AP) or "panoptic"
    class_names: tuple[str, ...] = ()
    value_map: ValueMap | None = None
    ignore: tuple[int, ...] = ()
    tolerance: float | None = None
    #: class maps: also score the connected components of this class as regions (e.g. the
    #: cells of an EM slice: Rand error and VI of the segmentation they imply)
    components: int | None = None
    #: instances and panoptic: the store classes the truth lists (predictions of the others
    #: are left out)
    scored: tuple[int, ...] = ()

    @property
    def metrics(self) -> list[str]:
        """Per-image metric names, in column order (without the evaluation's prefix)."""
        if self.kind == "classes":
            names = [*CLASS_METRICS, *(f"iou_{k}" for k in class_keys(self.class_names))]
            return names + (list(REGION_METRICS) if self.components is not None else [])
        if self.kind == "instances":
            return list(coco_eval.IMAGE_METRICS)
        if self.kind == "panoptic":
            return list(panoptic_quality.IMAGE_METRICS)
        return list(REGION_METRICS)


@dataclass
class Scores:
    """A task's results: per-image values (rows of :attr:`EvalContext.metrics`), the summed
    confusion matrix (class maps), and the images that could not be scored, with why.

    Instances: ``values`` are filled in by the launcher's COCOeval from ``detections`` (per
    image, COCO RLE annotations with scores). Panoptic: ``counts`` holds the summed per-class
    ``[TP, FP, FN, IoU sum]``."""

    image_ids: list[str] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)
    confusion: np.ndarray | None = None
    errors: dict[str, str] = field(default_factory=dict)
    detections: list[list[dict[str, Any]]] = field(default_factory=list)
    counts: np.ndarray | None = None


def read_truth(path: str) -> np.ndarray:
    """A truth image as stored: palette indices stay indices, RGBA loses alpha."""
    from PIL import Image

    with Image.open(path) as im:
        array = np.asarray(im)
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]
    return array


def score_images(
    ctx: EvalContext, items: Sequence[tuple[store.ImageInfo, Sequence[str]]]
) -> Scores:
    """Score each ``(image, truth paths)``: a failing image is recorded, the rest go on."""
    root = store.open_group(ctx.store, mode="r")
    out = Scores()
    n = len(ctx.class_names)
    if ctx.kind == "classes":
        out.confusion = np.zeros((n, n), dtype=np.int64)
    for info, paths in items:
        image_id = info.image_id
        try:
            labels = store.read_map(root, info)
            row, matrix = _score_one(ctx, labels, [read_truth(p) for p in paths])
        except Exception as exc:  # noqa: BLE001 - recorded per image
            out.errors[image_id] = one_line(exc)
            continue
        out.image_ids.append(image_id)
        out.values.append(row)
        if matrix is not None and out.confusion is not None:
            out.confusion += matrix
    return out


def _component_scores(ctx: EvalContext, truth: np.ndarray, labels: np.ndarray) -> list[float]:
    """Region and boundary scores of the connected components of class ``ctx.components``
    (4-connected) in truth and prediction; pixels of other classes are region 0."""
    from skimage.measure import label

    t = label(truth == ctx.components, connectivity=1)
    p = label(labels == ctx.components, connectivity=1)
    both = {**region_scores(t, p), **boundary_scores(t, p, ctx.tolerance)}
    return [both[m] for m in REGION_METRICS]


def _score_one(
    ctx: EvalContext, labels: np.ndarray, truths: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-image values (mean over annotators) and the summed confusion matrix."""
    rows: list[np.ndarray] = []
    total: np.ndarray | None = None
    for truth in truths:
        if truth.shape[:2] != labels.shape:
            raise ValueError(
                f"truth is {truth.shape[0]}x{truth.shape[1]}, prediction "
                f"{labels.shape[0]}x{labels.shape[1]} (height x width); never resized"
            )
        if ctx.kind == "classes":
            mapped = (ctx.value_map or ValueMap()).apply(truth, ctx.ignore)
            left_out = mapped == IGNORE
            matrix = confusion(np.where(left_out, 0, mapped), labels, len(ctx.class_names),
                               ignore=left_out)  # fmt: skip
            scores = class_scores(matrix, ctx.class_names)
            iou = scores["iou"]
            assert isinstance(iou, dict)
            values = [scores[m] for m in CLASS_METRICS] + list(iou.values())
            if ctx.components is not None:
                values += _component_scores(ctx, mapped, labels)
            rows.append(np.array([np.nan if v is None else v for v in values], dtype=float))
            total = matrix if total is None else total + matrix
        else:
            if truth.ndim != 2:
                raise ValueError("region truth must be a single-channel label image")
            regions = region_scores(truth, labels)
            edges = boundary_scores(truth, labels, ctx.tolerance)
            rows.append(np.array([{**regions, **edges}[m] for m in REGION_METRICS], float))
    if len(rows) == 1:
        return rows[0], total
    with warnings.catch_warnings():  # a metric undefined for every annotator stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.vstack(rows), axis=0), total
