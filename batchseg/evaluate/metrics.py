"""Scores of a label map against ground truth (pure numpy; scikit-image for region metrics).

Class maps are scored through a confusion matrix (``truth x prediction``, int64): per image and,
summed over images, for the dataset. Every class metric is a function of that matrix, so
dataset values come from the summed matrix, never from means of per-image ratios:

* ``pixel_accuracy`` = trace / total;
* ``mean_class_accuracy`` = mean over classes present in truth of ``C[i, i] / sum_j C[i, j]``;
* ``iou[c]`` = ``C[c, c] / (sum_j C[c, j] + sum_i C[i, c] - C[c, c])``, for classes present in
  truth or prediction; absent from both: excluded (NaN), never counted as 0;
* ``miou`` = mean of the defined ``iou``; ``fw_iou`` = sum over classes of (truth frequency x iou);
* ``dice[c]`` = ``2 C[c, c] / (sum_j C[c, j] + sum_i C[i, c])``; ``mean_dice`` its mean;
* void classes (``--void``): no IoU, Dice or accuracy of their own, left out of every mean.

Region labels (superpixels, watersheds, objects) against region truth use
``skimage.metrics.adapted_rand_error`` (``adapted_rand_error``, ``rand_precision``,
``rand_recall``) and ``skimage.metrics.variation_of_information`` (``vi_split`` =
H(prediction | truth), over-segmentation; ``vi_merge`` = H(truth | prediction),
under-segmentation; their sum ``variation_of_information``), with skimage's defaults, and boundary precision/recall/F at a pixel tolerance: a predicted boundary
pixel is correct when a truth boundary pixel lies within the tolerance (Euclidean distance
transform), and vice versa for recall. Unlike the BSDS benchmark's one-to-one bipartite
matching, several predicted pixels may match the same truth pixel, so doubled boundaries score
slightly higher here. Dataset region and boundary values are means over images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Fraction of the image diagonal used as the default boundary tolerance (the BSDS setting).
BSDS_TOLERANCE = 0.0075


def confusion(
    truth: np.ndarray, pred: np.ndarray, n_classes: int, ignore: np.ndarray | None = None
) -> np.ndarray:
    """``n x n`` int64 matrix: rows truth classes, columns predicted classes.

    Pixels where ``ignore`` is True are left out; truth and prediction must be in
    ``[0, n_classes)`` (ValueError naming the value otherwise)."""
    if truth.shape != pred.shape:
        raise ValueError(
            f"truth is {truth.shape[0]}x{truth.shape[1]}, prediction "
            f"{pred.shape[0]}x{pred.shape[1]} (height x width); never resized"
        )
    t = truth.ravel().astype(np.int64)
    p = pred.ravel().astype(np.int64)
    if ignore is not None:
        keep = ~ignore.ravel()
        t, p = t[keep], p[keep]
    for name, values in (("truth", t), ("prediction", p)):
        if values.size and (values.min() < 0 or values.max() >= n_classes):
            bad = values.max() if values.max() >= n_classes else values.min()
            raise ValueError(f"{name} class {int(bad)} outside the {n_classes} classes")
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


def class_scores(
    matrix: np.ndarray, class_names: Sequence[str], void: Sequence[int] = ()
) -> dict[str, object]:
    """Every class-map metric of a confusion matrix (see the module docstring). ``void``
    classes (whose truth pixels the caller left out) get no IoU, Dice or accuracy and are
    not averaged; predicting them on other classes' pixels still counts as an error."""
    m = np.asarray(matrix, dtype=np.float64)
    total = m.sum()
    tp = np.diag(m)
    truth = m.sum(axis=1)
    pred = m.sum(axis=0)
    union = truth + pred - tp
    present = union > 0
    present[list(void)] = False
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(present, tp / union, np.nan)
        dice = np.where(present, 2 * tp / (truth + pred), np.nan)
        recall = np.where((truth > 0) & present, tp / truth, np.nan)
    freq = truth / total if total else np.zeros_like(truth)
    names = list(class_names)
    return {
        "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
        "mean_class_accuracy": _nanmean(recall),
        "iou": {n: _f(v) for n, v in zip(names, iou, strict=True)},
        "miou": _nanmean(iou),
        "fw_iou": float(np.nansum(freq * iou)) if total else float("nan"),
        "dice": {n: _f(v) for n, v in zip(names, dice, strict=True)},
        "mean_dice": _nanmean(dice),
    }


def region_scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Adapted Rand error (with precision and recall) and variation of information."""
    from skimage.metrics import adapted_rand_error, variation_of_information

    if truth.shape != pred.shape:
        raise ValueError(
            f"truth is {truth.shape[0]}x{truth.shape[1]}, prediction "
            f"{pred.shape[0]}x{pred.shape[1]} (height x width); never resized"
        )
    t = np.ascontiguousarray(truth, dtype=np.int64)
    p = np.ascontiguousarray(pred, dtype=np.int64)
    # skimage (0.24-0.26) divides by the pairs of its *first* argument for what it returns as
    # precision, although its docstring (and SNEMI3D) define precision over the test image's
    # pairs: swapped here, so that rand_precision is "pairs joined in both / pairs joined in
    # the prediction" (over-segmentation: precision near 1). The error itself is symmetric.
    error, over_truth, over_pred = adapted_rand_error(t, p)
    precision, recall = over_pred, over_truth
    split, merge = variation_of_information(t, p)
    return {
        "adapted_rand_error": float(error),
        "rand_precision": float(precision),
        "rand_recall": float(recall),
        "vi_split": float(split),
        "vi_merge": float(merge),
        "variation_of_information": float(split + merge),
    }


def boundaries(labels: np.ndarray) -> np.ndarray:
    """Boundary pixels of a label map (``find_boundaries`` mode ``inner``)."""
    from skimage.segmentation import find_boundaries

    return find_boundaries(labels, mode="inner")


def default_tolerance(shape: tuple[int, int]) -> float:
    """The BSDS tolerance in pixels: 0.0075 x the image diagonal."""
    return BSDS_TOLERANCE * float(np.hypot(*shape))


def boundary_scores(
    truth: np.ndarray, pred: np.ndarray, tolerance: float | None = None
) -> dict[str, float]:
    """Boundary precision, recall and F at ``tolerance`` pixels (default: BSDS's)."""
    from scipy import ndimage

    if truth.shape != pred.shape:
        raise ValueError(
            f"truth is {truth.shape[0]}x{truth.shape[1]}, prediction "
            f"{pred.shape[0]}x{pred.shape[1]} (height x width); never resized"
        )
    tol = default_tolerance(truth.shape[:2]) if tolerance is None else float(tolerance)
    bt, bp = boundaries(truth), boundaries(pred)
    if not bt.any() or not bp.any():
        both = not bt.any() and not bp.any()
        p = 1.0 if not bp.any() else 0.0
        r = 1.0 if not bt.any() else 0.0
        return {"boundary_precision": p, "boundary_recall": r, "boundary_f": 1.0 if both else 0.0}
    near_truth = ndimage.distance_transform_edt(~bt) <= tol
    near_pred = ndimage.distance_transform_edt(~bp) <= tol
    precision = float(near_truth[bp].mean())
    recall = float(near_pred[bt].mean())
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"boundary_precision": precision, "boundary_recall": recall, "boundary_f": f}


def _f(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _nanmean(values: np.ndarray) -> float:
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")
