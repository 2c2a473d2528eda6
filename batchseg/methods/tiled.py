"""How each method segments a huge image tile by tile (pure numpy / scikit-image).

A :class:`TileSpec` says, for one method:

* ``reduce``: the whole-image pass needed before any tile is segmented. ``histogram``: a
  global threshold from the grey histogram of every tile (two passes: range, then counts on
  the same bins, which is exactly what scikit-image computes on the whole image); ``sample``:
  k-means centres fitted on the same pixels the whole-image kernel samples.
* ``halo``: pixels of context read around each tile, derived from the method's parameters
  (a local threshold's filter radius, SLIC's superpixel side, a watershed's footprint).
* ``stitch``: ``none`` for class maps (pixel-wise, so tiles are final); ``touch`` for
  connected components (labels touching across a tile face are one object, as dask-image's
  ``label`` does); ``overlap`` for superpixels and watersheds (a region continues across a
  face only where both tiles, each looking into the other through its halo, agree).
* ``segment``: the method on one haloed window, given the reduction's result.

Semantic models use a sliding window instead (:func:`window_lattice`, :func:`blend_weights`):
logits, not labels, are blended where windows overlap.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from batchseg.errors import UsageError
from batchseg.io.normalise import to_grey
from batchseg.methods import kernels
from batchseg.methods.base import Method, Params, Shape, TileSpec, smallest_uint
from batchseg.methods.lazy import LazyModule

filters = LazyModule("skimage.filters")
measure = LazyModule("skimage.measure")

NBINS = 256

#: Global thresholds that work from a histogram (``skimage.filters.threshold_<name>``).
_HISTOGRAM_THRESHOLDS = ("otsu", "yen")


# --------------------------------------------------------------------------- reductions


def threshold_name(spec: TileSpec, params: Params) -> str:
    """The histogram threshold a spec uses; UsageError when it has no histogram form."""
    assert spec.threshold is not None
    name = spec.threshold(params)
    if name not in _HISTOGRAM_THRESHOLDS and name != "multiotsu":
        raise UsageError(
            f"threshold {name!r} has no tiled form (it needs every pixel at once); "
            f"tiled images can use {', '.join(_HISTOGRAM_THRESHOLDS)}"
        )
    return name


def grey_range(window: np.ndarray) -> tuple[float, float]:
    grey = to_grey(window)
    return float(grey.min()), float(grey.max())


def grey_histogram(window: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Counts on ``NBINS`` bins over ``[lo, hi]`` (the whole image's range)."""
    return np.histogram(to_grey(window), bins=NBINS, range=(lo, hi))[0].astype(np.int64)


def finish_histogram(
    spec: TileSpec, params: Params, lo: float, hi: float, counts: np.ndarray | None
) -> dict[str, Any]:
    """The global threshold(s) from the whole image's histogram; None for a constant image."""
    name = threshold_name(spec, params)
    if lo == hi or counts is None:
        return {"threshold": None}
    edges = np.histogram_bin_edges([lo, hi], bins=NBINS, range=(lo, hi))
    centers = (edges[:-1] + edges[1:]) / 2.0
    if name == "multiotsu":
        from batchseg.errors import ImageError

        try:
            t = filters.threshold_multiotsu(classes=params["classes"], hist=(counts, centers))
        except ValueError as exc:
            raise ImageError(f"multi-Otsu with {params['classes']} classes: {exc}") from None
        return {"threshold": np.asarray(t)}
    threshold: Callable[..., float] = getattr(filters, f"threshold_{name}")
    return {"threshold": float(threshold(hist=(counts, centers)))}


def sample_indices(params: Params, shape: Shape) -> np.ndarray:
    """Flat indices k-means fits on, as the whole-image kernel draws them."""
    n = shape[0] * shape[1]
    _check_sample(params)
    rows = kernels.kmeans_sample(n, params["k"], params["seed"], params["sample"])
    return np.arange(n) if rows is None else rows


def sample_features(window: np.ndarray, params: Params, local: np.ndarray) -> np.ndarray:
    """Features of the pixels at flat indices ``local`` of ``window``."""
    return kernels.kmeans_features(window, params["space"])[local]


def finish_sample(params: Params, features: np.ndarray) -> dict[str, Any]:
    model, rank = kernels.kmeans_fit(features, params["k"], params["space"], params["seed"])
    return {"model": model, "rank": rank}


def smoothing_radius(sigma: float) -> int:
    """Pixels a Gaussian of ``sigma`` reaches (scikit-image's default truncation, 4 sigma)."""
    return int(4.0 * sigma + 0.5) if sigma > 0 else 0


