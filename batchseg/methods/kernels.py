"""Classical kernels: thin wrappers over scikit-image, SciPy and scikit-learn.

Every kernel takes one decoded image (normalised by :mod:`batchseg.io.normalise`) and
returns H x W unsigned labels; numpy in, numpy out, no I/O. Nothing here implements an
algorithm itself; the kernels only normalise the input, call the library, and shape the
result (cast, relabel, order classes). The methods built on them are in
:mod:`batchseg.methods.classical`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from batchseg.errors import ImageError
from batchseg.io.normalise import is_colour, to_grey, to_rgb
from batchseg.methods.base import smallest_uint
from batchseg.methods.lazy import LazyModule

ndi = LazyModule("scipy.ndimage")
color = LazyModule("skimage.color")
feature = LazyModule("skimage.feature")
filters = LazyModule("skimage.filters")
measure = LazyModule("skimage.measure")
morphology = LazyModule("skimage.morphology")
segmentation = LazyModule("skimage.segmentation")


def as_uint(labels: np.ndarray) -> np.ndarray:
    """``labels`` (non-negative ints) in the smallest unsigned dtype that holds them."""
    top = int(labels.max()) if labels.size else 0
    return labels.astype(smallest_uint(top), copy=False)


def is_constant(grey: np.ndarray) -> bool:
    return grey.size == 0 or bool(grey.min() == grey.max())


#: Global thresholds: ``skimage.filters.threshold_<name>``.
THRESHOLDS = ("otsu", "li", "yen", "triangle")


def foreground(grey: np.ndarray, name: str) -> np.ndarray:
    """grey > threshold_<name>(grey); a constant image is all background."""
    if is_constant(grey):
        return np.zeros(grey.shape, dtype=bool)
    threshold: Callable[[np.ndarray], float] = getattr(filters, f"threshold_{name}")
    return grey > threshold(grey)


def _global_kernel(name: str) -> Callable[..., np.ndarray]:
    def kernel(image: np.ndarray) -> np.ndarray:
        return foreground(to_grey(image), name).astype(np.uint8)

    kernel.__name__ = kernel.__qualname__ = f"threshold_{name}"
    return kernel


# Module-level names so the kernels pickle by reference (workers import this module).
threshold_otsu = _global_kernel("otsu")


threshold_li = _global_kernel("li")


threshold_yen = _global_kernel("yen")


threshold_triangle = _global_kernel("triangle")


def multiotsu(image: np.ndarray, classes: int) -> np.ndarray:
    grey = to_grey(image)
    if is_constant(grey):
        return np.zeros(grey.shape, dtype=smallest_uint(classes - 1))
    try:
        thresholds = filters.threshold_multiotsu(grey, classes=classes)
    except ValueError as exc:  # too few distinct grey levels for `classes`
        raise ImageError(f"multi-Otsu with {classes} classes: {exc}") from None
    return np.digitize(grey, bins=thresholds).astype(smallest_uint(classes - 1))


def local_threshold(image: np.ndarray, block_size: int, offset: float, method: str) -> np.ndarray:
    grey = to_grey(image)
    if is_constant(grey):  # rounding in the local mean could otherwise flip it to foreground
        return np.zeros(grey.shape, dtype=np.uint8)
    local = filters.threshold_local(grey, block_size, method=method, offset=offset)
    return (grey > local).astype(np.uint8)


def objects(image: np.ndarray, threshold: str, connectivity: int, min_area: int) -> np.ndarray:
    mask = foreground(to_grey(image), threshold)
    labels = measure.label(mask, connectivity=connectivity)
    if min_area > 1:
        labels = morphology.remove_small_objects(labels, max_size=min_area - 1)
        labels = segmentation.relabel_sequential(labels)[0]
    return as_uint(labels)


def auto_threshold(value: float) -> float | None:
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
        low_threshold=auto_threshold(low_threshold),
        high_threshold=auto_threshold(high_threshold),
    )
    filled = ndi.binary_fill_holes(edges)
    labels = measure.label(filled, connectivity=2)
    if min_area > 1:
        # max_size removes objects of that many pixels or fewer: "smaller than min_area".
        labels = morphology.remove_small_objects(labels, max_size=min_area - 1)
        labels = segmentation.relabel_sequential(labels)[0]
    return as_uint(labels)


def sobel_watershed(image: np.ndarray, markers: int, compactness: float) -> np.ndarray:
    grey = to_grey(image)
    labels = segmentation.watershed(filters.sobel(grey), markers=markers, compactness=compactness)
    return as_uint(labels)


def distance_watershed(
    image: np.ndarray,
    threshold: str,
    min_distance: int,
    footprint: int,
    sigma: float = 0.0,
    h: float = 0.0,
    min_area: int = 0,
) -> np.ndarray:
    """Threshold (after Gaussian smoothing by ``sigma`` when > 0), distance-transform
    watershed; markers from h-maxima of the distance when ``h`` > 0; regions under
    ``min_area`` pixels removed and the rest relabelled 1..n."""
    grey = to_grey(image)
    if sigma > 0:
        grey = filters.gaussian(grey, sigma=sigma)
    labels = watershed_of_mask(foreground(grey, threshold), min_distance, footprint, h)
    if min_area > 1:
        labels = morphology.remove_small_objects(labels, max_size=min_area - 1)
        labels = as_uint(segmentation.relabel_sequential(labels)[0])
    return labels


def watershed_of_mask(
    mask: np.ndarray, min_distance: int, footprint: int, h: float = 0.0
) -> np.ndarray:
    """Distance-transform watershed of a foreground mask (split touching objects)."""
    distance = ndi.distance_transform_edt(mask)
    if h > 0:
        # one marker per h-maximum: peaks less than h pixels above their surroundings merge
        markers = measure.label(morphology.h_maxima(distance, h) & mask)
        return as_uint(segmentation.watershed(-distance, markers, mask=mask))
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
    return as_uint(segmentation.watershed(-distance, markers, mask=mask))


def felzenszwalb(image: np.ndarray, scale: float, sigma: float, min_size: int) -> np.ndarray:
    if is_colour(image):
        labels = segmentation.felzenszwalb(
            to_rgb(image), scale=scale, sigma=sigma, min_size=min_size, channel_axis=-1
        )
    else:
        labels = segmentation.felzenszwalb(
            to_grey(image), scale=scale, sigma=sigma, min_size=min_size, channel_axis=None
        )
    return as_uint(labels + 1)  # skimage labels from 0; here 0 means "no region"


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
    return as_uint(labels)


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
