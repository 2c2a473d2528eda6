"""Panoptic quality against hand-computed tiny maps (matching, void, crowd, unscored classes)."""

from __future__ import annotations

import numpy as np
import pytest

from batchseg.evaluate.panoptic_quality import (
    FN,
    FP,
    IOU,
    TP,
    image_row,
    pq_counts,
    pq_scores,
    rgb_ids,
)

# classes: 0 void, 1 road (stuff), 2 car (thing)
TRUTH = np.array(
    [
        [7, 7, 7, 7, 7],
        [7, 7, 7, 7, 7],
        [8, 8, 0, 9, 9],
        [8, 8, 0, 9, 9],
    ]
)
SEGMENTS = [(7, 1, False), (8, 2, False), (9, 2, False)]
PRED = np.array(
    [
        [1000, 1000, 1000, 1000, 0],  # road: 8 on truth road + 1 on void: IoU 8 / (9 + 10 - 8 - 1)
        [1000, 1000, 1000, 1000, 2001],  # car 2001: truth car 8 (4 px) + 1 road px: IoU 4 / 5
        [2001, 2001, 1000, 0, 0],
        [2001, 2001, 2003, 2002, 2002],  # 2002: IoU 2 / 4 = 0.5, no match; 2003 all on void
    ]
)


def test_matches_false_positives_and_negatives_by_hand() -> None:
    counts = pq_counts(TRUTH, SEGMENTS, PRED.astype(np.uint32), 3)
    assert counts[1].tolist() == pytest.approx([1, 0, 0, 0.8])  # road
    # car: 2001 matches 8 (IoU 0.8); 9 unmatched (FN); 2002 at IoU exactly 0.5 is FP;
    # 2003 lies entirely on void: neither FP nor anything else
    assert counts[2].tolist() == pytest.approx([1, 1, 1, 0.8])
    assert counts[0].tolist() == [0, 0, 0, 0]
    s = pq_scores(counts)
    # road PQ 0.8 (SQ 0.8, RQ 1); car PQ 0.8 / (1 + 0.5 + 0.5) = 0.4 (SQ 0.8, RQ 0.5)
    assert s["pq"] == pytest.approx(0.6) and s["n"] == 2
    assert s["sq"] == pytest.approx(0.8) and s["rq"] == pytest.approx(0.75)
    assert pq_scores(counts, [2])["pq"] == pytest.approx(0.4)
    assert pq_scores(counts, [0]) == {"pq": None, "sq": None, "rq": None, "n": 0}
    row = image_row(counts)
    assert row.tolist() == pytest.approx([0.6, 0.8, 0.75, 2, 1, 1])


def test_crowd_truth_is_neither_missed_nor_a_false_positive_target() -> None:
    crowd = [(7, 1, False), (8, 2, False), (9, 2, True)]
    counts = pq_counts(TRUTH, crowd, PRED.astype(np.uint32), 3)
    # 9 is crowd: not a FN; 2002 lies all on it (same class): not a FP
    assert counts[2, [TP, FP, FN]].tolist() == [1, 0, 0]
    # a crowd region of another class does not excuse a prediction
    other = [(7, 1, False), (8, 2, False), (9, 1, True)]
    counts = pq_counts(TRUTH, other, PRED.astype(np.uint32), 3)
    assert counts[2, [TP, FP, FN]].tolist() == [1, 1, 0]
    assert counts[1, [TP, FP, FN]].tolist() == [1, 0, 0]


def test_unscored_classes_unlisted_ids_and_sizes() -> None:
    # only road is scored: car predictions are left out, not false positives
    road_only = [(7, 1, False)]
    counts = pq_counts(TRUTH, road_only, PRED.astype(np.uint32), 3, scored=[1])
    assert counts[2].tolist() == [0, 0, 0, 0]
    assert counts[1, TP] == 1 and counts[1, IOU] == pytest.approx(0.8)
    # truth ids that segments_info does not list are ignored (panopticapi): car 9 unlisted
    counts = pq_counts(TRUTH, SEGMENTS[:2], PRED.astype(np.uint32), 3)
    assert counts[2, [TP, FP, FN]].tolist() == [1, 1, 0]
    perfect = pq_counts(TRUTH, SEGMENTS, np.where(TRUTH == 7, 1000, TRUTH).astype(np.uint32)
                        + np.where(TRUTH == 8, 2001 - 8, 0) + np.where(TRUTH == 9, 2002 - 9, 0),
                        3)  # fmt: skip
    assert pq_scores(perfect)["pq"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="never resized"):
        pq_counts(TRUTH, SEGMENTS, PRED[:3].astype(np.uint32), 3)
    with pytest.raises(ValueError, match="outside the 3 classes"):
        pq_counts(TRUTH, SEGMENTS, np.full(TRUTH.shape, 3001, np.uint32), 3)


def test_rgb_ids_decode_coco_panoptic_colours() -> None:
    rgb = np.zeros((1, 3, 3), np.uint8)
    rgb[0, 0] = (7, 0, 0)
    rgb[0, 1] = (0xA1, 0x0F, 0)  # 4001 = 0x0FA1
    rgb[0, 2] = (1, 2, 3)
    assert rgb_ids(rgb).tolist() == [[7, 4001, 1 + 2 * 256 + 3 * 65536]]
