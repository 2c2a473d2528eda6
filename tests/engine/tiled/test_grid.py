"""Tiled thresholds and stitched labels equal whole-image scikit-image results."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data, filters, measure

from batchseg.engine.tiled.grid import global_threshold, label_tiled, tile_grid
from batchseg.io.normalise import to_grey


def same_up_to_renaming(a: np.ndarray, b: np.ndarray) -> bool:
    """True when labellings a and b differ only by a one-to-one renaming of ids."""
    if ((a == 0) != (b == 0)).any():
        return False
    pairs = np.unique(np.stack([a.ravel(), b.ravel()], axis=1), axis=0)
    return len(np.unique(pairs[:, 0])) == len(pairs) == len(np.unique(pairs[:, 1]))


def test_tile_grid_covers_once_with_clipped_halos():
    tiles = tile_grid((100, 130), (32, 50), halo=7)
    cover = np.zeros((100, 130), int)
    for t in tiles:
        cover[t.core] += 1
        assert t.hy0 == max(0, t.y0 - 7) and t.hx1 == min(130, t.x1 + 7)
        window = np.arange(100 * 130).reshape(100, 130)[t.window]
        np.testing.assert_array_equal(
            window[t.core_in_window], np.arange(100 * 130).reshape(100, 130)[t.core]
        )
    assert (cover == 1).all()


@pytest.mark.parametrize("tile", [(37, 53), (64, 64), (128, 300), (400, 500)])
@pytest.mark.parametrize("connectivity", [1, 2])
def test_stitched_labels_equal_whole_image(tile, connectivity):
    mask = data.binary_blobs(length=256, blob_size_fraction=0.05, volume_fraction=0.35, rng=3)[:240]
    tiles = tile_grid(mask.shape, tile)
    out = np.zeros(mask.shape, dtype=np.int64)
    n = label_tiled(lambda t: mask[t.core], tiles, mask.shape, out, connectivity=connectivity)
    whole = measure.label(mask, connectivity=connectivity)
    assert n == whole.max()
    assert same_up_to_renaming(out, whole)
    assert set(np.unique(out)) == set(range(n + 1))


@pytest.mark.parametrize("name", ["otsu", "yen"])
@pytest.mark.parametrize("image", [data.camera(), data.coins(), data.astronaut()])
def test_tiled_global_threshold_is_exact(name, image):
    grey = to_grey(image)
    tiles = tile_grid(grey.shape, (70, 90))
    t = global_threshold(name, lambda tile: grey[tile.core], tiles)
    assert t == getattr(filters, f"threshold_{name}")(grey)
    tiled = np.zeros(grey.shape, np.uint8)
    for tile in tiles:
        tiled[tile.core] = grey[tile.core] > t
    whole = getattr(filters, f"threshold_{name}")(grey)
    np.testing.assert_array_equal(tiled, grey > whole)


def test_constant_image_has_no_threshold():
    grey = np.full((50, 60), 0.4)
    assert global_threshold("otsu", lambda t: grey[t.core], tile_grid(grey.shape, (16, 16))) is None
    with pytest.raises(ValueError, match="no tiled form"):
        global_threshold("li", lambda t: grey[t.core], tile_grid(grey.shape, (16, 16)))


def test_otsu_components_tiled_equal_whole():
    grey = to_grey(data.coins())
    tiles = tile_grid(grey.shape, (60, 80))
    t = global_threshold("otsu", lambda tile: grey[tile.core], tiles)
    out = np.zeros(grey.shape, np.int64)
    label_tiled(lambda tile: grey[tile.core] > t, tiles, grey.shape, out)
    assert same_up_to_renaming(
        out, measure.label(grey > filters.threshold_otsu(grey), connectivity=2)
    )
