"""Per-object measurements of one label map (pure numpy + scikit-image, no Dask).

:func:`measure_objects` gives one row per non-zero label of a label map, measured on the image
it was segmented from, with the columns :data:`OBJECT_COLUMNS` (dtypes :data:`OBJECT_DTYPES`).
Everything comes from a single :func:`skimage.measure.regionprops_table` call, so the values
are scikit-image's definitions: ``bbox`` max exclusive, ``orientation`` in radians,
``perimeter`` with 4-connectivity, ``solidity`` against the filled convex hull image.

Intensities are in the image's own units (no rescaling). A grey image gives
``mean_intensity`` and NaN for ``mean_red/green/blue``; an RGB image (RGBA: alpha dropped)
gives the three channel means and ``mean_intensity`` as their luminance with
:func:`skimage.color.rgb2gray`'s weights (:data:`RGB_WEIGHTS`), exact because the mean is
linear. :func:`object_aggregates` summarises the areas into per-image columns.

Huge images measured tile by tile use :mod:`batchseg.engine.tiled.objects`, which gives the
same columns.
"""

from __future__ import annotations

import numpy as np

OBJECT_COLUMNS: tuple[str, ...] = (
    "label",
    "area",
    "centroid_row",
    "centroid_col",
    "bbox_min_row",
    "bbox_min_col",
    "bbox_max_row",
    "bbox_max_col",
    "eccentricity",
    "solidity",
    "orientation",
    "perimeter",
    "equivalent_diameter",
    "major_axis_length",
    "minor_axis_length",
    "mean_intensity",
    "mean_red",
    "mean_green",
    "mean_blue",
)
_INT_COLUMNS = ("label", "area", "bbox_min_row", "bbox_min_col", "bbox_max_row", "bbox_max_col")
OBJECT_DTYPES: dict[str, np.dtype] = {
    c: np.dtype(np.int64) if c in _INT_COLUMNS else np.dtype(np.float64) for c in OBJECT_COLUMNS
}
AGGREGATE_COLUMNS: tuple[str, ...] = ("n_objects", "object_area_mean", "object_area_median")
# skimage.color.rgb2gray's luminance weights (ITU-R BT.709)
RGB_WEIGHTS: tuple[float, float, float] = (0.2125, 0.7154, 0.0721)
RGB_COLUMNS: tuple[str, str, str] = ("mean_red", "mean_green", "mean_blue")

# regionprops_table property -> (its output keys, our columns)
_PROPS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("label", ("label",), ("label",)),
    ("area", ("area",), ("area",)),
    ("centroid", ("centroid-0", "centroid-1"), ("centroid_row", "centroid_col")),
    (
        "bbox",
        ("bbox-0", "bbox-1", "bbox-2", "bbox-3"),
        ("bbox_min_row", "bbox_min_col", "bbox_max_row", "bbox_max_col"),
    ),
    ("eccentricity", ("eccentricity",), ("eccentricity",)),
    ("solidity", ("solidity",), ("solidity",)),
    ("orientation", ("orientation",), ("orientation",)),
    ("perimeter", ("perimeter",), ("perimeter",)),
    ("equivalent_diameter_area", ("equivalent_diameter_area",), ("equivalent_diameter",)),
    ("axis_major_length", ("axis_major_length",), ("major_axis_length",)),
    ("axis_minor_length", ("axis_minor_length",), ("minor_axis_length",)),
)


def intensity_channels(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``image`` as grey ``H x W`` or RGB ``H x W x 3`` (RGBA loses alpha, one channel is grey).

    Raises ValueError when the image is not 2-D/3-D or its first two dims differ from ``shape``.
    """
    if image.ndim not in (2, 3) or tuple(image.shape[:2]) != tuple(shape):
        raise ValueError(f"image of shape {image.shape} does not match labels of shape {shape}")
    if image.ndim == 3:
        channels = image.shape[2]
        if channels == 1:
            return image[:, :, 0]
        if channels in (3, 4):
            return image[:, :, :3]
        raise ValueError(f"image with {channels} channels (expected 1, 3 or 4)")
    return image


def check_labels(labels: np.ndarray) -> None:
    """Raise ValueError unless ``labels`` is a 2-D integer array."""
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 2-D integer array, not {labels.dtype} {labels.shape}")


def empty_columns() -> dict[str, np.ndarray]:
    """The object columns with no rows."""
    return {c: np.zeros(0, OBJECT_DTYPES[c]) for c in OBJECT_COLUMNS}


def measure_objects(labels: np.ndarray, image: np.ndarray) -> dict[str, np.ndarray]:
    """One row per non-zero label of ``labels`` (sorted by label), columns :data:`OBJECT_COLUMNS`.

    ``image`` is ``H x W`` (grey) or ``H x W x {1,3,4}`` with the shape of ``labels``; any
    integer or float dtype, intensities reported in its own units.
    """
    check_labels(labels)
    pixels = intensity_channels(image, labels.shape)
    if not labels.any():
        return empty_columns()
    if np.issubdtype(labels.dtype, np.signedinteger) and labels.min() < 0:
        raise ValueError("labels must be non-negative")
    if pixels.dtype.kind == "f" and pixels.dtype != np.float64:
        pixels = pixels.astype(np.float64)  # float32 means would accumulate in float32
    rgb = pixels.ndim == 3
    ids = None
    if int(labels.max()) > 4 * labels.size + 1024:  # sparse ids: regionprops lists every id
        ids, inverse = np.unique(labels, return_inverse=True)
        labels = inverse.reshape(labels.shape) + (1 if ids[0] else 0)
        ids = ids if ids[0] else ids[1:]
    props = [p for p, _, _ in _PROPS] + ["intensity_mean"]
    from skimage.measure import regionprops_table  # the reference path only (slow import)

    table = regionprops_table(labels, intensity_image=pixels, properties=props)
    if ids is not None:
        table["label"] = ids[np.asarray(table["label"]) - 1]
    out: dict[str, np.ndarray] = {}
    for _, keys, columns in _PROPS:
        for key, column in zip(keys, columns, strict=True):
            out[column] = np.asarray(table[key], dtype=OBJECT_DTYPES[column])
    n = out["label"].size
    if rgb:
        means = [np.asarray(table[f"intensity_mean-{i}"], np.float64) for i in range(3)]
        for column, mean in zip(RGB_COLUMNS, means, strict=True):
            out[column] = mean
        out["mean_intensity"] = luminance(*means)
    else:
        out["mean_intensity"] = np.asarray(table["intensity_mean"], np.float64)
        for column in RGB_COLUMNS:
            out[column] = np.full(n, np.nan)
    return {c: out[c] for c in OBJECT_COLUMNS}


def luminance(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """Grey from RGB with :data:`RGB_WEIGHTS`, in the channels' own units."""
    wr, wg, wb = RGB_WEIGHTS
    return wr * red + wg * green + wb * blue


def object_aggregates(area: np.ndarray) -> np.ndarray:
    """``[n_objects, object_area_mean, object_area_median]`` (float64; NaN stats when none)."""
    area = np.asarray(area)
    if area.size == 0:
        return np.array([0.0, np.nan, np.nan])
    return np.array([float(area.size), float(np.mean(area)), float(np.median(area))])
