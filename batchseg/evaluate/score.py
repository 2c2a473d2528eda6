"""Score one task's images against their truth (no Dask: the graph layer calls
:func:`score_images` inside a task). A task returns per-image values and, for class maps, the
summed confusion matrix: never pixels."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchseg import store
from batchseg.core.kinds import Kind
from batchseg.errors import UsageError, one_line
from batchseg.evaluate import coco_eval, panoptic_quality
from batchseg.evaluate.metrics import boundary_scores, class_scores, confusion, region_scores
from batchseg.evaluate.truth import IGNORE, ValueMap
from batchseg.evaluate.truth_read import read_truth
from batchseg.io.read import DEFAULT_MAX_PIXELS
from batchseg.measure.stats import class_keys

log = logging.getLogger(__name__)

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
    #: truth files: pixel limit of a decode (also bounded by the label map's size)
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    #: class maps: void classes (their truth pixels are left out, they are not averaged)
    void: tuple[int, ...] = ()
    #: region stores: score against the 4-connected components of this truth value
    truth_components: int | None = None
    #: ``--truth-store``: the store whose label maps are the truth (items carry ImageInfo)
    truth_store: str | None = None

    @property
    def metrics(self) -> list[str]:
        """Per-image metric names, in column order (without the evaluation's prefix)."""
        if Kind(self.kind).class_map:
            names = [*CLASS_METRICS, *(f"iou_{k}" for k in class_keys(self.class_names))]
            return names + (list(REGION_METRICS) if self.components is not None else [])
        if Kind(self.kind) is Kind.INSTANCES:
            return list(coco_eval.IMAGE_METRICS)
        if Kind(self.kind) is Kind.PANOPTIC:
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
    #: region stores: images whose truth has at most two values while the prediction has
    #: hundreds of regions (foreground truth scored as regions: see ``--truth-components``)
    two_value_truth: int = 0


def check_kind_options(
    kind: str, truth_classes: str | None, void: Sequence[str] | None, truth_components: int | None
) -> None:
    """UsageError for an option that the store's kind (class maps or regions) does not use."""
    if Kind(kind) is Kind.REGIONS and truth_classes is not None:
        raise UsageError(
            "--truth-classes is for class maps; region stores are scored as regions (against "
            "the connected components of one truth value with --truth-components VALUE)"
        )
    if Kind(kind) is Kind.REGIONS and void is not None:
        raise UsageError("--void is for class maps; region stores have no classes")
    if Kind(kind).class_map and truth_components is not None:
        raise UsageError("--truth-components is for region stores; class maps: --components CLASS")


def warn_two_value_truth(scores: Sequence[Scores]) -> None:
    """One warning line when region predictions with hundreds of regions met truth of two
    values (their Rand and VI scores then mean little)."""
    n = sum(s.two_value_truth for s in scores)
    if n:
        log.warning(
            "%d image(s): the truth has two values but the prediction %d or more regions; "
            "scoring foreground truth as one region means little: --truth-components VALUE "
            "scores against the truth's connected components of that value",
            n,
            MANY_REGIONS,
        )


def score_images(
    ctx: EvalContext, items: Sequence[tuple[store.ImageInfo, Sequence[Any]]]
) -> Scores:
    """Score each ``(image, truth paths)`` (``--truth-store``: the truth store's images): a
    failing image is recorded, the rest go on."""
    root = store.open_group(ctx.store, mode="r")
    truth_root = store.open_group(ctx.truth_store, mode="r") if ctx.truth_store else None
    out = Scores()
    n = len(ctx.class_names)
    if Kind(ctx.kind).class_map:
        out.confusion = np.zeros((n, n), dtype=np.int64)
    for info, paths in items:
        image_id = info.image_id
        try:
            labels = store.read_map(root, info)
            truths = [
                read_truth(p, labels.shape, ctx.max_pixels) if truth_root is None
                else store.read_map(truth_root, p)
                for p in paths
            ]  # fmt: skip
            if Kind(ctx.kind) is Kind.REGIONS and ctx.truth_components is None:
                out.two_value_truth += looks_binary(truths, labels)
            row, matrix = _score_one(ctx, labels, truths)
        except Exception as exc:  # noqa: BLE001 - recorded per image
            out.errors[image_id] = one_line(exc)
            continue
        out.image_ids.append(image_id)
        out.values.append(row)
        if matrix is not None and out.confusion is not None:
            out.confusion += matrix
    return out


#: Regions in a prediction that, against a truth of at most two values, draw a warning.
MANY_REGIONS = 100


def looks_binary(truths: Sequence[np.ndarray], labels: np.ndarray) -> bool:
    """Whether a region prediction with hundreds of regions meets a truth of at most two
    values (foreground/background, e.g. ISBI's 0/255): its Rand and VI scores mean little."""
    if not labels.size or int(labels.max()) < MANY_REGIONS:
        return False
    if np.unique(labels).size < MANY_REGIONS:
        return False
    return any(t.ndim == 2 and np.unique(t).size <= 2 for t in truths)


def truth_regions(truth: np.ndarray, value: int) -> np.ndarray:
    """The 4-connected components of the truth pixels equal to ``value`` (others region 0)."""
    from skimage.measure import label

    return np.asarray(label(truth == value, connectivity=1))


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
        if Kind(ctx.kind).class_map:
            mapped = (ctx.value_map or ValueMap()).apply(truth, ctx.ignore)
            left_out = (mapped == IGNORE) | np.isin(mapped, ctx.void)
            matrix = confusion(np.where(left_out, 0, mapped), labels, len(ctx.class_names),
                               ignore=left_out)  # fmt: skip
            scores = class_scores(matrix, ctx.class_names, ctx.void)
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
            if ctx.truth_components is not None:
                truth = truth_regions(truth, ctx.truth_components)
            regions = region_scores(truth, labels)
            edges = boundary_scores(truth, labels, ctx.tolerance)
            rows.append(np.array([{**regions, **edges}[m] for m in REGION_METRICS], float))
    if len(rows) == 1:
        return rows[0], total
    with warnings.catch_warnings():  # a metric undefined for every annotator stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.vstack(rows), axis=0), total
