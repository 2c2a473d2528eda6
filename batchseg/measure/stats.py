"""Per-image statistics of a label map (pure numpy), and their column names."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from batchseg.core.kinds import Kind
from batchseg.measure.objects import AGGREGATE_COLUMNS

REGION_COLUMNS = ("n_regions", "area_min", "area_mean", "area_max")
#: Per-image aggregates of the object table, in jobs that measure objects.
OBJECT_AGGREGATES = AGGREGATE_COLUMNS


def column_name(class_name: str) -> str:
    """A class name as a column-safe identifier: lower-case, non-alphanumerics as ``_``."""
    name = re.sub(r"[^0-9a-z]", "_", class_name.lower())
    return name if name and not name[0].isdigit() else f"c_{name}"


def class_keys(class_names: Sequence[str]) -> list[str]:
    """Column-safe keys of ``class_names``, made unique by suffixing duplicates."""
    keys: list[str] = []
    for name in class_names:
        key = column_name(name)
        base, n = key, 1
        while key in keys:
            n += 1
            key = f"{base}_{n}"
        keys.append(key)
    return keys


def stats_columns(
    kind: str,
    class_names: Sequence[str] | None,
    *,
    confidence: bool = False,
    objects: bool = False,
    stacks: Sequence[str] = (),
) -> list[str]:
    """Statistics columns for a method's output kind, in table order (``stacks``: the plane
    and per-channel columns of :func:`batchseg.measure.channels.stack_columns`, before
    ``seconds``)."""
    keys = class_keys(class_names or [])
    per_class = [f"pixels_{k}" for k in keys] + [f"fraction_{k}" for k in keys]
    if (
        Kind(kind) is Kind.INSTANCES
    ):  # the ids' region statistics, the class map's, instances per class
        cols = [*REGION_COLUMNS, *per_class, *(f"n_{k}" for k in keys)]
    elif Kind(kind).class_map:
        cols = per_class
    else:
        cols = list(REGION_COLUMNS)
    if confidence and Kind(kind) is not Kind.REGIONS:
        cols.append("mean_confidence")
    if objects:
        cols.extend(OBJECT_AGGREGATES)
    cols.extend(stacks)
    cols.append("seconds")
    return cols


def class_stats(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``[pixels per class..., fraction per class...]`` of a class map."""
    return class_stats_from_counts(np.bincount(labels.ravel(), minlength=n_classes), n_classes)


def class_stats_from_counts(counts: np.ndarray, n_classes: int) -> np.ndarray:
    """:func:`class_stats` from pixel counts per class (summed over tiles)."""
    if counts.size > n_classes:
        raise ValueError(f"label {counts.size - 1} outside the {n_classes} classes")
    total = max(1, int(counts.sum()))
    return np.concatenate([counts, counts / total]).astype(np.float64)


def region_stats(labels: np.ndarray) -> np.ndarray:
    """``[n_regions, area_min, area_mean, area_max]`` over non-zero labels."""
    return region_stats_from_areas(np.bincount(labels.ravel())[1:])


def region_stats_from_areas(counts: np.ndarray) -> np.ndarray:
    """:func:`region_stats` from the area of each region id (zeros ignored)."""
    areas = counts[counts > 0]
    if areas.size == 0:
        return np.array([0.0, 0.0, 0.0, 0.0])
    return np.array([areas.size, areas.min(), areas.mean(), areas.max()], dtype=np.float64)
