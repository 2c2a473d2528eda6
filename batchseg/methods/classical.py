"""Classical methods: thin wrappers over scikit-image, SciPy and scikit-learn.

Every kernel takes one decoded image (see ``convert``) and returns H x W unsigned labels.
Nothing here implements an algorithm itself; the kernels only normalise the input, call
the library, and shape the result (cast, relabel, order classes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage import color, feature, filters, measure, morphology, segmentation
from skimage.util import regular_grid

from batchseg.errors import ImageError, UsageError
from batchseg.io.normalise import is_colour, to_grey, to_rgb
from batchseg.methods.base import Method, Param, smallest_uint
from batchseg.methods.registry import register

Params = Mapping[str, Any]


@dataclass(frozen=True)
class CheckedMethod(Method):
    """A Method whose parameters also get a cross-field check after type conversion."""

    check: Callable[[dict[str, Any]], None] | None = None

    def resolve_params(self, raw: Mapping[str, Any] | None = None) -> dict[str, Any]:
        params = super().resolve_params(raw)
        if self.check is not None:
            self.check(params)
        return params


def _uint(labels: np.ndarray) -> np.ndarray:
    """``labels`` (non-negative ints) in the smallest unsigned dtype that holds them."""
    top = int(labels.max()) if labels.size else 0
    return labels.astype(smallest_uint(top), copy=False)


def _constant(grey: np.ndarray) -> bool:
    return grey.size == 0 or bool(grey.min() == grey.max())


FOREGROUND = ["background", "foreground"]


def _foreground_names(params: Params) -> list[str]:
    return list(FOREGROUND)


# --------------------------------------------------------------------------- thresholds

_THRESHOLDS: dict[str, Callable[[np.ndarray], float]] = {
    "otsu": filters.threshold_otsu,
    "li": filters.threshold_li,
    "yen": filters.threshold_yen,
    "triangle": filters.threshold_triangle,
}


def _foreground(grey: np.ndarray, name: str) -> np.ndarray:
    """grey > threshold_<name>(grey); a constant image is all background."""
    if _constant(grey):
        return np.zeros(grey.shape, dtype=bool)
    return grey > _THRESHOLDS[name](grey)


def _global_kernel(name: str) -> Callable[..., np.ndarray]:
    def kernel(image: np.ndarray) -> np.ndarray:
        return _foreground(to_grey(image), name).astype(np.uint8)

    kernel.__name__ = kernel.__qualname__ = f"threshold_{name}"
    return kernel


# Module-level names so the kernels pickle by reference (workers import this module).
threshold_otsu = _global_kernel("otsu")
threshold_li = _global_kernel("li")
threshold_yen = _global_kernel("yen")
threshold_triangle = _global_kernel("triangle")

_GLOBAL_DESCRIPTIONS = {
    "otsu": "Global Otsu threshold: foreground where grey exceeds the between-class optimum.",
    "li": "Global Li threshold: foreground where grey exceeds the minimum cross-entropy level.",
    "yen": "Global Yen threshold: foreground where grey exceeds the maximum-correlation level.",
    "triangle": "Global triangle threshold: suited to one dominant background peak.",
}

for _name, _kernel in [
    ("otsu", threshold_otsu),
    ("li", threshold_li),
    ("yen", threshold_yen),
    ("triangle", threshold_triangle),
]:
    register(
        Method(
            id=f"skimage.{_name}",
            kind="classes",
            kernel=_kernel,
            description=_GLOBAL_DESCRIPTIONS[_name],
            class_names=_foreground_names,
            family="threshold",
        )
    )


def _level_names(params: Params) -> list[str]:
    return [f"level_{i}" for i in range(params["classes"])]


def multiotsu(image: np.ndarray, classes: int) -> np.ndarray:
    grey = to_grey(image)
    if _constant(grey):
        return np.zeros(grey.shape, dtype=smallest_uint(classes - 1))
    try:
        thresholds = filters.threshold_multiotsu(grey, classes=classes)
    except ValueError as exc:  # too few distinct grey levels for `classes`
        raise ImageError(f"multi-Otsu with {classes} classes: {exc}") from None
    return np.digitize(grey, bins=thresholds).astype(smallest_uint(classes - 1))


register(
    Method(
        id="skimage.multiotsu",
        kind="classes",
        kernel=multiotsu,
        description="Multi-Otsu thresholds: splits grey levels into N ordered classes.",
        params=(
            Param("classes", int, 3, "number of grey-level classes (slow above ~5)", minimum=2),
        ),
        class_names=_level_names,
        family="threshold",
    )
)


def local_threshold(image: np.ndarray, block_size: int, offset: float, method: str) -> np.ndarray:
    grey = to_grey(image)
    if _constant(grey):  # rounding in the local mean could otherwise flip it to foreground
        return np.zeros(grey.shape, dtype=np.uint8)
    local = filters.threshold_local(grey, block_size, method=method, offset=offset)
    return (grey > local).astype(np.uint8)


def _check_local(p: dict[str, Any]) -> None:
    if p["block_size"] % 2 == 0:
        raise UsageError(f"parameter 'block_size' must be odd; got {p['block_size']}")


register(
    CheckedMethod(
        id="skimage.local",
        kind="classes",
        kernel=local_threshold,
        description="Local (adaptive) threshold: each pixel against its neighbourhood mean.",
        params=(
            Param("block_size", int, 35, "odd side of the neighbourhood in pixels", minimum=3),
            Param("offset", float, 0.0, "subtracted from the local threshold (grey 0-1 units)"),
            Param(
                "method",
                str,
                "gaussian",
                "how the neighbourhood is summarised",
                choices=("gaussian", "mean", "median"),
            ),
        ),
        class_names=_foreground_names,
        family="threshold",
        check=_check_local,
    )
)


_THRESHOLD_PARAM = Param(
    "threshold", str, "otsu", "global threshold giving the foreground mask", tuple(_THRESHOLDS)
)


def objects(image: np.ndarray, threshold: str, connectivity: int, min_area: int) -> np.ndarray:
    mask = _foreground(to_grey(image), threshold)
    labels = measure.label(mask, connectivity=connectivity)
    if min_area > 1:
        labels = morphology.remove_small_objects(labels, max_size=min_area - 1)
        labels = segmentation.relabel_sequential(labels)[0]
    return _uint(labels)


def _objects_max(p: Params, h: int, w: int) -> int:
    # 4-connected components of a mask: at most ceil(h*w/2) (a checkerboard); 8-connected:
    # at most one per 2x2 block (see _canny_max); min_area bounds them further.
    top = -(-h * w // 2) if p["connectivity"] == 1 else -(-h // 2) * -(-w // 2)
    return min(top, h * w // max(p["min_area"], 1))


register(
    Method(
        id="skimage.objects",
        kind="regions",
        kernel=objects,
        description="Global threshold, then connected components: one region per object.",
        params=(
            _THRESHOLD_PARAM,
            Param("connectivity", int, 2, "1 = 4-connected, 2 = 8-connected", choices=(1, 2)),
            Param("min_area", int, 0, "drop objects smaller than this many pixels", minimum=0),
        ),
        max_label=_objects_max,
        family="threshold",
    )
)


# --------------------------------------------------------------------------- edges


def _auto(value: float) -> float | None:
    """Negative means 'let scikit-image choose'."""
    return None if value < 0 else value


def canny(
    image: np.ndarray,
    sigma: float,
    low_threshold: float,
    high_threshold: float,
    min_area: int,
) -> np.ndarray:
    grey = to_grey(image)
    edges = feature.canny(
        grey,
        sigma=sigma,
        low_threshold=_auto(low_threshold),
        high_threshold=_auto(high_threshold),
    )
    filled = ndi.binary_fill_holes(edges)
    labels = measure.label(filled, connectivity=2)
    if min_area > 1:
        # max_size removes objects of that many pixels or fewer: "smaller than min_area".
        labels = morphology.remove_small_objects(labels, max_size=min_area - 1)
        labels = segmentation.relabel_sequential(labels)[0]
    return _uint(labels)


def _check_canny(p: dict[str, Any]) -> None:
    low, high = _auto(p["low_threshold"]), _auto(p["high_threshold"])
    if low is not None and high is not None and low > high:
        raise UsageError(f"low_threshold ({low}) must not exceed high_threshold ({high})")


def _canny_max(p: Params, h: int, w: int) -> int:
    # 8-connected components: each 2x2 pixel block meets at most one component (its pixels
    # are mutually adjacent), so there are at most ceil(h/2)*ceil(w/2) components; with
    # min_area every kept component also owns >= min_area pixels.
    return min(-(-h // 2) * -(-w // 2), h * w // max(p["min_area"], 1))


register(
    CheckedMethod(
        id="skimage.canny",
        kind="regions",
        kernel=canny,
        description="Canny edges, holes filled, 8-connected components as regions.",
        params=(
            Param("sigma", float, 1.0, "Gaussian smoothing before edge detection", minimum=0),
            Param("low_threshold", float, -1.0, "hysteresis low bound (grey 0-1); <0 = auto"),
            Param("high_threshold", float, -1.0, "hysteresis high bound (grey 0-1); <0 = auto"),
            Param("min_area", int, 0, "drop regions smaller than this many pixels", minimum=0),
        ),
        max_label=_canny_max,
        family="edge",
        check=_check_canny,
    )
)


def sobel_watershed(image: np.ndarray, markers: int, compactness: float) -> np.ndarray:
    grey = to_grey(image)
    labels = segmentation.watershed(filters.sobel(grey), markers=markers, compactness=compactness)
    return _uint(labels)


def _sobel_watershed_max(p: Params, h: int, w: int) -> int:
    # An int `markers` becomes skimage.util.regular_seeds((h, w), markers): one label per
    # grid point, and that grid can hold MORE points than `markers` (e.g. 5 x 51 with 250
    # gives 255), so count the grid exactly rather than trusting `markers`.
    grid = regular_grid((h, w), p["markers"])
    return prod(len(range(n)[s]) for n, s in zip((h, w), grid, strict=True))


register(
    Method(
        id="skimage.sobel_watershed",
        kind="regions",
        kernel=sobel_watershed,
        description="Watershed of the Sobel gradient from a regular grid of seeds.",
        params=(
            Param("markers", int, 250, "approximate number of grid seeds (= regions)", minimum=1),
            Param("compactness", float, 0.0, "higher gives more regular regions", minimum=0),
        ),
        max_label=_sobel_watershed_max,
        family="edge",
    )
)


# --------------------------------------------------------------------------- regions


def distance_watershed(
    image: np.ndarray, threshold: str, min_distance: int, footprint: int
) -> np.ndarray:
    return watershed_of_mask(_foreground(to_grey(image), threshold), min_distance, footprint)


def watershed_of_mask(mask: np.ndarray, min_distance: int, footprint: int) -> np.ndarray:
    """Distance-transform watershed of a foreground mask (split touching objects)."""
    distance = ndi.distance_transform_edt(mask)
    peaks = feature.peak_local_max(
        distance,
        min_distance=min_distance,
        footprint=np.ones((footprint, footprint), dtype=bool) if footprint else None,
        labels=measure.label(mask),
        # the default (exclude peaks near the border) leaves objects touching the image
        # edge without a marker, and watershed would then drop them entirely
        exclude_border=False,
    )
    markers = np.zeros(mask.shape, dtype=np.int64)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return _uint(segmentation.watershed(-distance, markers, mask=mask))


register(
    Method(
        id="skimage.watershed",
        kind="regions",
        kernel=distance_watershed,
        description="Threshold, then distance-transform watershed to split touching objects.",
        params=(
            _THRESHOLD_PARAM,
            Param("min_distance", int, 5, "minimum pixels between object centres", minimum=1),
            Param(
                "footprint",
                int,
                0,
                "side of the square peak search window; 0 = 2*min_distance+1",
                minimum=0,
            ),
        ),
        family="region",
    )
)


def felzenszwalb(image: np.ndarray, scale: float, sigma: float, min_size: int) -> np.ndarray:
    if is_colour(image):
        labels = segmentation.felzenszwalb(
            to_rgb(image), scale=scale, sigma=sigma, min_size=min_size, channel_axis=-1
        )
    else:
        labels = segmentation.felzenszwalb(
            to_grey(image), scale=scale, sigma=sigma, min_size=min_size, channel_axis=None
        )
    return _uint(labels + 1)  # skimage labels from 0; here 0 means "no region"


def _felzenszwalb_max(p: Params, h: int, w: int) -> int:
    # skimage's post-processing merges across every graph edge whose side is smaller than
    # min_size, so each final segment has >= min_size pixels unless the whole image is a
    # single segment: at most max(1, h*w // min_size) segments, labels 1..that.
    return h * w // max(p["min_size"], 1) + 1


register(
    Method(
        id="skimage.felzenszwalb",
        kind="regions",
        kernel=felzenszwalb,
        description="Felzenszwalb graph-based superpixels (colour-aware for RGB input).",
        params=(
            Param("scale", float, 100.0, "higher gives larger segments", minimum=0),
            Param("sigma", float, 0.8, "Gaussian smoothing before segmenting", minimum=0),
            Param("min_size", int, 20, "minimum segment size in pixels", minimum=1),
        ),
        max_label=_felzenszwalb_max,
        family="region",
    )
)


def slic(image: np.ndarray, n_segments: int, compactness: float, sigma: float) -> np.ndarray:
    if is_colour(image):
        pixels, axis = to_rgb(image), -1
    else:
        pixels, axis = to_grey(image), None
    labels = segmentation.slic(
        pixels,
        n_segments=n_segments,
        compactness=compactness,
        sigma=sigma,
        start_label=1,
        channel_axis=axis,
    )
    # No max_label: connectivity enforcement can yield more than n_segments regions.
    return _uint(labels)


register(
    Method(
        id="skimage.slic",
        kind="regions",
        kernel=slic,
        description="SLIC superpixels: k-means in colour (Lab) + position space.",
        params=(
            Param("n_segments", int, 250, "approximate number of superpixels", minimum=1),
            Param(
                "compactness",
                float,
                10.0,
                "colour vs space balance; higher = squarer (try ~0.1 for grey)",
                minimum=0,
            ),
            Param("sigma", float, 1.0, "Gaussian smoothing before segmenting", minimum=0),
        ),
        family="region",
    )
)


# --------------------------------------------------------------------------- clustering

_LUMA = np.array([0.2125, 0.7154, 0.0721])  # skimage.color.rgb2gray weights


def kmeans_features(image: np.ndarray, space: str) -> np.ndarray:
    """Per-pixel features (rows in raster order): Lab or RGB for colour, grey otherwise."""
    if is_colour(image):
        rgb = to_rgb(image)
        pixels = color.rgb2lab(rgb) if space == "lab" else rgb
        return pixels.reshape(-1, 3)
    return to_grey(image).reshape(-1, 1)


def kmeans_sample(n: int, k: int, seed: int, sample: int) -> np.ndarray | None:
    """Sorted flat indices of the pixels the centres are fitted on (None: all of them)."""
    if n < k:
        raise ImageError(f"kmeans with k={k} needs at least {k} pixels; image has {n}")
    if 0 < sample < n:
        return np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False))
    return None


def kmeans_fit(fit_on: np.ndarray, k: int, space: str, seed: int) -> tuple[Any, np.ndarray]:
    """Fitted KMeans and the rank of each centre (darkest first, ties by coordinates)."""
    from sklearn.cluster import KMeans  # lazy: scikit-learn costs ~1 s of import time
    from threadpoolctl import threadpool_limits

    model = KMeans(n_clusters=k, n_init=3, random_state=seed)
    # scikit-learn's Lloyd step sums per-thread partial centres in lock order, so with
    # several OpenMP threads the last bits (and hence labels) can vary run to run.
    with threadpool_limits(limits=1, user_api="openmp"):
        model.fit(fit_on)
    centres = model.cluster_centers_
    if centres.shape[1] == 1:
        brightness = centres[:, 0]
    elif space == "lab":
        brightness = centres[:, 0]  # L*
    else:
        brightness = centres @ _LUMA
    # darkest first; remaining ties broken by the centre coordinates, all deterministic
    order = np.lexsort((*centres.T[::-1], brightness))
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    return model, rank


def kmeans_assign(model: Any, rank: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Class (ranked cluster) of every feature row."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        predicted = model.predict(features)
    return rank[predicted].astype(smallest_uint(len(rank) - 1))


def kmeans(image: np.ndarray, k: int, space: str, seed: int, sample: int) -> np.ndarray:
    h, w = image.shape[:2]
    features = kmeans_features(image, space)
    rows = kmeans_sample(features.shape[0], k, seed, sample)
    fit_on = features if rows is None else features[rows]
    model, rank = kmeans_fit(fit_on, k, space, seed)
    return kmeans_assign(model, rank, features).reshape(h, w)


def _cluster_names(params: Params) -> list[str]:
    return [f"cluster_{i}" for i in range(params["k"])]


def _check_kmeans(p: dict[str, Any]) -> None:
    if 0 < p["sample"] < p["k"]:
        raise UsageError(f"parameter 'sample' ({p['sample']}) must be 0 or >= k ({p['k']})")


register(
    CheckedMethod(
        id="kmeans",
        kind="classes",
        kernel=kmeans,
        description="k-means colour clustering; classes ordered darkest to brightest.",
        params=(
            Param("k", int, 4, "number of clusters", minimum=2),
            Param(
                "space",
                str,
                "lab",
                "colour space clustered (grey: ignored)",
                choices=("rgb", "lab"),
            ),
            Param("seed", int, 0, "random seed for sampling and initialisation", minimum=0),
            Param("sample", int, 10000, "pixels sampled to fit centres; 0 = all", minimum=0),
        ),
        class_names=_cluster_names,
        family="clustering",
        check=_check_kmeans,
    )
)
