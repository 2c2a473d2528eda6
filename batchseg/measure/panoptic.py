"""Panoptic merge of a semantic class map and instance masks (pure numpy, no I/O).

The heuristic of Panoptic FPN (Kirillov et al. 2019; detectron2's
``combine_semantic_and_instance_outputs``):

1. instances of "thing" classes in descending score order; each is dropped when more than
   ``overlap`` of its own area is already taken by earlier ones, else its free pixels become a
   segment;
2. the remaining pixels of each "stuff" class of the semantic map become one segment when at
   least ``min_stuff_area`` of them are left;
3. every other pixel is void (0).

Labels follow the Cityscapes convention ``class_index * 1000 + instance``: ``class_index`` in
the unified class list (:class:`PanopticClasses`, index 0 = ``void``), ``instance`` 1, 2, ...
per thing class in score order, 0 for stuff.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from batchseg.errors import UsageError
from batchseg.measure.stats import REGION_COLUMNS, class_keys

OFFSET = 1000
"""``label = class_index * OFFSET + instance``."""
VOID = "void"
"""Name of unified class 0: pixels no segment claims."""
VOID_NAMES = ("void", "background", "unlabelled", "unlabeled")
"""Semantic classes that are void (not stuff) unless ``--void`` names others."""
_LUT_LIMIT = 1 << 24  # labels up to this are compacted by a lookup table, larger by sorting


def class_key(name: str) -> str:
    """How class names are matched across stores: lower case, without surrounding blanks and
    underscores (``__background__`` matches ``Background``)."""
    return str(name).strip().lower().strip("_").strip()


@dataclass(frozen=True)
class PanopticClasses:
    """The unified class list of a panoptic store and how both sources map onto it.

    ``names``: ``void``, then the stuff classes (semantic order), then the thing classes.
    ``semantic[i]``: unified index of semantic class ``i`` when it is stuff, else 0.
    ``instance[i]``: unified index of instance class ``i`` when it is a thing, else 0.
    """

    names: tuple[str, ...]
    is_thing: tuple[bool, ...]
    semantic: tuple[int, ...]
    instance: tuple[int, ...]

    @property
    def things(self) -> list[int]:
        """Unified indices of the thing classes."""
        return [i for i, thing in enumerate(self.is_thing) if thing]


def unify_classes(
    semantic: Sequence[str],
    instance: Sequence[str],
    things: Sequence[str] | None = None,
    void_names: Sequence[str] | None = None,
) -> PanopticClasses:
    """The unified classes of a merge; names are matched by :func:`class_key`.

    ``things`` defaults to the instance classes other than index 0 (background). A semantic
    class is stuff unless it is a thing, is named like the instance store's class 0 or
    ``void``, or is void: one of ``void_names`` (UsageError for a class the semantic store
    lacks), by default those named as in :data:`VOID_NAMES`. UsageError for a thing that
    neither store knows.
    """
    void = {VOID, *(class_key(n) for n in instance[:1]), *_void_keys(semantic, void_names)}
    spelled: dict[str, str] = {}
    for name in [*instance[1:], *semantic]:
        spelled.setdefault(class_key(name), str(name))
    wanted = list(instance[1:]) if things is None else list(things)
    thing_keys: list[str] = []
    for name in wanted:
        key = class_key(name)
        if key not in spelled or key in void:
            known = ", ".join(v for k, v in spelled.items() if k not in void) or "none"
            raise UsageError(f"--things: unknown class {name!r} (classes: {known})")
        if key not in thing_keys:
            thing_keys.append(key)
    stuff_keys: list[str] = []
    for name in semantic:
        key = class_key(name)
        if key not in void and key not in thing_keys and key not in stuff_keys:
            stuff_keys.append(key)
    keys = [VOID, *stuff_keys, *thing_keys]
    index = {k: i for i, k in enumerate(keys)}
    stuff, thing = set(stuff_keys), set(thing_keys)
    return PanopticClasses(
        names=(VOID, *(spelled[k] for k in keys[1:])),
        is_thing=tuple(k in thing for k in keys),
        semantic=tuple(index[class_key(n)] if class_key(n) in stuff else 0 for n in semantic),
        instance=tuple(index[class_key(n)] if class_key(n) in thing else 0 for n in instance),
    )


def _void_keys(semantic: Sequence[str], names: Sequence[str] | None) -> set[str]:
    if names is None:
        return set(VOID_NAMES)
    known = {class_key(n) for n in semantic}
    for name in names:
        if class_key(name) not in known:
            raise UsageError(
                f"--void: {name!r} is not a class of the semantic store "
                f"({', '.join(str(n) for n in semantic)})"
            )
    return {class_key(n) for n in names}


@dataclass(frozen=True)
class InstanceMask:
    """One instance: its mask cropped to ``window``, class (in the instance store's classes),
    score, id in the instance store, and own area (pixels of its whole mask: more than the
    crop holds when the instance method already removed pixels that higher scores took)."""

    window: tuple[slice, slice]
    mask: np.ndarray
    class_index: int
    score: float
    label: int
    area: int


def masks_from_full(
    masks: np.ndarray | Sequence[np.ndarray], class_index: Sequence[int], scores: Sequence[float]
) -> list[InstanceMask]:
    """Instances from whole-image boolean masks (they may overlap); ids 1..n in given order."""
    out = []
    for i, mask in enumerate(masks):
        mask = np.asarray(mask, dtype=bool)
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            continue
        window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        area = int(mask.sum())
        out.append(
            InstanceMask(window, mask[window], int(class_index[i]), float(scores[i]), i + 1, area)
        )
    return out


def masks_from_ids(
    ids: np.ndarray,
    class_index: np.ndarray,
    scores: np.ndarray,
    own_area: np.ndarray | None = None,
) -> list[InstanceMask]:
    """Instances from an instance-id map (id ``k`` = row ``k - 1`` of the per-instance arrays).

    ``own_area``: each instance's whole-mask area when the instance method recorded it; by
    default the pixels it holds in the map.
    """
    ids = np.asarray(ids)
    if ids.size and int(ids.max()) > len(class_index):
        raise ValueError(f"instance id {int(ids.max())} but only {len(class_index)} instances")
    out = []
    for k, window in enumerate(ndimage.find_objects(ids), start=1):
        if window is None:
            continue
        mask = ids[window] == k
        area = int(mask.sum())
        if own_area is not None and np.isfinite(own_area[k - 1]):
            area = max(area, int(own_area[k - 1]))
        out.append(
            InstanceMask(window, mask, int(class_index[k - 1]), float(scores[k - 1]), k, area)
        )
    return out


def merge(
    semantic: np.ndarray,
    instances: Sequence[InstanceMask],
    classes: PanopticClasses,
    *,
    overlap: float = 0.5,
    min_stuff_area: int = 4096,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The panoptic label map (uint32) and its segment table (:func:`segments`).

    ``semantic`` holds class indices of the semantic store; ``instances`` come from
    :func:`masks_from_ids` or :func:`masks_from_full`. Ties in score go to the lower id; NaN
    scores come last.
    """
    semantic = np.asarray(semantic)
    if semantic.size and int(semantic.max()) >= len(classes.semantic):
        raise ValueError(
            f"semantic class {int(semantic.max())} outside its {len(classes.semantic)}"
        )
    labels = np.zeros(semantic.shape, dtype=np.uint32)
    counters = np.zeros(len(classes.names), dtype=np.int64)
    scores: dict[int, tuple[float, int]] = {}
    keys = [(-inst.score if np.isfinite(inst.score) else np.inf, inst.label) for inst in instances]
    for i in sorted(range(len(instances)), key=keys.__getitem__):
        inst = instances[i]
        if not 0 <= inst.class_index < len(classes.instance):
            raise ValueError(f"instance class {inst.class_index} outside its classes")
        unified = classes.instance[inst.class_index]
        if unified == 0:  # not a thing
            continue
        window = labels[inst.window]
        free = inst.mask & (window == 0)
        n_free = int(free.sum())
        own = max(inst.area, int(inst.mask.sum()))
        if n_free == 0 or 1.0 - n_free / own > overlap:
            continue
        counters[unified] += 1
        if counters[unified] >= OFFSET:
            raise ValueError(f"more than {OFFSET - 1} segments of class {classes.names[unified]!r}")
        label = unified * OFFSET + int(counters[unified])
        window[free] = label
        scores[label] = (inst.score, inst.label)
    lookup = np.asarray(classes.semantic, dtype=np.int64)
    left = np.where(labels == 0, lookup[semantic], 0)
    counts = np.bincount(left.ravel(), minlength=len(classes.names))
    for stuff in np.flatnonzero(counts >= max(1, min_stuff_area)):
        if stuff:
            labels[left == stuff] = stuff * OFFSET
    return labels, segments(labels, classes, scores)


def segments(
    labels: np.ndarray,
    classes: PanopticClasses,
    scores: dict[int, tuple[float, int]] | None = None,
) -> dict[str, np.ndarray]:
    """One row per segment (non-zero label) of a panoptic map, in label order.

    Columns: ``label``, ``class``, ``class_index``, ``is_thing``, ``area``, ``centroid_row``,
    ``centroid_col``, ``bbox_min_row``, ``bbox_min_col``, ``bbox_max_row``, ``bbox_max_col``
    (max exclusive), ``score`` (things; NaN for stuff or unknown) and ``instance_label`` (the
    instance's id in the instance store; 0 for stuff or unknown).
    """
    values, inverse = _compact(labels)
    areas = np.bincount(inverse.ravel(), minlength=values.size)
    rr, cc = np.indices(labels.shape, dtype=np.float64)
    row_sum = np.bincount(inverse.ravel(), np.ravel(rr), minlength=values.size)
    col_sum = np.bincount(inverse.ravel(), np.ravel(cc), minlength=values.size)
    windows = ndimage.find_objects(inverse + 1)
    keep = np.flatnonzero(values != 0)
    kinds = (values[keep] // OFFSET).astype(np.int64)
    if kinds.size and int(kinds.max()) >= len(classes.names):
        raise ValueError(
            f"label {int(values[keep].max())} outside the {len(classes.names)} classes"
        )
    boxes = np.array(
        [[w[0].start, w[1].start, w[0].stop, w[1].stop] for w in (windows[i] for i in keep)],
        dtype=np.int64,
    ).reshape(-1, 4)
    scores = scores or {}
    found = [scores.get(int(v), (np.nan, 0)) for v in values[keep]]
    return {
        "label": values[keep].astype(np.int64),
        "class": np.asarray([classes.names[k] for k in kinds], dtype=object),
        "class_index": kinds,
        "is_thing": np.asarray([classes.is_thing[k] for k in kinds], dtype=bool),
        "area": areas[keep].astype(np.int64),
        "centroid_row": row_sum[keep] / np.maximum(areas[keep], 1),
        "centroid_col": col_sum[keep] / np.maximum(areas[keep], 1),
        "bbox_min_row": boxes[:, 0],
        "bbox_min_col": boxes[:, 1],
        "bbox_max_row": boxes[:, 2],
        "bbox_max_col": boxes[:, 3],
        "score": np.asarray([s for s, _ in found], dtype=np.float64),
        "instance_label": np.asarray([k for _, k in found], dtype=np.int64),
    }


def _compact(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the values present, ascending; each pixel's index among them): ``np.unique``'s
    ``return_inverse``, by a lookup table when the values are small (no sort)."""
    top = int(labels.max()) if labels.size else 0
    if top > _LUT_LIMIT:
        values, inverse = np.unique(labels, return_inverse=True)
        return values, inverse.reshape(labels.shape)
    values = np.flatnonzero(np.bincount(labels.ravel(), minlength=1))
    lut = np.zeros(top + 1, dtype=np.intp)
    lut[values] = np.arange(values.size)
    return values.astype(labels.dtype), lut[labels]


def stats_columns(classes: PanopticClasses) -> list[str]:
    """Statistics of a panoptic store: segment statistics (``n_regions``... over segments),
    ``pixels_``/``fraction_`` of every unified class, ``n_`` segments of every thing class,
    then ``seconds``."""
    keys = class_keys(classes.names)
    cols = [*REGION_COLUMNS, *(f"pixels_{k}" for k in keys), *(f"fraction_{k}" for k in keys)]
    cols += [f"n_{keys[i]}" for i in classes.things]
    return [*cols, "seconds"]


def stats_row(segs: dict[str, np.ndarray], size: int, classes: PanopticClasses) -> np.ndarray:
    """The statistics of one panoptic map of ``size`` pixels from its segment table
    (:func:`segments`): every column of :func:`stats_columns` but ``seconds``."""
    n = len(classes.names)
    areas = np.asarray(segs["area"], dtype=np.float64)
    kinds = np.asarray(segs["class_index"], dtype=np.int64)
    regions = (
        [float(areas.size), areas.min(), areas.mean(), areas.max()] if areas.size else [0.0] * 4
    )
    pixels = np.bincount(kinds, weights=areas, minlength=n)
    pixels[0] = size - areas.sum()  # void
    per_class = np.bincount(kinds, minlength=n).astype(np.float64)
    return np.concatenate(
        [regions, pixels, pixels / max(1, size), per_class[classes.things]]
    ).astype(np.float64)
