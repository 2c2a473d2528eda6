"""Per-image results of instance methods (pure numpy): statistics row and object columns.

An instance method returns an instance-id map (ids 1..n by descending score, 0 = none), the
class of the same pixels and, per instance, its class index, score and the detector's box
(:class:`batchseg.methods.base.Segmentation`). The store keeps the id map as the label map and
the class map beside it; the statistics row holds the region statistics of the ids, the class
pixel counts and fractions of the class map and the number of instances of each class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from batchseg.measure.stats import class_stats, region_stats
from batchseg.methods.base import INSTANCE_FIELDS

#: Columns the object table of an instance method adds to the measured ones.
INSTANCE_COLUMNS = ("class", *INSTANCE_FIELDS)
_PER_INSTANCE = INSTANCE_FIELDS
#: Per-instance columns a method may add: ``mask_area``, the pixels of the instance's whole
#: mask before higher-scored instances took theirs (the panoptic merge's own area).
#: ``predicted_iou`` and ``stability_score``: Segment Anything's own scores of the mask.
OPTIONAL_COLUMNS = ("mask_area", "predicted_iou", "stability_score")


def check_instances(
    labels: np.ndarray, classes: np.ndarray | None, instances: Mapping[str, np.ndarray] | None
) -> int:
    """The number of instances, after checking the method's output is consistent."""
    if classes is None or instances is None:
        raise ValueError("instance method returned no class map or no instance table")
    if classes.shape != labels.shape:
        raise ValueError(f"class map of shape {classes.shape}, labels {labels.shape}")
    missing = [c for c in _PER_INSTANCE if c not in instances]
    if missing:
        raise ValueError(f"instance table lacks {', '.join(missing)}")
    n = len(instances["class_index"])
    if any(len(instances[c]) != n for c in _PER_INSTANCE):
        raise ValueError("instance table columns differ in length")
    if labels.size and int(labels.max()) > n:
        raise ValueError(f"label {int(labels.max())} but only {n} instances")
    return n


def instance_row(
    labels: np.ndarray,
    classes: np.ndarray,
    instances: Mapping[str, np.ndarray],
    n_classes: int,
) -> np.ndarray:
    """``[region stats of the ids, pixels and fraction per class, instances per class]``.

    Instances are counted by the ids present in the map (an instance hidden entirely by
    higher-scored ones is not counted)."""
    present = np.unique(labels)
    present = present[present > 0]
    kinds = np.asarray(instances["class_index"], dtype=np.int64)[present - 1]
    if kinds.size and (kinds.min() < 0 or kinds.max() >= n_classes):
        raise ValueError(f"class index {int(kinds.max())} outside the {n_classes} classes")
    per_class = np.bincount(kinds, minlength=n_classes).astype(np.float64)
    return np.concatenate([region_stats(labels), class_stats(classes, n_classes), per_class])


def object_columns(
    measured: Mapping[str, np.ndarray],
    instances: Mapping[str, np.ndarray],
    class_names: Sequence[str],
) -> dict[str, np.ndarray]:
    """The measured object columns with each instance's class, score and detector box."""
    index = np.asarray(measured["label"], dtype=np.int64) - 1
    out = dict(measured)
    kinds = np.asarray(instances["class_index"], dtype=np.int64)[index]
    names = np.asarray(list(class_names), dtype=object)
    out["class"] = names[kinds] if names.size else kinds.astype(str).astype(object)
    out["class_index"] = kinds
    for column in _PER_INSTANCE[1:]:
        out[column] = np.asarray(instances[column], dtype=np.float64)[index]
    for column in OPTIONAL_COLUMNS:  # kept when the method gives them
        if column in instances:
            out[column] = np.asarray(instances[column], dtype=np.float64)[index]
    return out
