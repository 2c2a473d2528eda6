"""Void classes leave mIoU alone; region stores against foreground truth warn or use its
connected components."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from batchseg.errors import UsageError
from batchseg.evaluate.metrics import class_scores, confusion, region_scores
from batchseg.evaluate.score import (
    MANY_REGIONS,
    Scores,
    check_kind_options,
    looks_binary,
    truth_regions,
    warn_two_value_truth,
)
from batchseg.evaluate.truth import void_classes

NAMES = ["Sky", "Road", "Unlabelled"]


def _camvid_like() -> tuple[np.ndarray, np.ndarray]:
    """Truth with void pixels (class 2), a prediction that says Unlabelled on some road."""
    truth = np.array([[0, 0, 1, 1, 2, 2]] * 4)
    pred = np.array([[0, 0, 1, 2, 2, 0]] * 4)
    return truth, pred


def test_void_class_is_left_out_of_miou() -> None:
    truth, pred = _camvid_like()
    void = void_classes(None, NAMES)  # the default: classes named void or unlabelled
    assert void == (2,)
    # the attack: ignoring void truth alone still averages Unlabelled's IoU 0 into mIoU
    ignored = confusion(truth, pred, 3, ignore=truth == 2)
    plain = class_scores(ignored, NAMES)
    assert plain["iou"]["Unlabelled"] == 0.0  # type: ignore[index]
    assert plain["miou"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    scores = class_scores(ignored, NAMES, void)
    assert scores["iou"] == {"Sky": 1.0, "Road": 0.5, "Unlabelled": None}
    assert scores["miou"] == pytest.approx(0.75)
    # predicting void on road still counts against road (recall 1/2)
    assert scores["mean_class_accuracy"] == pytest.approx((1.0 + 0.5) / 2)
    assert scores["dice"]["Unlabelled"] is None  # type: ignore[index]
    assert scores["pixel_accuracy"] == pytest.approx(12 / 16)


def test_void_names_default_explicit_and_none() -> None:
    assert void_classes(None, ["background", "foreground"]) == ()  # background is a class
    assert void_classes(None, ["__void__", "a", "Unlabeled"]) == (0, 2)
    assert void_classes(["road"], NAMES) == (1,)
    assert void_classes(["none"], NAMES) == ()
    with pytest.raises(UsageError, match="--void: 'grass' is not a class of the store"):
        void_classes(["grass"], NAMES)


def test_truth_components_and_the_two_value_warning(caplog: pytest.LogCaptureFixture) -> None:
    truth = np.zeros((40, 40), np.uint8)
    truth[2:10, 2:10] = 255
    truth[20:30, 5:35] = 255
    cells = truth_regions(truth, 255)
    assert sorted(np.unique(cells).tolist()) == [0, 1, 2]
    many = np.arange(40 * 40).reshape(40, 40) // 8 + 1  # 200 regions
    few = (np.arange(40 * 40).reshape(40, 40) // 400 + 1).astype(np.int64)
    assert np.unique(many).size >= MANY_REGIONS
    assert looks_binary([truth], many) and not looks_binary([truth], few)
    assert not looks_binary([cells + np.arange(40)[:, None]], many)
    # scoring the 0/255 image itself as regions: the meaningless numbers of the issue
    assert region_scores(truth, many)["rand_precision"] > 0.9
    with caplog.at_level(logging.WARNING, logger="batchseg"):
        warn_two_value_truth([Scores(two_value_truth=2), Scores()])
    assert "2 image(s): the truth has two values" in caplog.text
    assert "--truth-components VALUE" in caplog.text


def test_options_for_the_other_kind_are_refused_by_name() -> None:
    with pytest.raises(UsageError, match="--truth-components VALUE"):
        check_kind_options("regions", "map.csv", None, None)
    with pytest.raises(UsageError, match="--void is for class maps"):
        check_kind_options("regions", None, ("void",), None)
    with pytest.raises(UsageError, match="class maps: --components CLASS"):
        check_kind_options("classes", None, None, 255)
    check_kind_options("regions", None, None, 255)
    check_kind_options("classes", "map.csv", ("void",), None)
