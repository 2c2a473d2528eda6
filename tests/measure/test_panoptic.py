"""The panoptic merge on hand-built arrays with known answers (pure numpy, no store)."""

from __future__ import annotations

import numpy as np
import pytest

from batchseg.errors import UsageError
from batchseg.measure.panoptic import (
    masks_from_full,
    masks_from_ids,
    merge,
    segments,
    stats_columns,
    stats_row,
    unify_classes,
)

SEMANTIC = ["background", "sky", "road", "car", "person"]
INSTANCE = ["__background__", "person", "car"]
CLASSES = unify_classes(SEMANTIC, INSTANCE)  # void, sky 1, road 2, person 3, car 4


def test_unified_classes_match_names_and_split_stuff_from_things() -> None:
    assert CLASSES.names == ("void", "sky", "road", "person", "car")
    assert CLASSES.is_thing == (False, False, False, True, True)
    assert CLASSES.semantic == (0, 1, 2, 0, 0)  # background is void; car/person are things
    assert CLASSES.instance == (0, 3, 4)
    only_cars = unify_classes(SEMANTIC, INSTANCE, ["Car"])  # matched by name, any case
    assert only_cars.names == ("void", "sky", "road", "person", "car")
    assert only_cars.is_thing == (False, False, False, False, True)
    assert only_cars.semantic == (0, 1, 2, 0, 3)  # person is stuff now
    assert only_cars.instance == (0, 0, 4)  # person instances are ignored
    with pytest.raises(UsageError, match="unknown class 'bus'"):
        unify_classes(SEMANTIC, INSTANCE, ["bus"])


def test_unlabelled_is_void_by_default_and_void_names_replace_the_default() -> None:
    semantic = ["background", "sky", "Unlabelled", "road", "car"]
    default = unify_classes(semantic, INSTANCE)  # the attack: Unlabelled used to be stuff
    assert "Unlabelled" not in default.names and default.semantic == (0, 1, 0, 2, 0)
    merged, _ = merge(np.array([[1, 2, 3]]), [], default, min_stuff_area=1)
    assert merged.tolist() == [[1000, 0, 2000]]  # Unlabelled pixels are void, not a segment
    # --void replaces the default names; background stays void as the instance store's class 0
    chosen = unify_classes(semantic, INSTANCE, void_names=["sky"])
    assert chosen.names == ("void", "Unlabelled", "road", "person", "car")
    assert chosen.semantic == (0, 0, 1, 2, 0)
    with pytest.raises(UsageError, match="--void: 'grass' is not a class of the semantic store"):
        unify_classes(semantic, INSTANCE, void_names=["grass"])


def test_score_order_overlap_drop_and_per_class_numbering() -> None:
    semantic = np.full((10, 10), 2, np.uint8)  # road
    big = np.zeros((10, 10), bool)
    big[0:4, 0:4] = True  # 16 px
    low = np.zeros((10, 10), bool)
    low[2:6, 2:6] = True  # 16 px, 4 taken by `big`: 25 % taken, kept
    drop = np.zeros((10, 10), bool)
    drop[0:4, 1:5] = True  # 16 px, 12 taken by `big`: 75 % taken, dropped
    other = np.zeros((10, 10), bool)
    other[8:10, 8:10] = True
    # given out of score order: the merge orders by score, not by position
    instances = masks_from_full([low, drop, big, other], [2, 2, 2, 1], [0.5, 0.8, 0.9, 0.3])
    labels, segs = merge(semantic, instances, CLASSES, overlap=0.5, min_stuff_area=1)
    want = np.full((10, 10), 2000, np.uint32)
    want[low] = 4002  # second car by score
    want[big] = 4001
    want[other] = 3001  # first person: instances count per class
    np.testing.assert_array_equal(labels, want)
    assert labels.dtype == np.uint32
    assert list(segs["label"]) == [2000, 3001, 4001, 4002]
    assert list(segs["score"][1:]) == [0.3, 0.9, 0.5] and np.isnan(segs["score"][0])
    assert list(segs["instance_label"]) == [0, 4, 3, 1]
    assert list(segs["area"]) == [100 - 16 - 12 - 4, 4, 16, 12]
    # at overlap 0.8 the 75 %-covered car is kept (its free 4 px), and scores still rule
    kept, _ = merge(semantic, instances, CLASSES, overlap=0.8, min_stuff_area=1)
    assert sorted(np.unique(kept)) == [2000, 3001, 4001, 4002, 4003]
    assert (kept[big] == 4001).all() and (kept[0:4, 4] == 4002).all()


