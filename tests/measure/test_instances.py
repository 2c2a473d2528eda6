"""Statistics row and object columns of instance methods (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from batchseg.measure.instances import (
    INSTANCE_COLUMNS,
    check_instances,
    instance_row,
    object_columns,
)
from batchseg.measure.objects import measure_objects
from batchseg.measure.stats import stats_columns


def _scene() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    ids = np.zeros((8, 10), np.uint8)
    ids[1:4, 1:4] = 1  # a car (class 2), score 0.9
    ids[5:8, 5:9] = 2  # a person (class 1), score 0.8
    ids[0, 9] = 3  # a second car, score 0.6
    classes = np.array([0, 2, 1, 2], np.uint8)[ids]
    instances = {
        "class_index": np.array([2, 1, 2, 1], np.int64),  # the 4th is hidden: not in the map
        "score": np.array([0.9, 0.8, 0.6, 0.55]),
        "box_min_row": np.array([1.0, 5.0, 0.0, 2.0]),
        "box_min_col": np.array([1.0, 5.0, 9.0, 2.0]),
        "box_max_row": np.array([4.0, 8.0, 1.0, 3.0]),
        "box_max_col": np.array([4.0, 9.0, 10.0, 3.0]),
    }
    return ids, classes, instances


def test_row_has_region_class_and_per_class_instance_counts() -> None:
    ids, classes, instances = _scene()
    names = ["__background__", "person", "car"]
    row = instance_row(ids, classes, instances, 3)
    columns = stats_columns("instances", names, confidence=True, objects=True)
    assert columns[:4] == ["n_regions", "area_min", "area_mean", "area_max"]
    assert columns[4:7] == ["pixels___background__", "pixels_person", "pixels_car"]
    assert columns[10:13] == ["n___background__", "n_person", "n_car"]
    assert columns[-5:] == [
        "mean_confidence", "n_objects", "object_area_mean", "object_area_median", "seconds",
    ]  # fmt: skip
    assert len(row) == len(columns) - 5  # the engine adds confidence, aggregates, seconds
    assert list(row[:4]) == [3, 1, 22 / 3, 12]
    assert list(row[4:7]) == [80 - 22, 12, 10]
    assert list(row[10:13]) == [0, 1, 2]  # the hidden 4th instance is not counted


def test_object_columns_join_class_score_and_box_by_id() -> None:
    ids, classes, instances = _scene()
    measured = measure_objects(ids, np.full(ids.shape, 7, np.uint8))
    out = object_columns(measured, instances, ["__background__", "person", "car"])
    assert list(out["label"]) == [1, 2, 3]
    assert list(out["class"]) == ["car", "person", "car"]
    assert list(out["class_index"]) == [2, 1, 2]
    assert list(out["score"]) == [0.9, 0.8, 0.6]
    assert list(out["box_max_col"]) == [4.0, 9.0, 10.0]
    assert set(INSTANCE_COLUMNS) <= set(out)
    assert list(out["area"]) == [9, 12, 1]


def test_inconsistent_instance_output_is_an_error() -> None:
    ids, classes, instances = _scene()
    assert check_instances(ids, classes, instances) == 4
    with pytest.raises(ValueError, match="no class map"):
        check_instances(ids, None, instances)
    with pytest.raises(ValueError, match="class map of shape"):
        check_instances(ids, classes[:2], instances)
    with pytest.raises(ValueError, match="lacks score"):
        check_instances(ids, classes, {k: v for k, v in instances.items() if k != "score"})
    with pytest.raises(ValueError, match="label 3 but only 2 instances"):
        check_instances(ids, classes, {k: v[:2] for k, v in instances.items()})
    with pytest.raises(ValueError, match="outside the 2 classes"):
        instance_row(ids, classes, instances, 2)


def test_mask_area_is_kept_when_the_method_gives_it() -> None:
    ids, classes, instances = _scene()
    measured = measure_objects(ids, np.full(ids.shape, 7, np.uint8))
    assert "mask_area" not in object_columns(measured, instances, ["bg", "person", "car"])
    instances["mask_area"] = np.array([20.0, 12.0, 5.0, 4.0])
    out = object_columns(measured, instances, ["bg", "person", "car"])
    assert list(out["mask_area"]) == [20.0, 12.0, 5.0]
