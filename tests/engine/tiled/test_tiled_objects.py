"""Per-object measurements tile by tile (batchseg.engine.tiled.objects) equal the whole image's."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from skimage import draw, filters, measure, segmentation

from batchseg.engine.tiled.objects import (
    HALO,
    combine_partials,
    empty_partial,
    finalise_partials,
    merge_partials,
    tile_partials,
)
from batchseg.measure.objects import OBJECT_COLUMNS, OBJECT_DTYPES, measure_objects

RTOL = 1e-9

Partial = dict[str, np.ndarray]


def windows(shape: tuple[int, ...], th: int, tw: int) -> Iterator[tuple[int, int, int, int]]:
    for y0 in range(0, shape[0], th):
        for x0 in range(0, shape[1], tw):
            yield y0, min(y0 + th, shape[0]), x0, min(x0 + tw, shape[1])


def tiles(
    labels: np.ndarray, img: np.ndarray, th: int, tw: int, *, context: bool = True, grow: int = HALO
) -> list[Partial]:
    """Partials of every tile, with the label context grown by ``grow`` (clipped)."""
    h, w = labels.shape
    parts = []
    for y0, y1, x0, x1 in windows(labels.shape, th, tw):
        window, pixels = labels[y0:y1, x0:x1], img[y0:y1, x0:x1]
        if not context:
            parts.append(tile_partials(window, pixels, (y0, x0)))
            continue
        cy0, cx0, cy1, cx1 = (
            max(0, y0 - grow),
            max(0, x0 - grow),
            min(h, y1 + grow),
            min(w, x1 + grow),
        )
        core = (slice(y0 - cy0, y1 - cy0), slice(x0 - cx0, x1 - cx0))
        ctx = labels[cy0:cy1, cx0:cx1]
        parts.append(tile_partials(window, pixels, (y0, x0), context=ctx, core=core))
    return parts


def assert_same(out: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> None:
    """Every column equal up to float rounding; orientation as an angle modulo pi (-pi/2 and
    pi/2 are one orientation, skimage picks by the sign of rounding noise when b is 0)."""
    assert tuple(out) == OBJECT_COLUMNS
    for col in OBJECT_COLUMNS:
        assert out[col].dtype == OBJECT_DTYPES[col], col
        if col == "orientation":
            turn = (out[col] - ref[col] + np.pi / 2) % np.pi - np.pi / 2
            assert (np.abs(turn) <= RTOL * (1 + np.abs(ref[col]))).all(), col
        elif OBJECT_DTYPES[col] == np.int64:
            np.testing.assert_array_equal(out[col], ref[col], err_msg=col)
        else:
            np.testing.assert_allclose(out[col], ref[col], rtol=RTOL, atol=1e-12, err_msg=col)


def blobs(seed: int, shape: tuple[int, int] = (90, 110)) -> np.ndarray:
    """Smoothed-noise components plus a few big objects spanning many tiles."""
    rng = np.random.default_rng(seed)
    smooth = filters.gaussian(rng.random(shape), 2.5)
    labels = measure.label(smooth > np.quantile(smooth, 0.6)).astype(np.int64)
    top, (h, w) = labels.max(), shape
    rr, cc = draw.disk((h // 2, w // 2), min(h, w) // 3, shape=shape)
    labels[rr, cc] = top + 1
    rr, cc = draw.polygon([5, h - 5, h * 2 // 3], [w - 10, w * 2 // 3, w - 2], shape)
    labels[rr, cc] = top + 2
    labels[h - 2, :] = top + 3  # one-row object near the border
    labels[:, 1] = top + 4  # one-column object
    labels[10, 10] = top + 5  # single pixel
    return labels * 7 + 1000 * (labels > 0)  # sparse, non-consecutive ids


def image(kind: str, shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "uint8":
        return rng.integers(0, 256, shape).astype(np.uint8)
    if kind == "uint16":
        return rng.integers(0, 65536, shape).astype(np.uint16)
    if kind == "float32":
        return (rng.random(shape) * 100 - 30).astype(np.float32)
    if kind == "rgba":
        return rng.integers(0, 256, (*shape, 4)).astype(np.uint8)
    return rng.integers(0, 256, (*shape, 3)).astype(np.uint8)


@pytest.mark.parametrize(
    "kind, seed, th, tw",
    [
        ("uint8", 0, 32, 32),
        ("uint16", 1, 17, 50),  # uneven last tiles
        ("float32", 2, 90, 1),  # 1-pixel-wide columns
        ("rgb", 3, 1, 110),  # 1-pixel-high rows
        ("rgba", 4, 23, 7),
        ("rgb", 5, 90, 110),  # one tile = the image
    ],
)
def test_tiles_equal_whole_image(kind: str, seed: int, th: int, tw: int) -> None:
    labels = blobs(seed)
    img = image(kind, labels.shape, seed)
    assert_same(merge_partials(tiles(labels, img, th, tw)), measure_objects(labels, img))


def test_wider_context_is_fine() -> None:
    labels = blobs(6)
    img = image("uint8", labels.shape)
    out = merge_partials(tiles(labels, img, 20, 30, grow=9))
    assert_same(out, measure_objects(labels, img))


def test_merge_in_any_grouping_and_order() -> None:
    labels = blobs(7)
    img = image("rgb", labels.shape, 7)
    ref = measure_objects(labels, img)
    parts = tiles(labels, img, 13, 19)
    rng = np.random.default_rng(7)
    for n_groups in (2, 5, len(parts)):
        order = rng.permutation(len(parts))
        groups = [combine_partials([parts[i] for i in g]) for g in np.array_split(order, n_groups)]
        assert_same(merge_partials(groups[::-1]), ref)
    # tree of merges of merges
    a = combine_partials(parts[: len(parts) // 3])
    b = combine_partials([combine_partials(parts[len(parts) // 3 : 50]), *parts[50:]])
    assert_same(finalise_partials(combine_partials([b, a])), ref)


def test_touching_regions_and_disconnected_labels() -> None:
    rng = np.random.default_rng(8)
    smooth = filters.gaussian(rng.random((70, 90)), 2)
    markers = np.zeros(smooth.shape, np.int32)
    points = rng.integers(0, smooth.shape, (120, 2))
    markers[points[:, 0], points[:, 1]] = np.arange(1, 121)
    labels = segmentation.watershed(filters.sobel(smooth), markers).astype(np.uint32)
    labels[rng.random(labels.shape) < 0.05] = 0  # holes, split pieces
    img = image("float32", labels.shape, 8)
    assert_same(merge_partials(tiles(labels, img, 9, 11)), measure_objects(labels, img))
    noise = rng.integers(0, 5, (24, 30)).astype(np.uint16)  # every label in pieces
    img = image("uint8", noise.shape, 8)
    ref = measure_objects(noise, img)
    for th, tw in [(1, 1), (5, 4), (24, 30)]:
        assert_same(merge_partials(tiles(noise, img, th, tw)), ref)


def test_degenerate_shapes_exact_branches() -> None:
    """Single pixels, lines and symmetric objects hit skimage's tie branches exactly."""
    labels = np.zeros((40, 44), np.int32)
    labels[3, 3] = 1
    labels[6, 2:40] = 2
    labels[8:38, 42] = 3
    labels[10:14, 5:9] = 4  # square: a == c, b == 0
    rr, cc = draw.disk((25, 20), 9, shape=labels.shape)
    labels[rr, cc] = 5
    rr, cc = draw.line(8, 30, 20, 40)
    labels[rr, cc] = 6
    labels[30:32, 2:4] = 7
    labels[36, 7:13] = labels[37, 8:12] = 8  # mirror-symmetric: b = 0 exactly, a > c
    img = image("uint8", labels.shape)
    ref = measure_objects(labels, img)
    np.testing.assert_array_equal(ref["orientation"][[0, 3, 4, 6]], -np.pi / 4)  # ties
    np.testing.assert_array_equal(ref["orientation"][[1, 2]], [np.pi / 2, 0])  # b = -0.0
    symmetric = [0, 1, 2, 3, 4, 6]  # skimage's own arithmetic is exact on these
    for th, tw in [(40, 44), (3, 5), (1, 44), (40, 1), (7, 7)]:
        out = merge_partials(tiles(labels, img, th, tw))
        assert_same(out, ref)
        for col in ("orientation", "eccentricity", "minor_axis_length"):
            np.testing.assert_array_equal(out[col][symmetric], ref[col][symmetric])
        assert out["orientation"][7] == np.pi / 2  # like the one-row line (skimage: +-pi/2)


