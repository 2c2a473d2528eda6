"""OME-NGFF 0.5 metadata of an export: axes, multiscales, omero channels, image-label tables."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from batchseg.core.kinds import Kind

LabelTable = tuple[list[dict[str, Any]], list[dict[str, Any]], int, int]

NGFF_VERSION = "0.5"
LABEL_NAME = "segmentation"
REGION_LIMIT = 10_000
"""Region ids (lowest first) listed in ``image-label`` colors/properties."""
_BINCOUNT_LIMIT = 1 << 24  # region ids below this are counted with np.bincount


def axes(rgb: bool) -> list[dict[str, str]]:
    space = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    return ([{"name": "c", "type": "channel"}] if rgb else []) + space


def multiscale(
    name: str,
    axes: list[dict[str, str]],
    n_levels: int,
    *,
    translate: bool,
    kind: str,
    description: str,
) -> dict[str, Any]:
    lead = [1.0] * (len(axes) - 2)
    datasets = []
    for k in range(n_levels):
        s = float(2**k)
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": [*lead, s, s]}]
        if translate and k:
            # a block mean of 2^k pixels is centred (2^k - 1) / 2 pixels in from the block corner
            t = (s - 1.0) / 2.0
            transforms.append({"type": "translation", "translation": [*[0.0] * len(lead), t, t]})
        datasets.append({"path": str(k), "coordinateTransformations": transforms})
    return {
        "name": name,
        "axes": axes,
        "datasets": datasets,
        "type": kind,
        "metadata": {"description": description, "method": f"batchseg.export.ome_zarr ({kind})"},
    }


def value_range(image: np.ndarray) -> tuple[float, float]:
    """Display window of an image: its dtype's range, or (<= 0, >= 1) for floats."""
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        return float(info.min), float(info.max)
    low = min(0.0, float(np.nanmin(image))) if image.size else 0.0
    high = max(1.0, float(np.nanmax(image))) if image.size else 1.0
    return low, high


class RangeTracker:
    """:func:`value_range` of an image read window by window."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self.low, self.high = 0.0, 1.0

    def add(self, window: np.ndarray) -> None:
        if np.issubdtype(self.dtype, np.integer) or not window.size:
            return
        with warnings.catch_warnings():  # an all-NaN window says nothing, like NaN overall
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = float(np.nanmin(window)), float(np.nanmax(window))
        # min/max keep the first argument when the other is NaN
        self.low, self.high = min(self.low, low), max(self.high, high)

    def result(self) -> tuple[float, float]:
        if np.issubdtype(self.dtype, np.integer):
            info = np.iinfo(self.dtype)
            return float(info.min), float(info.max)
        return self.low, self.high


#: Viewer colours of a stack's channels, in order (then white).
_CHANNEL_COLOURS = ("0000FF", "00FF00", "FF0000", "FF00FF", "00FFFF", "FFFF00")


def omero(
    name: str, value_range: tuple[float, float], channel_names: Sequence[str] = ()
) -> dict[str, Any]:
    """The ``omero`` rendering hints: red, green, blue, or a stack's named channels."""
    low, high = value_range
    window = {"min": low, "max": high, "start": low, "end": high}
    names = [("red", "FF0000"), ("green", "00FF00"), ("blue", "0000FF")]
    if channel_names:
        colours = [*_CHANNEL_COLOURS, *["FFFFFF"] * len(channel_names)]
        names = list(zip(channel_names, colours, strict=False))
    channels = [
        {
            "label": label,
            "color": colour,
            "window": dict(window),
            "active": True,
            "coefficient": 1.0,
            "family": "linear",
            "inverted": False,
        }
        for label, colour in names
    ]
    return {"name": name, "channels": channels, "rdefs": {"model": "color"}}


