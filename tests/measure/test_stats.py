"""Tests for batchseg.measure.stats: column names and per-image statistics."""

from __future__ import annotations

import re

import numpy as np
import pytest

from batchseg.measure.stats import (
    REGION_COLUMNS,
    class_keys,
    class_stats,
    column_name,
    region_stats,
    stats_columns,
)

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Tv/Monitor", "tv_monitor"),
        ("__background__", "__background__"),
        ("person", "person"),
        ("Potted Plant", "potted_plant"),
        ("dining-table", "dining_table"),
        ("3d", "c_3d"),
        ("0", "c_0"),
        ("", "c_"),
        ("Café", "caf_"),
        ("A.B", "a_b"),
    ],
)
def test_column_name(name: str, expected: str) -> None:
    assert column_name(name) == expected
    assert _IDENT.match(column_name(name))


def test_class_keys_unique() -> None:
    names = ["Cat", "cat", "CAT", "cat_2", "a b", "a/b", "a-b", "", "1", "1"]
    keys = class_keys(names)
    assert len(keys) == len(names)
    assert len(set(keys)) == len(keys)
    assert keys[:3] == ["cat", "cat_2", "cat_3"]
    assert keys[4] == "a_b"
    assert all(_IDENT.match(k) for k in keys)


def test_class_keys_plain_names_unchanged() -> None:
    names = ["background", "foreground"]
    assert class_keys(names) == names
    assert class_keys([]) == []


def test_stats_columns_classes() -> None:
    cols = stats_columns("classes", ["Background", "Tv/Monitor"])
    assert cols == [
        "pixels_background",
        "pixels_tv_monitor",
        "fraction_background",
        "fraction_tv_monitor",
        "seconds",
    ]


def test_stats_columns_classes_confidence() -> None:
    cols = stats_columns("classes", ["a", "b", "c"], confidence=True)
    assert cols[:6] == [f"{p}_{k}" for p in ("pixels", "fraction") for k in "abc"]
    assert cols[6:] == ["mean_confidence", "seconds"]


def test_stats_columns_regions() -> None:
    assert stats_columns("regions", None) == [*REGION_COLUMNS, "seconds"]
    assert stats_columns("regions", None) == [
        "n_regions",
        "area_min",
        "area_mean",
        "area_max",
        "seconds",
    ]


def test_stats_columns_unique_with_clashing_names() -> None:
    cols = stats_columns("classes", ["a b", "a-b", "A B"])
    assert len(cols) == len(set(cols))


def test_class_stats_vs_numpy() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, (17, 23)).astype(np.uint8)
    labels[labels == 2] = 3  # class 2 absent
    out = class_stats(labels, 5)
    assert out.dtype == np.float64
    assert out.shape == (10,)
    counts = np.array([(labels == c).sum() for c in range(5)])
    np.testing.assert_array_equal(out[:5], counts)
    np.testing.assert_allclose(out[5:], counts / labels.size)
    assert out[2] == 0 and out[4] == 0
    assert out[5:].sum() == pytest.approx(1.0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.int64])
def test_class_stats_dtypes(dtype: type) -> None:
    labels = np.array([[0, 1], [1, 1]], dtype=dtype)
    np.testing.assert_array_equal(class_stats(labels, 2), [1, 3, 0.25, 0.75])


def test_class_stats_label_out_of_range() -> None:
    with pytest.raises(ValueError, match="outside"):
        class_stats(np.array([[0, 2]], dtype=np.uint8), 2)


def test_class_stats_empty_image() -> None:
    out = class_stats(np.zeros((0, 5), dtype=np.uint8), 3)
    np.testing.assert_array_equal(out, np.zeros(6))


def test_region_stats_vs_numpy() -> None:
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 9, (31, 19)).astype(np.uint16)
    labels[labels == 4] = 0  # a gap in the ids
    out = region_stats(labels)
    ids = [i for i in np.unique(labels) if i != 0]
    areas = np.array([(labels == i).sum() for i in ids])
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, [len(ids), areas.min(), areas.mean(), areas.max()])


def test_region_stats_known_values() -> None:
    labels = np.array([[0, 1, 1], [3, 3, 3], [0, 0, 3]], dtype=np.uint8)
    np.testing.assert_allclose(region_stats(labels), [2, 2, 3, 4])


@pytest.mark.parametrize(
    "labels",
    [
        np.zeros((4, 6), dtype=np.uint8),
        np.zeros((0, 0), dtype=np.uint16),
        np.zeros((0, 3), dtype=np.uint32),
    ],
)
def test_region_stats_no_regions(labels: np.ndarray) -> None:
    out = region_stats(labels)
    np.testing.assert_array_equal(out, [0, 0, 0, 0])
    assert out.shape == (len(REGION_COLUMNS),)


def test_stats_length_matches_columns() -> None:
    labels = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    names = ["a", "b", "c"]
    assert len(class_stats(labels, 3)) + 1 == len(stats_columns("classes", names))
    assert len(region_stats(labels)) + 1 == len(stats_columns("regions", None))
