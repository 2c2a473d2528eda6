"""Tile geometry, tiled thresholds and stitched labels equal whole-image scikit-image results.

Everything here goes through the functions the tiled job runs: :func:`tile_at` /
:func:`grid_shape`, the histogram reduction of :mod:`batchseg.methods.tiled`,
:func:`region_outcome` (what a tile task returns) and :func:`stitch` (what the client joins).
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data, filters, measure

from batchseg.engine.tiled.grid import grid_shape, stitch, tile_at
from batchseg.engine.tiled.worker import region_outcome
from batchseg.io.normalise import to_grey
from batchseg.methods import tiled as forms
from batchseg.methods.base import TileSpec


def same_up_to_renaming(a: np.ndarray, b: np.ndarray) -> bool:
    """True when labellings a and b differ only by a one-to-one renaming of ids."""
    if ((a == 0) != (b == 0)).any():
        return False
    pairs = np.unique(np.stack([a.ravel(), b.ravel()], axis=1), axis=0)
    return len(np.unique(pairs[:, 0])) == len(pairs) == len(np.unique(pairs[:, 1]))


def tiles(shape: tuple[int, int], tile: int, halo: int = 0) -> list:
    rows, cols = grid_shape(shape, tile)
    return [tile_at(shape, tile, halo, k) for k in range(rows * cols)]


def test_tiles_cover_once_with_clipped_halos() -> None:
    shape, image = (100, 130), np.arange(100 * 130).reshape(100, 130)
    cover = np.zeros(shape, int)
    every = tiles(shape, 32, halo=7)
    assert len(every) == 4 * 5
    for t in every:
        cover[t.core] += 1
        assert t.hy0 == max(0, t.y0 - 7) and t.hx1 == min(130, t.x1 + 7)
        np.testing.assert_array_equal(image[t.window][t.core_in_window], image[t.core])
    assert (cover == 1).all()
    with pytest.raises(IndexError):
        tile_at(shape, 32, 0, 20)


def tiled_threshold(spec: TileSpec, grey: np.ndarray, tile: int) -> float | None:
    """The job's two-pass reduction: per-tile range, then per-tile counts on shared bins."""
    every = tiles(grey.shape, tile)
    ranges = [forms.grey_range(grey[t.core]) for t in every]
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    counts = None if lo == hi else sum(forms.grey_histogram(grey[t.core], lo, hi) for t in every)
    return forms.finish_histogram(spec, {}, lo, hi, counts)["threshold"]


@pytest.mark.parametrize(("name", "spec"), [("otsu", forms.OTSU), ("yen", forms.YEN)])
@pytest.mark.parametrize("image", [data.camera(), data.coins(), data.astronaut()])
def test_tiled_global_threshold_is_exact(name: str, spec: TileSpec, image: np.ndarray) -> None:
    grey = to_grey(image)
    t = tiled_threshold(spec, grey, 70)
    whole = getattr(filters, f"threshold_{name}")(grey)
    assert t == whole
    out = np.zeros(grey.shape, np.uint8)
    for tile in tiles(grey.shape, 70):
        out[tile.core] = grey[tile.core] > t
    np.testing.assert_array_equal(out, grey > whole)


def test_constant_image_has_no_threshold() -> None:
    grey = np.full((50, 60), 0.4)
    assert tiled_threshold(forms.OTSU, grey, 16) is None


def label_by_tiles(mask: np.ndarray, tile: int, connectivity: int) -> tuple[np.ndarray, int]:
    """Connected components tile by tile, stitched as the job does (``touch``)."""
    outcomes, locals_ = [], []
    for k, t in enumerate(tiles(mask.shape, tile)):
        lab = measure.label(mask[t.window], connectivity=connectivity)
        outcome, local = region_outcome(k, t, lab)
        outcomes.append(outcome)
        locals_.append((t, local))
    joined = stitch(mask.shape, tile, outcomes, "touch", connectivity=connectivity)
    out = np.zeros(mask.shape, dtype=np.int64)
    for k, (t, local) in enumerate(locals_):
        out[t.core] = joined.luts[k][local]
    return out, joined.n_regions


@pytest.mark.parametrize("tile", [37, 64, 128, 500])
@pytest.mark.parametrize("connectivity", [1, 2])
def test_stitched_labels_equal_whole_image(tile: int, connectivity: int) -> None:
    mask = data.binary_blobs(length=256, blob_size_fraction=0.05, volume_fraction=0.35, rng=3)[:240]
    out, n = label_by_tiles(mask, tile, connectivity)
    whole = measure.label(mask, connectivity=connectivity)
    assert n == whole.max()
    assert same_up_to_renaming(out, whole)
    assert set(np.unique(out)) == set(range(n + 1))


def test_otsu_components_tiled_equal_whole() -> None:
    grey = to_grey(data.coins())
    t = tiled_threshold(forms.OTSU, grey, 60)
    out, _ = label_by_tiles(grey > t, 60, 2)
    assert same_up_to_renaming(
        out, measure.label(grey > filters.threshold_otsu(grey), connectivity=2)
    )


def test_stitch_drops_regions_below_min_area() -> None:
    mask = data.binary_blobs(length=128, blob_size_fraction=0.05, volume_fraction=0.3, rng=5)
    outcomes = []
    for k, t in enumerate(tiles(mask.shape, 40)):
        outcomes.append(region_outcome(k, t, measure.label(mask[t.window], connectivity=2))[0])
    whole = measure.label(mask, connectivity=2)
    areas = np.bincount(whole.ravel())[1:]
    joined = stitch(mask.shape, 40, outcomes, "touch", min_area=50)
    assert joined.n_regions == int((areas >= 50).sum())
    assert sorted(joined.areas.tolist()) == sorted(a for a in areas.tolist() if a >= 50)