def smoothed_grey(window: np.ndarray, sigma: float) -> np.ndarray:
    """Grey of ``window`` smoothed as the whole-image kernel smooths it (``sigma`` 0: none).

    Pixels at least :func:`smoothing_radius` inside the window (or at the image border, where
    both use the nearest pixel) equal the whole image's smoothed values exactly.
    """
    grey = to_grey(window)
    return filters.gaussian(grey, sigma=sigma) if sigma > 0 else grey


def reduction_halo(spec: TileSpec, params: Params) -> int:
    """Halo the global (histogram) pass reads around each tile's core: the smoothing radius."""
    return smoothing_radius(spec.smooth(params)) if spec.smooth is not None else 0


def reduction_grey(spec: TileSpec, params: Params, window: np.ndarray) -> np.ndarray:
    """The grey values the global pass counts, for a window read with :func:`reduction_halo`."""
    return smoothed_grey(window, spec.smooth(params) if spec.smooth is not None else 0.0)


# --------------------------------------------------------------------------- segment


def _foreground(window: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    t = info["threshold"]
    grey = to_grey(window)
    return np.zeros(grey.shape, dtype=bool) if t is None else grey > t


def _seg_threshold(window: np.ndarray, params: Params, info: dict[str, Any], shape: Shape) -> Any:
    return _foreground(window, info).astype(np.uint8)


def _seg_multiotsu(window: np.ndarray, params: Params, info: dict[str, Any], shape: Shape) -> Any:
    dtype = smallest_uint(params["classes"] - 1)
    grey = to_grey(window)
    if info["threshold"] is None:
        return np.zeros(grey.shape, dtype=dtype)
    return np.digitize(grey, bins=info["threshold"]).astype(dtype)


def _seg_kmeans(window: np.ndarray, params: Params, info: dict[str, Any], shape: Shape) -> Any:
    features = kernels.kmeans_features(window, params["space"])
    labels = kernels.kmeans_assign(info["model"], info["rank"], features)
    return labels.reshape(window.shape[:2])


def _seg_local(window: np.ndarray, params: Params, info: dict[str, Any], shape: Shape) -> Any:
    grey = to_grey(window)
    local = filters.threshold_local(
        grey, params["block_size"], method=params["method"], offset=params["offset"]
    )
    return (grey > local).astype(np.uint8)


def _seg_objects(window: np.ndarray, params: Params, info: dict[str, Any], shape: Shape) -> Any:
    return measure.label(_foreground(window, info), connectivity=params["connectivity"])


def _seg_watershed(window: np.ndarray, params: Params, info: dict[str, Any], shape: Shape) -> Any:
    grey = smoothed_grey(window, params.get("sigma", 0.0))
    t = info["threshold"]
    mask = np.zeros(grey.shape, dtype=bool) if t is None else grey > t
    return kernels.watershed_of_mask(
        mask, params["min_distance"], params["footprint"], params.get("h", 0.0)
    )


def _seg_slic(window: np.ndarray, params: Params, info: dict[str, Any], shape: Shape) -> Any:
    # the same superpixel size as on the whole image: segments in proportion to the area
    share = window.shape[0] * window.shape[1] / (shape[0] * shape[1])
    n = max(1, round(params["n_segments"] * share))
    return kernels.slic(window, n, params["compactness"], params["sigma"])


def _seg_felzenszwalb(
    window: np.ndarray, params: Params, info: dict[str, Any], shape: Shape
) -> Any:
    return kernels.felzenszwalb(window, params["scale"], params["sigma"], params["min_size"])


# --------------------------------------------------------------------------- halos


def _no_halo(params: Params, shape: Shape, tile: int) -> int:
    return 0


def _local_halo(params: Params, shape: Shape, tile: int) -> int:
    # threshold_local: gaussian sigma (block-1)/6 truncated at 4 sigma; mean/median: block/2
    gaussian = int(4.0 * (params["block_size"] - 1) / 6.0 + 0.5)
    return min(tile, max(params["block_size"] // 2, gaussian) + 1)


def _slic_halo(params: Params, shape: Shape, tile: int) -> int:
    side = math.sqrt(shape[0] * shape[1] / params["n_segments"])
    return min(tile, math.ceil(side) + math.ceil(4 * params["sigma"]))


def _felzenszwalb_halo(params: Params, shape: Shape, tile: int) -> int:
    reach = 2 * math.ceil(math.sqrt(params["min_size"])) + math.ceil(4 * params["sigma"])
    return min(tile, max(32, reach))


def _watershed_halo(params: Params, shape: Shape, tile: int) -> int:
    # h-maxima: a peak's dynamic is decided within a few multiples of h around it
    reach = max(
        32, 4 * params["min_distance"], 2 * params["footprint"], 4 * math.ceil(params.get("h", 0.0))
    )
    return min(tile, reach + smoothing_radius(params.get("sigma", 0.0)))


def _named(name: str, params: Params) -> str:
    return name


def _fixed(name: str) -> Callable[[Params], str]:
    return functools.partial(_named, name)  # picklable: Methods travel to workers


def _param(params: Params) -> str:
    return str(params["threshold"])


def _check_sample(params: Params) -> None:
    if params["sample"] == 0:
        raise UsageError("kmeans on tiled images needs 'sample' > 0 (it cannot fit on every pixel)")


def _check_window(params: Params) -> None:
    reasons = []
    if params["overlap"] >= params["window"]:
        reasons.append(
            f"parameter 'overlap' ({params['overlap']}) must be smaller than "
            f"'window' ({params['window']})"
        )
    if params.get("resize"):
        reasons.append("'resize' cannot be combined with tiled images")
    if reasons:
        raise UsageError("; ".join(reasons))


def _min_area(params: Params) -> int:
    return int(params.get("min_area", 0))


# The tiled forms; each method declares its own (``Method.tiled``).
OTSU = TileSpec("histogram", "none", _no_halo, _seg_threshold, threshold=_fixed("otsu"))
YEN = TileSpec("histogram", "none", _no_halo, _seg_threshold, threshold=_fixed("yen"))
MULTIOTSU = TileSpec("histogram", "none", _no_halo, _seg_multiotsu, threshold=_fixed("multiotsu"))
KMEANS = TileSpec("sample", "none", _no_halo, _seg_kmeans, check=_check_sample)
LOCAL = TileSpec("none", "none", _local_halo, _seg_local)
OBJECTS = TileSpec(
    "histogram", "touch", _no_halo, _seg_objects, threshold=_param, min_area=_min_area
)


def _sigma(params: Params) -> float:
    return float(params.get("sigma", 0.0))


# sigma: the smoothed image, exact in every tile (its halo carries the filter's radius);
# h: markers from h-maxima, within the halo; min_area: applied to the stitched regions
WATERSHED = TileSpec(
    "histogram",
    "overlap",
    _watershed_halo,
    _seg_watershed,
    threshold=_param,
    min_area=_min_area,
    smooth=_sigma,
)
SLIC = TileSpec("none", "overlap", _slic_halo, _seg_slic)
FELZENSZWALB = TileSpec("none", "overlap", _felzenszwalb_halo, _seg_felzenszwalb)
SEMANTIC = TileSpec("none", "semantic", _no_halo, None, check=_check_window)


def tiling_refusals(method: Method, params: Params) -> list[str]:
    """Every reason why ``method`` with ``params`` cannot segment images tile by tile."""
    reasons = []
    if params.get("pre"):
        reasons.append("a preprocessing chain ('pre') would need context across tiles; drop 'pre'")
    spec = method.tiled
    if spec is None:
        return [*reasons, f"{method.untiled_reason}; choose another method"]
    checks: list[Callable[[Params], object]] = []
    if spec.threshold is not None:
        checks.append(functools.partial(threshold_name, spec))
    if spec.check is not None:
        checks.append(spec.check)
    for check in checks:
        try:
            check(params)
        except UsageError as exc:
            reasons.append(str(exc))
    return reasons


def spec_for(method: Method, params: Params) -> TileSpec:
    """The tiled form of ``method``; UsageError naming every reason (one line) when it has
    none for these parameters."""
    reasons = tiling_refusals(method, params)
    if reasons:
        raise UsageError(
            f"method {method.id} cannot segment images above --tile-threshold: "
            f"{'; '.join(reasons)}; or raise --tile-threshold"
        )
    assert method.tiled is not None
    return method.tiled


# --------------------------------------------------------------------------- sliding window


def window_lattice(length: int, window: int, overlap: int) -> list[int]:
    """Start offsets of windows along one axis: a fixed lattice over the whole image.

    Every tile uses the same lattice, so a pixel's blended logits do not depend on which tile
    computes it: there are no seams.
    """
    if length <= window:
        return [0]
    stride = window - overlap
    starts = list(range(0, length - window, stride))
    starts.append(length - window)
    return starts


def blend_weights(size: int) -> np.ndarray:
    """1-D window weight: a raised cosine, high in the middle, small but > 0 at the edges."""
    i = np.arange(size, dtype=np.float64)
    return (np.sin(np.pi * (i + 0.5) / size) ** 2 + 1e-3).astype(np.float32)