def test_own_area_from_the_instance_method_counts_pixels_it_already_resolved() -> None:
    ids = np.zeros((6, 6), np.uint8)
    ids[0:3, 0:3] = 1
    ids[4:6, 4:6] = 2  # 4 px left of a 20 px mask: 80 % taken before the merge
    semantic = np.zeros((6, 6), np.uint8)
    kinds, scores = np.array([2, 2]), np.array([0.9, 0.8])
    dropped, _ = merge(semantic, masks_from_ids(ids, kinds, scores, np.array([9, 20])), CLASSES)
    assert sorted(np.unique(dropped)) == [0, 4001]
    kept, _ = merge(semantic, masks_from_ids(ids, kinds, scores), CLASSES)  # own = visible
    assert sorted(np.unique(kept)) == [0, 4001, 4002]


def test_stuff_area_threshold_and_void() -> None:
    semantic = np.full((10, 10), 1, np.uint8)  # sky
    semantic[0:2, :] = 2  # 20 px road
    semantic[9, :] = 0  # background: void
    semantic[8, :] = 3  # car pixels without an instance: void
    labels, segs = merge(semantic, [], CLASSES, min_stuff_area=21)
    assert (labels[0:2] == 0).all()  # road below the threshold
    assert (labels[8:] == 0).all()
    assert (labels[2:8] == 1000).all()
    assert list(segs["label"]) == [1000] and list(segs["is_thing"]) == [False]
    assert list(segs["area"]) == [60]
    assert (segs["bbox_min_row"][0], segs["bbox_max_row"][0]) == (2, 8)
    at_threshold, _ = merge(semantic, [], CLASSES, min_stuff_area=20)
    assert (at_threshold[0:2] == 2000).all()


def test_stuff_area_counts_only_pixels_left_by_things() -> None:
    semantic = np.full((10, 10), 2, np.uint8)
    mask = np.zeros((10, 10), bool)
    mask[:, 0:9] = True  # a car over 90 road pixels: 10 road pixels are left
    labels, _ = merge(semantic, masks_from_full([mask], [2], [0.9]), CLASSES, min_stuff_area=11)
    assert sorted(np.unique(labels)) == [0, 4001]


def test_statistics_row_matches_its_columns() -> None:
    semantic = np.full((4, 5), 1, np.uint8)
    mask = np.zeros((4, 5), bool)
    mask[0:2, 0:2] = True
    labels, segs = merge(semantic, masks_from_full([mask], [1], [0.7]), CLASSES, min_stuff_area=1)
    columns = stats_columns(CLASSES)
    row = dict(zip(columns[:-1], stats_row(segs, labels.size, CLASSES), strict=True))
    assert columns[-1] == "seconds"
    assert row["n_regions"] == 2 and row["pixels_person"] == 4 and row["pixels_sky"] == 16
    assert (row["area_min"], row["area_mean"], row["area_max"]) == (4, 10, 16)
    assert row["fraction_sky"] == 0.8 and row["pixels_void"] == 0
    void = stats_row(segments(np.zeros((2, 2), np.uint32), CLASSES), 4, CLASSES)
    assert list(void[:4]) == [0, 0, 0, 0] and void[4] == 4 and void[4 + 5] == 1.0
    assert row["n_person"] == 1 and row["n_car"] == 0 and "n_sky" not in row
    assert segments(labels, CLASSES)["class"].tolist() == ["sky", "person"] == list(segs["class"])
