"""Classical methods: scikit-image, SciPy and scikit-learn kernels with their parameters.

Each :class:`~batchseg.methods.base.Method` here names its kernel (in
:mod:`batchseg.methods.kernels`), its parameters, label bounds and tiled form (in
:mod:`batchseg.methods.tiled`). The registry registers :data:`METHODS` on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from math import prod
from typing import Any

from batchseg.core.kinds import Kind
from batchseg.errors import UsageError
from batchseg.methods import kernels, tiled
from batchseg.methods.base import Method, Param

METHODS: list[Method] = []

Params = Mapping[str, Any]


FOREGROUND = ["background", "foreground"]


def _foreground_names(params: Params) -> list[str]:
    return list(FOREGROUND)


_GLOBAL_TILED = {"otsu": tiled.OTSU, "yen": tiled.YEN}
_GLOBAL_UNTILED = {
    "li": "Li's threshold iterates over every pixel (no histogram form)",
    "triangle": "scikit-image's triangle threshold takes no histogram",
}

_GLOBAL_DESCRIPTIONS = {
    "otsu": "Global Otsu threshold: foreground where grey exceeds the between-class optimum.",
    "li": "Global Li threshold: foreground where grey exceeds the minimum cross-entropy level.",
    "yen": "Global Yen threshold: foreground where grey exceeds the maximum-correlation level.",
    "triangle": "Global triangle threshold: suited to one dominant background peak.",
}


for _name, _kernel in [
    ("otsu", kernels.threshold_otsu),
    ("li", kernels.threshold_li),
    ("yen", kernels.threshold_yen),
    ("triangle", kernels.threshold_triangle),
]:
    METHODS.append(
        Method(
            id=f"skimage.{_name}",
            kind=Kind.CLASSES,
            kernel=_kernel,
            description=_GLOBAL_DESCRIPTIONS[_name],
            class_names=_foreground_names,
            family="threshold",
            tiled=_GLOBAL_TILED.get(_name),
            untiled_reason=_GLOBAL_UNTILED.get(_name, "it has no tiled form"),
        )
    )


def _level_names(params: Params) -> list[str]:
    return [f"level_{i}" for i in range(params["classes"])]


METHODS.append(
    Method(
        id="skimage.multiotsu",
        kind=Kind.CLASSES,
        kernel=kernels.multiotsu,
        description="Multi-Otsu thresholds: splits grey levels into N ordered classes.",
        params=(
            Param("classes", int, 3, "number of grey-level classes (slow above ~5)", minimum=2),
        ),
        class_names=_level_names,
        family="threshold",
        tiled=tiled.MULTIOTSU,
    )
)


def _check_local(p: dict[str, Any]) -> None:
    if p["block_size"] % 2 == 0:
        raise UsageError(f"parameter 'block_size' must be odd; got {p['block_size']}")


METHODS.append(
    Method(
        id="skimage.local",
        kind=Kind.CLASSES,
        kernel=kernels.local_threshold,
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
        tiled=tiled.LOCAL,
        check=_check_local,
    )
)


_THRESHOLD_PARAM = Param(
    "threshold",
    str,
    "otsu",
    "global threshold giving the foreground mask",
    tuple(kernels.THRESHOLDS),
)


def _objects_max(p: Params, h: int, w: int) -> int:
    # 4-connected components of a mask: at most ceil(h*w/2) (a checkerboard); 8-connected:
    # at most one per 2x2 block (see _canny_max); min_area bounds them further.
    top = -(-h * w // 2) if p["connectivity"] == 1 else -(-h // 2) * -(-w // 2)
    return min(top, h * w // max(p["min_area"], 1))


METHODS.append(
    Method(
        id="skimage.objects",
        kind=Kind.REGIONS,
        kernel=kernels.objects,
        description="Global threshold, then connected components: one region per object.",
        params=(
            _THRESHOLD_PARAM,
            Param("connectivity", int, 2, "1 = 4-connected, 2 = 8-connected", choices=(1, 2)),
            Param("min_area", int, 0, "drop objects smaller than this many pixels", minimum=0),
        ),
        max_label=_objects_max,
        family="threshold",
        tiled=tiled.OBJECTS,
        objects_default=True,
    )
)


def _check_canny(p: dict[str, Any]) -> None:
    low, high = (
        kernels.auto_threshold(p["low_threshold"]),
        kernels.auto_threshold(p["high_threshold"]),
    )
    if low is not None and high is not None and low > high:
        raise UsageError(f"low_threshold ({low}) must not exceed high_threshold ({high})")


def _canny_max(p: Params, h: int, w: int) -> int:
    # 8-connected components: each 2x2 pixel block meets at most one component (its pixels
    # are mutually adjacent), so there are at most ceil(h/2)*ceil(w/2) components; with
    # min_area every kept component also owns >= min_area pixels.
    return min(-(-h // 2) * -(-w // 2), h * w // max(p["min_area"], 1))


METHODS.append(
    Method(
        id="skimage.canny",
        kind=Kind.REGIONS,
        kernel=kernels.canny,
        description="Canny edges, holes filled, 8-connected components as regions.",
        params=(
            Param("sigma", float, 1.0, "Gaussian smoothing before edge detection", minimum=0),
            Param("low_threshold", float, -1.0, "hysteresis low bound (grey 0-1); <0 = auto"),
            Param("high_threshold", float, -1.0, "hysteresis high bound (grey 0-1); <0 = auto"),
            Param("min_area", int, 0, "drop regions smaller than this many pixels", minimum=0),
        ),
        max_label=_canny_max,
        family="edge",
        untiled_reason="filling holes needs the whole image",
        check=_check_canny,
        objects_default=True,
    )
)


def _sobel_watershed_max(p: Params, h: int, w: int) -> int:
    # An int `markers` becomes skimage.util.regular_seeds((h, w), markers): one label per
    # grid point, and that grid can hold MORE points than `markers` (e.g. 5 x 51 with 250
    # gives 255), so count the grid exactly rather than trusting `markers`.
    from skimage.util import regular_grid

    grid = regular_grid((h, w), p["markers"])
    return prod(len(range(n)[s]) for n, s in zip((h, w), grid, strict=True))


METHODS.append(
    Method(
        id="skimage.sobel_watershed",
        kind=Kind.REGIONS,
        kernel=kernels.sobel_watershed,
        description="Watershed of the Sobel gradient from a regular grid of seeds.",
        params=(
            Param("markers", int, 250, "approximate number of grid seeds (= regions)", minimum=1),
            Param("compactness", float, 0.0, "higher gives more regular regions", minimum=0),
        ),
        max_label=_sobel_watershed_max,
        family="edge",
        untiled_reason="its seed grid is laid over the whole image",
    )
)


METHODS.append(
    Method(
        id="skimage.watershed",
        kind=Kind.REGIONS,
        kernel=kernels.distance_watershed,
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
            Param(
                "sigma",
                float,
                0.0,
                "Gaussian smoothing (pixels) before thresholding; 0 = none",
                minimum=0,
                omit_default=True,
            ),
            Param(
                "h",
                float,
                0.0,
                "markers at h-maxima of the distance (pixels; ignores min_distance); 0 = peaks",
                minimum=0,
                omit_default=True,
            ),
            Param(
                "min_area",
                int,
                0,
                "drop regions smaller than this many pixels (labels stay 1..n)",
                minimum=0,
                omit_default=True,
            ),
        ),
        family="region",
        tiled=tiled.WATERSHED,
        objects_default=True,
    )
)


def _felzenszwalb_max(p: Params, h: int, w: int) -> int:
    # skimage's post-processing merges across every graph edge whose side is smaller than
    # min_size, so each final segment has >= min_size pixels unless the whole image is a
    # single segment: at most max(1, h*w // min_size) segments, labels 1..that.
    return h * w // max(p["min_size"], 1) + 1


METHODS.append(
    Method(
        id="skimage.felzenszwalb",
        kind=Kind.REGIONS,
        kernel=kernels.felzenszwalb,
        description="Felzenszwalb graph-based superpixels (colour-aware for RGB input).",
        params=(
            Param("scale", float, 100.0, "higher gives larger segments", minimum=0),
            Param("sigma", float, 0.8, "Gaussian smoothing before segmenting", minimum=0),
            Param("min_size", int, 20, "minimum segment size in pixels", minimum=1),
        ),
        max_label=_felzenszwalb_max,
        family="region",
        tiled=tiled.FELZENSZWALB,
    )
)


METHODS.append(
    Method(
        id="skimage.slic",
        kind=Kind.REGIONS,
        kernel=kernels.slic,
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
        tiled=tiled.SLIC,
    )
)


def _cluster_names(params: Params) -> list[str]:
    return [f"cluster_{i}" for i in range(params["k"])]


def _check_kmeans(p: dict[str, Any]) -> None:
    if 0 < p["sample"] < p["k"]:
        raise UsageError(f"parameter 'sample' ({p['sample']}) must be 0 or >= k ({p['k']})")


METHODS.append(
    Method(
        id="kmeans",
        kind=Kind.CLASSES,
        kernel=kernels.kmeans,
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
        tiled=tiled.KMEANS,
        check=_check_kmeans,
    )
)
