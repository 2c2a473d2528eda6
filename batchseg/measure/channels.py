"""Per-channel intensities of a multi-channel plane (pure numpy, no I/O).

For every channel of the image (``C x H x W``, all channels of the file, whatever the method
saw), the mean, max, min and integrated (summed) intensity, in the image's own units:

* per object (:func:`object_channel_stats`): one value per non-zero label, labels sorted, the
  rows of :func:`batchseg.measure.objects.measure_objects`; equal to scikit-image's
  ``regionprops_table(..., intensity_image=...)`` ``intensity_mean/max/min`` (tested);
* per image (:func:`image_channel_stats`): over the pixels of every object (label != 0), NaN
  where the image has none.

Columns are ``mean_intensity_<channel>``, ``max_intensity_<channel>``,
``min_intensity_<channel>``, ``integrated_intensity_<channel>`` (:func:`channel_columns`), the
channel as a column-safe key of its name (the OME channel name where the file has one).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from batchseg.measure.stats import class_keys

CHANNEL_STATS: tuple[str, ...] = (
    "mean_intensity",
    "max_intensity",
    "min_intensity",
    "integrated_intensity",
)


def channel_columns(names: Sequence[str]) -> list[str]:
    """The per-channel columns of ``names``, channel by channel."""
    return [f"{stat}_{key}" for key in class_keys(names) for stat in CHANNEL_STATS]


def stack_columns(planes: str, channels: Sequence[str]) -> list[str]:
    """The columns of a stack job: ``t`` and ``z`` for the axes split into planes, then each
    channel's ``mean_intensity_<channel>``, ``max_...``, ``min_...``, ``integrated_...``."""
    return [a for a in "tz" if a in planes] + channel_columns(channels)


def _check(labels: np.ndarray, stack: np.ndarray, names: Sequence[str]) -> None:
    if stack.ndim != 3 or stack.shape[1:] != labels.shape or stack.shape[0] != len(names):
        raise ValueError(
            f"channels of shape {stack.shape} do not match labels {labels.shape} and "
            f"{len(names)} channel names"
        )


def object_channel_stats(
    labels: np.ndarray, stack: np.ndarray, names: Sequence[str]
) -> dict[str, np.ndarray]:
    """Per-channel intensities of every non-zero label of ``labels`` (sorted by label)."""
    _check(labels, stack, names)
    flat = labels.ravel()
    inside = np.flatnonzero(flat)
    order = inside[np.argsort(flat[inside], kind="stable")]
    ids = flat[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if ids.size else np.zeros(0, int)
    counts = np.diff(np.r_[starts, ids.size])
    out: dict[str, np.ndarray] = {}
    for key, channel in zip(class_keys(names), stack, strict=True):
        values = channel.ravel()[order].astype(np.float64)
        if starts.size:
            total = np.add.reduceat(values, starts)
            high = np.maximum.reduceat(values, starts)
            low = np.minimum.reduceat(values, starts)
        else:
            total = high = low = np.zeros(0)
        out[f"mean_intensity_{key}"] = total / np.maximum(counts, 1)
        out[f"max_intensity_{key}"] = high
        out[f"min_intensity_{key}"] = low
        out[f"integrated_intensity_{key}"] = total
    return out


def image_channel_stats(labels: np.ndarray, stack: np.ndarray, n: int) -> np.ndarray:
    """``[mean, max, min, integrated]`` of each of the ``n`` channels over the pixels of
    every object of ``labels``, channel by channel (NaN where there is no object)."""
    if stack.ndim != 3 or stack.shape[0] != n or stack.shape[1:] != labels.shape:
        raise ValueError(f"channels of shape {stack.shape} do not match labels {labels.shape}")
    inside = labels.ravel() != 0
    out = np.full(4 * n, np.nan)
    if not inside.any():
        return out
    for c in range(n):
        values = stack[c].ravel()[inside].astype(np.float64)
        total = float(values.sum())
        out[4 * c : 4 * c + 4] = (total / values.size, values.max(), values.min(), total)
    return out
