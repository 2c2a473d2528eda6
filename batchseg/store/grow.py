"""Growing a store (``run --append``): new rows, shards and buckets after the last ones.

Shard ``k`` keeps rows ``[k*S, (k+1)*S)``: new shards take rows after the published ones, so
no existing chunk of a label, statistics or status array is written. Growing is two steps:

1. :func:`grow` resizes the per-row arrays (``catalogue/*``, ``stats``) and the label arrays
   of buckets that get new shards along axis 0, creates the arrays of new buckets and writes
   the new catalogue rows (pending, or failed where a header could not be read);
2. :func:`publish` writes the new plan (buckets, ``n_shards``, ``n_images``) and the job's new
   identity in ONE attribute write.

Table reads (:mod:`batchseg.store.table`) and plans (``load_plan``) stop at
:func:`~batchseg.store.layout.published_rows`, so rows past it are invisible until step 2; a
launcher killed in between leaves arrays longer than the published plan, which
:func:`discard_unpublished` cuts back (the next run does it first).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import zarr

from batchseg.core.faults import fault
from batchseg.core.plan import Plan
from batchseg.store.array_meta import META_KEY, record
from batchseg.store.catalogue import catalogue_columns
from batchseg.store.layout import (
    CATALOGUE,
    CLASSES,
    CONFIDENCE,
    EMPTY,
    FAILED,
    LABELS,
    PENDING,
    PYRAMID,
    STATS,
    bucket_array,
    bucket_attrs,
    published_rows,
    pyramid_arrays,
)
from batchseg.store.read import array, attributes, subgroup, update_attributes

log = logging.getLogger(__name__)

#: Groups holding one array per bucket (label maps, confidence, class maps).
_MAP_GROUPS = (LABELS, CONFIDENCE, CLASSES)


def _row_arrays(root: zarr.Group) -> list[zarr.Array]:
    """Every per-row array; ``catalogue/status`` first (the marker of an unpublished growth)."""
    cat = subgroup(root, CATALOGUE)
    names = sorted(cat.array_keys(), key=lambda n: (n != "status", n))
    return [array(cat, n) for n in names] + [array(root, STATS)]


def _resize_rows(arr: zarr.Array, rows: int) -> None:
    if arr.shape[0] != rows:
        arr.resize((rows, *arr.shape[1:]))


def unpublished_rows(root: zarr.Group) -> int:
    """Rows of per-row arrays past the published plan (left by an interrupted growth)."""
    status = array(subgroup(root, CATALOGUE), "status")
    return max(0, status.shape[0] - published_rows(attributes(root)))


def first_image(root: zarr.Group) -> tuple[str, str] | None:
    """``(image_id, uri)`` of row 0 (shard 0's first image), None in a store of no images.

    Enough to tell a store whose ids are whole paths (``image_id == uri``, manifests of
    earlier versions) without reading its catalogue.
    """
    if not int(attributes(root).get("n_images", 0)):
        return None
    cat = subgroup(root, CATALOGUE)
    return str(array(cat, "image_id")[0]), str(array(cat, "uri")[0])


def discard_unpublished(root: zarr.Group) -> bool:
    """Cut the store back to its published plan; False when there was nothing to cut.

    Bucket arrays first, ``catalogue/status`` last, so an interrupted cut is redone.
    """
    if not unpublished_rows(root):
        return False
    attrs = attributes(root)
    buckets = {str(b["name"]): b for b in attrs["buckets"]}
    for group_name in _MAP_GROUPS:
        if group_name not in root:
            continue
        group = subgroup(root, group_name)
        for name in list(group.array_keys()):
            b = buckets.get(name)
            if b is None:
                del group[name]
            elif not b.get("tile"):
                _resize_rows(array(group, name), int(b["n_shards"]) * int(b["shard_size"]))
    if PYRAMID in root:
        pyramids = subgroup(root, PYRAMID)
        for name in list(pyramids.group_keys()):
            if name not in buckets:
                del pyramids[name]
    rows = published_rows(attrs)
    for arr in reversed(_row_arrays(root)):
        _resize_rows(arr, rows)
    log.warning("discarded the rows of an interrupted append (not yet published)")
    return True


def grow(
    root: zarr.Group,
    old: Plan,
    new: Plan,
    *,
    header_errors: Mapping[str, str],
    label_dtypes: Sequence[np.dtype],
    class_map_dtype: np.dtype | None = None,
) -> None:
    """Make room for ``new`` (``old`` plus shards after its last) and write its new rows.

    ``label_dtypes`` has one dtype per bucket of ``new``. Nothing is published: readers and
    resumes still see ``old`` until :func:`publish`.
    """
    discard_unpublished(root)
    rows0, rows1 = old.n_rows, new.n_rows
    for arr in _row_arrays(root):
        _resize_rows(arr, rows1)
    for b in new.buckets:
        if (b.height, b.width) == (0, 0):
            continue
        dtype = label_dtypes[b.index]
        for group_name in _MAP_GROUPS:
            if group_name not in root:
                continue
            group = subgroup(root, group_name)
            if b.index >= len(old.buckets):
                kind = np.dtype(np.uint8) if group_name == CONFIDENCE else dtype
                if group_name == CLASSES and class_map_dtype is not None:
                    kind = class_map_dtype
                bucket_array(group, b, kind)
            elif b.n_shards != old.buckets[b.index].n_shards:
                _resize_rows(array(group, b.name), b.rows)
        if b.tile and b.index >= len(old.buckets):
            pyramid_arrays(root.require_group(PYRAMID).create_group(b.name), b, dtype)
    _write_rows(root, new, len(old.shards), rows0, header_errors)
    fault("appending")


def _write_rows(
    root: zarr.Group, plan: Plan, first_shard: int, rows0: int, header_errors: Mapping[str, str]
) -> None:
    """Catalogue rows of shards ``first_shard..``: status and error whole (pending, failed
    where the header failed), the planner's columns, and the image ids last."""
    cat = subgroup(root, CATALOGUE)
    S = plan.shard_size
    status = np.full(plan.n_rows - rows0, PENDING, dtype=np.int8)
    errors = np.full(status.shape, "", dtype=object)
    for shard in plan.shards[first_shard:]:
        failed = [i for i, image_id in enumerate(shard.image_ids) if image_id in header_errors]
        if failed:  # as a new store writes a shard with header failures
            r0 = shard.index * S - rows0
            status[r0 + len(shard) : r0 + S] = EMPTY
            for i in failed:
                status[r0 + i] = FAILED
                errors[r0 + i] = header_errors[shard.image_ids[i]]
    array(cat, "error")[rows0:] = errors
    array(cat, "status")[rows0:] = status
    columns = catalogue_columns(plan, first_shard)
    for name in ("bucket", "bucket_row", "height", "width", "uri", "image_id"):
        array(cat, name)[rows0:] = columns[name]


def publish(root: zarr.Group, plan: Plan, label_dtypes: Sequence[np.dtype], **changes: Any) -> None:
    """Make the grown ``plan`` the store's (and ``changes``) with one attribute write.

    The consolidated table lacks the new rows, so the same write marks it stale: readers then
    read the per-shard arrays (new rows pending) until the run consolidates again. New arrays
    join the record of array metadata (recorded ones keep their entry).
    """
    known = attributes(root).get(META_KEY)
    if isinstance(known, dict):
        changes[META_KEY] = record(root, known)
    update_attributes(
        root,
        consolidated=False,
        buckets=[bucket_attrs(b, dt) for b, dt in zip(plan.buckets, label_dtypes, strict=True)],
        n_shards=len(plan.shards),
        n_images=plan.n_images,
        **changes,
    )