def test_offset_far_away_is_exact() -> None:
    labels = blobs(9)
    img = image("uint16", labels.shape, 9)
    near = merge_partials(tiles(labels, img, 30, 30))
    far_parts = []
    oy, ox = 99_000, 98_765
    for y0, y1, x0, x1 in windows(labels.shape, 30, 30):
        window = labels[y0:y1, x0:x1]
        far_parts.append(tile_partials(window, img[y0:y1, x0:x1], (y0 + oy, x0 + ox)))
    far = merge_partials(far_parts)
    for col in OBJECT_COLUMNS:
        shift = {"centroid_row": oy, "bbox_min_row": oy, "bbox_max_row": oy}.get(col, 0)
        shift = {"centroid_col": ox, "bbox_min_col": ox, "bbox_max_col": ox}.get(col, shift)
        if col != "perimeter":  # no context: cut edges counted in both, identically
            np.testing.assert_allclose(far[col], near[col] + shift, rtol=1e-15, err_msg=col)


def test_without_context_perimeter_bound() -> None:
    """Without context each cut side is an image border: the perimeter changes by at most
    sqrt(2) per object pixel in the two rows/columns of a tile along a cut; the rest is exact."""
    labels = blobs(10, (40, 50))
    img = image("uint8", labels.shape, 10)
    ref = measure_objects(labels, img)
    h, w = labels.shape
    for th, tw in [(20, 25), (3, 110), (2, 1)]:
        out = merge_partials(tiles(labels, img, th, tw, context=False))
        band = np.zeros(labels.shape, bool)
        for y0, y1, x0, x1 in windows(labels.shape, th, tw):
            band[y0 : y0 + 2, x0:x1] |= y0 > 0
            band[max(y0, y1 - 2) : y1, x0:x1] |= y1 < h
            band[y0:y1, x0 : x0 + 2] |= x0 > 0
            band[y0:y1, max(x0, x1 - 2) : x1] |= x1 < w
        in_band = np.bincount(np.searchsorted(ref["label"], labels[band & (labels > 0)]))
        in_band = np.pad(in_band, (0, ref["label"].size - in_band.size))
        error = np.abs(out["perimeter"] - ref["perimeter"])
        assert (error <= np.sqrt(2) * in_band + 1e-9).all()
        assert error.max() > 0
        out["perimeter"] = ref["perimeter"]
        assert_same(out, ref)


