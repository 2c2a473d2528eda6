"""Metrics against hand-computed tiny cases and direct scikit-image calls."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import adapted_rand_error, variation_of_information

from batchseg.evaluate.metrics import (
    boundary_scores,
    class_scores,
    confusion,
    default_tolerance,
    region_scores,
)

TRUTH = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2]])
PRED = np.array([[0, 1, 1, 1], [0, 0, 1, 1], [2, 2, 0, 2]])


def test_confusion_counts_truth_rows_prediction_columns() -> None:
    m = confusion(TRUTH, PRED, 4)
    assert m.dtype == np.int64 and m.shape == (4, 4)
    assert m[:3, :3].tolist() == [[3, 1, 0], [0, 4, 0], [1, 0, 3]]
    assert m[3].sum() == m[:, 3].sum() == 0
    ignored = confusion(TRUTH, PRED, 4, ignore=TRUTH == 2)
    assert ignored.sum() == 8 and ignored[2].sum() == 0
    with pytest.raises(ValueError, match="truth class 7 outside the 4 classes"):
        confusion(np.full((2, 2), 7), np.zeros((2, 2), int), 4)
    with pytest.raises(ValueError, match="never resized"):
        confusion(TRUTH, PRED[:2], 4)


def test_class_scores_by_hand() -> None:
    s = class_scores(confusion(TRUTH, PRED, 4), ["a", "b", "c", "d"])
    assert s["pixel_accuracy"] == pytest.approx(10 / 12)
    # recall per truth class: a 3/4, b 4/4, c 3/4; d absent from truth
    assert s["mean_class_accuracy"] == pytest.approx((0.75 + 1 + 0.75) / 3)
    # iou: a 3/(4+4-3)=3/5, b 4/(4+5-4)=4/5, c 3/(4+3-3)=3/4; d absent: None, not 0
    assert s["iou"] == pytest.approx({"a": 0.6, "b": 0.8, "c": 0.75, "d": None})
    assert s["miou"] == pytest.approx((0.6 + 0.8 + 0.75) / 3)
    assert s["fw_iou"] == pytest.approx(4 / 12 * 0.6 + 4 / 12 * 0.8 + 4 / 12 * 0.75)
    # dice: a 6/8, b 8/9, c 6/7
    assert s["dice"] == pytest.approx({"a": 0.75, "b": 8 / 9, "c": 6 / 7, "d": None})
    assert s["mean_dice"] == pytest.approx((0.75 + 8 / 9 + 6 / 7) / 3)
    perfect = class_scores(confusion(TRUTH, TRUTH, 3), ["a", "b", "c"])
    assert perfect["miou"] == perfect["pixel_accuracy"] == perfect["mean_dice"] == 1.0


def test_dataset_scores_come_from_the_summed_matrix() -> None:
    rng = np.random.default_rng(0)
    pairs = [(rng.integers(0, 3, (5, 7)), rng.integers(0, 3, (5, 7))) for _ in range(4)]
    total = sum(confusion(t, p, 3) for t, p in pairs)
    whole = confusion(
        np.concatenate([t for t, _ in pairs]), np.concatenate([p for _, p in pairs]), 3
    )
    assert (total == whole).all()
    assert class_scores(total, "abc")["miou"] == class_scores(whole, "abc")["miou"]


def test_region_scores_are_skimage_with_its_defaults() -> None:
    rng = np.random.default_rng(1)
    truth = np.repeat(np.repeat(rng.integers(1, 6, (6, 8)), 4, axis=0), 4, axis=1)
    pred = np.repeat(np.repeat(rng.integers(1, 9, (12, 16)), 2, axis=0), 2, axis=1)
    s = region_scores(truth, pred)
    error, precision, recall = adapted_rand_error(truth, pred)
    split, merge = variation_of_information(truth, pred)
    assert (s["adapted_rand_error"], s["rand_recall"], s["rand_precision"]) == (
        error,
        precision,
        recall,
    )  # fmt: skip (skimage's precision is over the truth's pairs: our recall)
    assert (s["vi_split"], s["vi_merge"]) == (split, merge)
    assert s["variation_of_information"] == split + merge
    same = region_scores(truth, truth * 3)  # a renaming is a perfect segmentation
    assert (
        same["adapted_rand_error"] == pytest.approx(0) and same["variation_of_information"] < 1e-9
    )
    halves = np.repeat([[1], [2]], 8, axis=0).reshape(4, 4)  # two regions of 8 pixels
    over = region_scores(halves, np.arange(16).reshape(4, 4) + 1)  # every pixel its own
    # skimage's entropies are in bits: splitting 8 pixels each into 8 regions is 3 bits
    assert over["vi_merge"] == pytest.approx(0) and over["vi_split"] == pytest.approx(3.0)
    coarse = region_scores(np.arange(16).reshape(4, 4) // 2, halves)  # pairs of pixels in truth
    assert coarse["rand_recall"] == 1.0 and coarse["rand_precision"] < 1  # under-segmented


def test_boundary_scores_with_tolerance() -> None:
    truth = np.zeros((20, 20), int)
    truth[:, 10:] = 1
    shifted = np.zeros((20, 20), int)
    shifted[:, 12:] = 1  # the same edge, 2 pixels off
    assert boundary_scores(truth, truth)["boundary_f"] == 1.0
    exact = boundary_scores(truth, shifted, tolerance=0)
    assert exact["boundary_f"] == 0.0
    near = boundary_scores(truth, shifted, tolerance=2)
    assert near == {"boundary_precision": 1.0, "boundary_recall": 1.0, "boundary_f": 1.0}
    extra = shifted.copy()
    extra[:5, :5] = 2  # a spurious region: its boundary pixels are wrong
    s = boundary_scores(truth, extra, tolerance=2)
    assert s["boundary_recall"] == 1.0 and 0 < s["boundary_precision"] < 1
    assert default_tolerance((321, 481)) == pytest.approx(0.0075 * math.hypot(321, 481))
    flat = boundary_scores(np.zeros((4, 4), int), np.zeros((4, 4), int))
    assert flat["boundary_f"] == 1.0
