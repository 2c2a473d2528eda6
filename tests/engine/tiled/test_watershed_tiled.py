"""Tiled watershed with ``sigma``, ``h`` and ``min_area`` (issue 27, item 16).

In process, through the functions the tiled job runs: the histogram reduction on windows read
with :func:`reduction_halo`, ``segment`` on haloed windows, :func:`region_outcome` and
:func:`stitch` with the spec's ``min_area``; compared with the whole-image kernel.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi
from skimage import filters

from batchseg.cluster import connect as cluster_connect
from batchseg.engine.tiled.grid import grid_shape, stitch, tile_at
from batchseg.engine.tiled.worker import region_outcome
from batchseg.errors import UsageError
from batchseg.io.normalise import to_grey
from batchseg.job.run import run_job
from batchseg.job.spec import JobSpec
from batchseg.methods import get_method
from batchseg.methods import tiled as forms

WATERSHED = get_method("skimage.watershed")


def _image(seed: int = 4, shape: tuple[int, int] = (220, 250)) -> np.ndarray:
    """Noisy round blobs, some touching, some tiny (uint8)."""
    rng = np.random.default_rng(seed)
    canvas = np.zeros(shape)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for _ in range(20):
        cy, cx, r = rng.integers(0, shape[0]), rng.integers(0, shape[1]), rng.integers(2, 16)
        canvas[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1.0
    noisy = ndi.gaussian_filter(canvas, 1.0) + rng.normal(0, 0.25, shape)
    return (np.clip(noisy, 0, 1) * 255).astype(np.uint8)


def _tiles(shape: tuple[int, int], tile: int, halo: int) -> list:
    rows, cols = grid_shape(shape, tile)
    return [tile_at(shape, tile, halo, k) for k in range(rows * cols)]


def _tiled_watershed(image: np.ndarray, params: dict, tile: int) -> np.ndarray:
    spec = forms.spec_for(WATERSHED, params)
    shape = image.shape[:2]
    reduce = _tiles(shape, tile, forms.reduction_halo(spec, params))
    cores = [forms.reduction_grey(spec, params, image[t.window])[t.core_in_window] for t in reduce]
    lo = min(forms.grey_range(c)[0] for c in cores)
    hi = max(forms.grey_range(c)[1] for c in cores)
    counts = sum(forms.grey_histogram(c, lo, hi) for c in cores)
    info = forms.finish_histogram(spec, params, lo, hi, counts)
    outcomes, locals_ = [], []
    for k, t in enumerate(_tiles(shape, tile, spec.halo(params, shape, tile))):
        assert spec.segment is not None
        outcome, local = region_outcome(k, t, spec.segment(image[t.window], params, info, shape))
        outcomes.append(outcome)
        locals_.append((t, local))
    assert spec.min_area is not None
    joined = stitch(shape, tile, outcomes, spec.stitch, min_area=spec.min_area(params))
    out = np.zeros(shape, dtype=np.int64)
    for k, (t, local) in enumerate(locals_):
        out[t.core] = joined.luts[k][local]
    return out


def _same_up_to_renaming(a: np.ndarray, b: np.ndarray) -> bool:
    if ((a == 0) != (b == 0)).any():
        return False
    pairs = np.unique(np.stack([a.ravel(), b.ravel()], axis=1), axis=0)
    return len(np.unique(pairs[:, 0])) == len(pairs) == len(np.unique(pairs[:, 1]))


@pytest.mark.parametrize("tile", [64, 128])
def test_smoothed_reduction_is_exact(tile):
    image = _image()
    params = WATERSHED.resolve_params({"sigma": "2.5"})
    spec = forms.spec_for(WATERSHED, params)
    whole = filters.gaussian(to_grey(image), sigma=2.5)
    out = np.zeros(whole.shape)
    for t in _tiles(image.shape, tile, forms.reduction_halo(spec, params)):
        out[t.core] = forms.reduction_grey(spec, params, image[t.window])[t.core_in_window]
    np.testing.assert_array_equal(out, whole)


@pytest.mark.parametrize(
    "params",
    [
        {"sigma": "2"},
        {"sigma": "1.5", "min_area": "150"},
        {"sigma": "1.5", "h": "2"},
        {"sigma": "1.5", "h": "2", "min_area": "80"},
    ],
)
@pytest.mark.parametrize("seed", [1])
def test_tiled_watershed_equals_whole_image_up_to_renaming(params, seed):
    # smoothed, as the README recommends for EM slices (on raw noise, peak ties can split a
    # region differently in a tile than in the whole image)
    image = _image(seed)
    resolved = WATERSHED.resolve_params(params)
    whole = WATERSHED.segment(image, resolved)
    tiled = _tiled_watershed(image, resolved, 96)
    assert tiled.max() == len(np.unique(tiled[tiled > 0]))  # ids 1..n across the image
    assert _same_up_to_renaming(tiled, whole)
    if resolved.get("min_area"):
        assert np.bincount(tiled.ravel())[1:].min() >= resolved["min_area"]


def test_every_refusal_in_one_line():
    params = WATERSHED.resolve_params({"threshold": "li", "sigma": "2", "min_area": "9"})
    params["pre"] = [{"name": "gaussian"}]
    with pytest.raises(UsageError) as info:
        forms.spec_for(WATERSHED, params)
    message = str(info.value)
    assert "\n" not in message
    assert "'pre'" in message and "threshold 'li'" in message
    assert "sigma" not in message and "min_area" not in message


def test_refused_before_the_cluster_starts(tmp_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "big.tif", _image(shape=(600, 600)), tile=(256, 256))

    def no_cluster(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(cluster_connect, "connect", no_cluster)
    spec = JobSpec(
        input=str(folder),
        method="skimage.watershed",
        output=str(tmp_path / "out.zarr"),
        params={"threshold": "li", "sigma": "2"},
        tile_threshold=100_000,
        tile_size=256,
    )
    with pytest.raises(UsageError, match="threshold 'li' has no tiled form"):
        run_job(spec)
    assert not (tmp_path / "out.zarr").exists()