def test_empty_tiles_and_empty_merge() -> None:
    empty = tile_partials(np.zeros((4, 5), np.int32), np.zeros((4, 5)), (8, 0))
    for key, value in empty_partial().items():
        assert empty[key].dtype == value.dtype and empty[key].size == 0
    out = merge_partials([])
    assert tuple(out) == OBJECT_COLUMNS
    assert all(out[c].size == 0 and out[c].dtype == OBJECT_DTYPES[c] for c in OBJECT_COLUMNS)
    labels = np.zeros((10, 10), np.int32)
    labels[6:9, 6:9] = 3
    img = image("uint8", labels.shape)
    out = merge_partials([empty, *tiles(labels, img, 5, 5), empty])
    assert_same(out, measure_objects(labels, img))


def test_huge_ids_and_label_dtypes() -> None:
    labels = blobs(11, (40, 50))
    img = image("uint8", labels.shape, 11)
    ref = measure_objects(labels, img)
    big = labels.astype(np.uint64) * 1_000_003
    out = merge_partials(tiles(big, img, 16, 16))
    np.testing.assert_array_equal(out["label"], ref["label"] * 1_000_003)
    out["label"] = ref["label"]
    assert_same(out, ref)
    for dtype in (np.uint16, np.int32):
        assert_same(merge_partials(tiles(labels.astype(dtype), img, 16, 16)), ref)


def test_bad_inputs_raise() -> None:
    labels = np.ones((4, 5), np.int32)
    with pytest.raises(ValueError):
        tile_partials(labels, np.zeros((4, 6)), (0, 0))
    with pytest.raises(ValueError):
        tile_partials(labels, np.zeros((4, 5)), (0, 0), context=labels)
    with pytest.raises(ValueError):
        tile_partials(labels, np.zeros((4, 5)), (0, 0), context=labels, core=np.s_[0:3, 0:5])
    with pytest.raises(ValueError):
        tile_partials(-labels, np.zeros((4, 5)), (0, 0))


def test_random_maps_and_tilings() -> None:
    """Random label maps (4/8-connected components, or labels in pieces) and random tilings."""
    rng = np.random.default_rng(123)
    for i in range(25):
        h, w = rng.integers(5, 50, 2)
        smooth = filters.gaussian(rng.random((h, w)), rng.uniform(0.5, 4))
        mask = smooth > np.quantile(smooth, rng.uniform(0.2, 0.9))
        labels = measure.label(mask, connectivity=int(rng.integers(1, 3)))
        if i % 3 == 0:
            labels = labels % int(rng.integers(2, 6))
        img = rng.random((h, w))
        th, tw = rng.integers(1, max(h, w) + 1, 2)
        assert_same(merge_partials(tiles(labels, img, th, tw)), measure_objects(labels, img))