class LabelCounts:
    """Pixels per label value, summed over blocks (a whole label map, or its tiles).

    Values below ``_BINCOUNT_LIMIT`` are counted in one growing array (as ``np.bincount`` of
    the whole map would), larger ones per block with ``np.unique`` and merged at the end.
    """

    def __init__(self) -> None:
        self.small = np.zeros(0, dtype=np.int64)
        self.big: list[tuple[np.ndarray, np.ndarray]] = []
        self.size = 0
        self.top = -1  # largest value seen
        self.dtype: np.dtype | None = None

    @classmethod
    def of(cls, labels: np.ndarray) -> LabelCounts:
        counts = cls()
        counts.add(labels)
        return counts

    def add(self, block: np.ndarray) -> None:
        flat = block.ravel()
        self.dtype = block.dtype
        self.size += int(flat.size)
        if not flat.size:
            return
        top = int(flat.max())
        self.top = max(self.top, top)
        if top < _BINCOUNT_LIMIT and top < max(64 * flat.size, 1 << 16):
            all_counts = np.bincount(flat)
            ids = np.flatnonzero(all_counts)
            counts = all_counts[ids]
        else:  # sparse or huge ids: sort instead of a long count array per block
            ids, counts = np.unique(flat, return_counts=True)
        small = ids < _BINCOUNT_LIMIT
        if not small.all():
            self.big.append((ids[~small], counts[~small].astype(np.int64)))
            ids, counts = ids[small], counts[small]
        if ids.size:
            need = int(ids[-1]) + 1
            if need > self.small.size:  # grow geometrically: tiles add ids in raster order
                grown = np.zeros(min(_BINCOUNT_LIMIT, max(need, 2 * self.small.size)), np.int64)
                grown[: self.small.size] = self.small
                self.small = grown
            self.small[ids] += counts

    def classes(self, n: int) -> np.ndarray:
        """Pixels of values ``0..n-1`` (``n`` above the largest value)."""
        counts = np.zeros(n, dtype=np.int64)
        used = min(n, self.small.size)
        counts[:used] = self.small[:used]
        for ids, c in self.big:
            np.add.at(counts, ids.astype(np.int64), c)
        return counts

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        """Every value present (ascending) and its pixels."""
        ids = np.flatnonzero(self.small)
        counts = self.small[ids]
        if not self.big:
            return ids, counts
        big_ids = np.concatenate([b[0] for b in self.big])
        unique, inverse = np.unique(big_ids, return_inverse=True)
        sums = np.zeros(unique.size, dtype=np.int64)
        np.add.at(sums, inverse, np.concatenate([b[1] for b in self.big]))
        return np.concatenate([ids.astype(unique.dtype), unique]), np.concatenate([counts, sums])


def label_table(view: Any, counted: LabelCounts) -> LabelTable:
    """``image-label`` colors and properties; also how many values are listed / exist."""
    from batchseg import render

    total_pixels = max(1, counted.size)
    if Kind(view.kind).class_map:
        names = list(view.classes or [])
        n = max(len(names), counted.top + 1 if counted.size else 0)
        names += [f"class_{i}" for i in range(len(names), n)]
        counts = counted.classes(n)
        table = render.palette(n, view.colours) if view.colours else render.palette(n)
        colors = [{"label-value": i, "rgba": [*(int(c) for c in table[i]), 255]} for i in range(n)]
        properties = [
            {
                "label-value": i,
                "class": names[i],
                "pixels": int(counts[i]),
                "fraction": float(counts[i] / total_pixels),
            }
            for i in range(n)
        ]
        return colors, properties, n, n
    ids, counts = counted.values()
    keep = ids != 0
    ids, counts = ids[keep], counts[keep]
    total = int(ids.size)
    ids, counts = ids[:REGION_LIMIT], counts[:REGION_LIMIT]
    if (
        view.colours and len(view.colours) >= 2
    ):  # an explicit table wraps around for ids beyond it, as render does
        given = render.palette(len(view.colours), view.colours)
        table = given[(ids.astype(np.int64) - 1) % (len(given) - 1) + 1]
    else:
        table = render.region_colours(ids)
    colors = [
        {"label-value": int(i), "rgba": [*(int(c) for c in rgb), 255]}
        for i, rgb in zip(ids, table, strict=True)
    ]
    properties = [
        {
            "label-value": int(i),
            "class": "region",
            "pixels": int(a),
            "fraction": float(a / total_pixels),
        }
        for i, a in zip(ids, counts, strict=True)
    ]
    return colors, properties, int(ids.size), total
