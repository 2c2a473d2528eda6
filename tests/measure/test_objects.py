"""Per-object measurements of a whole label map (batchseg.measure.objects)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import color, filters, measure

from batchseg.measure.objects import (
    AGGREGATE_COLUMNS,
    OBJECT_COLUMNS,
    OBJECT_DTYPES,
    RGB_WEIGHTS,
    measure_objects,
    object_aggregates,
)

COLUMNS = (
    "label area centroid_row centroid_col bbox_min_row bbox_min_col bbox_max_row bbox_max_col "
    "eccentricity solidity orientation perimeter equivalent_diameter major_axis_length "
    "minor_axis_length mean_intensity mean_red mean_green mean_blue"
).split()


def blobs(seed: int, shape: tuple[int, int] = (60, 80)) -> np.ndarray:
    """Connected components of thresholded smoothed noise."""
    rng = np.random.default_rng(seed)
    smooth = filters.gaussian(rng.random(shape), 2.5)
    return measure.label(smooth > np.quantile(smooth, 0.55)).astype(np.int32)


def image(kind: str, shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "uint8":
        return rng.integers(0, 256, shape).astype(np.uint8)
    if kind == "uint16":
        return rng.integers(0, 65536, shape).astype(np.uint16)
    if kind == "float32":
        return (rng.random(shape) * 10 - 3).astype(np.float32)
    return rng.integers(0, 256, (*shape, 3)).astype(np.uint8)


def direct(labels: np.ndarray, img: np.ndarray) -> dict[str, np.ndarray]:
    props = ["label", "area", "centroid", "bbox", "intensity_mean"]
    return measure.regionprops_table(labels, img.astype(np.float64), properties=props)


@pytest.mark.parametrize("kind", ["uint8", "uint16", "float32", "rgb"])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_regionprops_table(kind: str, seed: int) -> None:
    labels = blobs(seed)
    img = image(kind, labels.shape, seed)
    out = measure_objects(labels, img)
    ref = direct(labels, img)
    np.testing.assert_array_equal(out["label"], ref["label"])
    np.testing.assert_array_equal(out["area"], ref["area"])
    for col, key in [("centroid_row", "centroid-0"), ("centroid_col", "centroid-1")]:
        np.testing.assert_allclose(out[col], ref[key], rtol=1e-12)
    for i, side in enumerate(["min_row", "min_col", "max_row", "max_col"]):
        np.testing.assert_array_equal(out[f"bbox_{side}"], ref[f"bbox-{i}"])
    if kind == "rgb":
        for i, col in enumerate(["mean_red", "mean_green", "mean_blue"]):
            np.testing.assert_allclose(out[col], ref[f"intensity_mean-{i}"], rtol=1e-12)
    else:
        np.testing.assert_allclose(out["mean_intensity"], ref["intensity_mean"], rtol=1e-12)


def test_shape_features_are_skimage_s() -> None:
    labels = blobs(3)
    out = measure_objects(labels, image("uint8", labels.shape))
    for region, i in zip(measure.regionprops(labels), range(len(out["label"])), strict=True):
        assert out["label"][i] == region.label
        assert out["eccentricity"][i] == pytest.approx(region.eccentricity, rel=1e-12)
        assert out["solidity"][i] == pytest.approx(region.solidity, rel=1e-12)
        assert out["orientation"][i] == pytest.approx(region.orientation, rel=1e-12)
        assert out["perimeter"][i] == pytest.approx(region.perimeter, rel=1e-12)
        assert out["equivalent_diameter"][i] == pytest.approx(region.equivalent_diameter_area)
        assert out["major_axis_length"][i] == pytest.approx(region.axis_major_length, rel=1e-12)
        assert out["minor_axis_length"][i] == pytest.approx(region.axis_minor_length, rel=1e-12)


def test_columns_dtypes_and_order() -> None:
    assert OBJECT_COLUMNS == tuple(COLUMNS)
    ints = {"label", "area", "bbox_min_row", "bbox_min_col", "bbox_max_row", "bbox_max_col"}
    for col in COLUMNS:
        assert OBJECT_DTYPES[col] == (np.int64 if col in ints else np.float64)
    labels = blobs(2)
    out = measure_objects(labels, image("uint8", labels.shape))
    assert tuple(out) == OBJECT_COLUMNS
    assert all(out[c].dtype == OBJECT_DTYPES[c] for c in OBJECT_COLUMNS)
    assert len({out[c].size for c in OBJECT_COLUMNS}) == 1


def test_rows_sorted_by_label_and_ids_kept() -> None:
    labels = np.zeros((20, 20), np.uint32)
    labels[2:5, 2:5] = 900
    labels[10:15, 3:4] = 7
    labels[15:18, 12:19] = 4_000_000_000
    out = measure_objects(labels, np.ones((20, 20), np.uint8))
    np.testing.assert_array_equal(out["label"], [7, 900, 4_000_000_000])
    np.testing.assert_array_equal(out["area"], [5, 9, 21])


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.uint64, np.int64])
def test_label_dtypes(dtype: type) -> None:
    labels = blobs(4, (30, 30))
    ref = measure_objects(labels, image("uint8", labels.shape))
    out = measure_objects(labels.astype(dtype), image("uint8", labels.shape))
    for col in OBJECT_COLUMNS:
        np.testing.assert_array_equal(out[col], ref[col])


@pytest.mark.parametrize("kind", ["uint8", "rgb"])
def test_empty_label_map(kind: str) -> None:
    out = measure_objects(np.zeros((10, 12), np.int32), image(kind, (10, 12)))
    assert tuple(out) == OBJECT_COLUMNS
    for col in OBJECT_COLUMNS:
        assert out[col].shape == (0,) and out[col].dtype == OBJECT_DTYPES[col]


def test_grey_image_has_no_channel_means() -> None:
    labels = blobs(5)
    out = measure_objects(labels, image("uint16", labels.shape))
    for col in ("mean_red", "mean_green", "mean_blue"):
        assert np.isnan(out[col]).all()
    assert not np.isnan(out["mean_intensity"]).any()


def test_rgb_grey_is_luminance_of_channel_means() -> None:
    labels = blobs(6)
    rgb = np.random.default_rng(6).random((*labels.shape, 3))
    out = measure_objects(labels, rgb)
    wr, wg, wb = RGB_WEIGHTS
    expected = wr * out["mean_red"] + wg * out["mean_green"] + wb * out["mean_blue"]
    np.testing.assert_allclose(out["mean_intensity"], expected, rtol=1e-15)
    # same as measuring rgb2gray of the image (float images are not rescaled by rgb2gray)
    grey = measure_objects(labels, color.rgb2gray(rgb))
    np.testing.assert_allclose(out["mean_intensity"], grey["mean_intensity"], rtol=1e-12)
    # uint8: reported in the image's own units (0-255), not rescaled
    rgb8 = (rgb * 255).astype(np.uint8)
    out8 = measure_objects(labels, rgb8)
    assert out8["mean_red"].max() > 1.5
    mask = labels == out8["label"][0]
    assert out8["mean_green"][0] == pytest.approx(rgb8[..., 1][mask].mean(), rel=1e-12)


def test_rgba_drops_alpha_and_one_channel_is_grey() -> None:
    labels = blobs(7)
    rgb = image("rgb", labels.shape, 7)
    alpha = np.full((*labels.shape, 1), 17, np.uint8)
    rgba = np.concatenate([rgb, alpha], axis=2)
    a, b = measure_objects(labels, rgba), measure_objects(labels, rgb)
    for col in OBJECT_COLUMNS:
        np.testing.assert_array_equal(a[col], b[col])
    grey = image("uint8", labels.shape, 7)
    a, b = measure_objects(labels, grey[:, :, None]), measure_objects(labels, grey)
    for col in OBJECT_COLUMNS:
        np.testing.assert_array_equal(a[col], b[col])


def test_float32_means_are_float64_accurate() -> None:
    labels = np.ones((300, 300), np.int32)
    img = np.full((300, 300), 0.1, np.float32)
    out = measure_objects(labels, img)
    assert out["mean_intensity"][0] == pytest.approx(float(np.float32(0.1)), rel=1e-12)


@pytest.mark.parametrize(
    "labels, img",
    [
        (np.zeros((5, 6), np.int32), np.zeros((6, 5))),
        (np.zeros((5, 6), np.int32), np.zeros((5, 6, 2))),
        (np.zeros((5, 6), np.int32), np.zeros((5, 6, 3, 1))),
        (np.zeros((5, 6), np.float32), np.zeros((5, 6))),
        (np.zeros((5, 6, 1), np.int32), np.zeros((5, 6))),
        (np.full((5, 6), -1, np.int32), np.zeros((5, 6))),
    ],
)
def test_bad_inputs_raise(labels: np.ndarray, img: np.ndarray) -> None:
    with pytest.raises(ValueError):
        measure_objects(labels, img)


def test_aggregates() -> None:
    assert AGGREGATE_COLUMNS == ("n_objects", "object_area_mean", "object_area_median")
    agg = object_aggregates(np.array([3, 1, 10, 2], np.int64))
    assert agg.dtype == np.float64
    np.testing.assert_array_equal(agg, [4.0, 4.0, 2.5])
    none = object_aggregates(np.zeros(0, np.int64))
    assert none.dtype == np.float64 and none[0] == 0 and np.isnan(none[1:]).all()
