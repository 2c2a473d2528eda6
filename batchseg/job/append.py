"""``run --append``: add the images of a grown input to an existing store.

Identity rule: a store's fingerprint is always :func:`~batchseg.job.fingerprint.fingerprint`
of the images it holds (sorted by id), with its method, parameters, tiling and object tables.
An append publishes the fingerprint of the grown set, so the same store is what a fresh run
over that set would have made its identity: a plain rerun over the grown input resumes, and
the same ``--append`` command rerun after a crash finds nothing new and resumes. Whether a
new job has the store's method and parameters is checked by recomputing the stored
fingerprint from the store's own rows with the new method and parameters: it holds for
stores written by every earlier version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from batchseg import store
from batchseg.core.kinds import Kind
from batchseg.core.plan import UNREADABLE, Plan, extend_plan
from batchseg.errors import StoreError
from batchseg.io.sources import ImageRef, local_uri
from batchseg.job.fingerprint import describe_difference, fingerprint_pairs, tiling_identity
from batchseg.job.prepare import PreparedJob, check_tiling
from batchseg.methods.base import smallest_uint
from batchseg.store import grow as growing
from batchseg.store.lock import LauncherLock
from batchseg.words import plural

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputChange:
    """How an input differs from the images a store holds (matched by image id)."""

    stored: int  # images the store holds
    new: list[ImageRef]  # input images the store does not hold yet
    gone: list[str]  # stored image ids that are not in the input (they stay stored)
    moved: int  # ids in both whose input path differs (the stored image stays as it is)

    def describe(self) -> str:
        """One line: how many are new, already stored, gone and moved."""
        text = (
            f"{plural(len(self.new), 'new image')}, {self.stored - len(self.gone)} already "
            f"stored, {plural(len(self.gone), 'stored image')} no longer in the input (kept)"
        )
        return text + (f", {self.moved} at another path (kept as stored)" if self.moved else "")


def stored_pairs(plan: Plan) -> list[tuple[str, str]]:
    """``(image_id, uri)`` of every image of a stored plan, sorted by id."""
    pairs = [p for s in plan.shards for p in zip(s.image_ids, s.uris, strict=True)]
    pairs.sort(key=lambda p: p[0])
    return pairs


def same_job(attrs: dict[str, Any], plan: Plan, job: PreparedJob) -> bool:
    """Whether ``job`` has the stored job's method, parameters, tiling and object tables."""
    return _fingerprint(stored_pairs(plan), job) == attrs.get("fingerprint")


def _fingerprint(pairs: list[tuple[str, str]], job: PreparedJob) -> str:
    tiling = tiling_identity(job.spec)
    stacks = job.spec.view.record()
    return fingerprint_pairs(pairs, job.method, job.params, tiling, job.objects, stacks)


def compare(plan: Plan, refs: Sequence[ImageRef]) -> InputChange:
    """What ``refs`` add to and lack from the images of ``plan``."""
    stored = dict(p for s in plan.shards for p in zip(s.image_ids, s.uris, strict=True))
    if stored and all(i == u for i, u in stored.items()) and any(r.image_id != r.uri for r in refs):
        # a store of an earlier version, whose manifest ids were whole paths: keep its ids
        refs = sorted((r._replace(image_id=r.uri) for r in refs), key=lambda r: r.image_id)
    new = [r for r in refs if r.image_id not in stored]
    seen = {r.image_id for r in refs}
    gone = sorted(i for i in stored if i not in seen)
    moved = sum(1 for r in refs if not _same_uri(stored.get(r.image_id, r.uri), r.uri))
    return InputChange(len(stored), new, gone, moved)


def _same_uri(stored: str, uri: str) -> bool:
    """Whether a stored uri names ``uri``'s file (one recorded as spelled, ``a/../a/x.png``,
    by a version that did not normalise local uris, names ``a/x.png``)."""
    return stored == uri or ("://" not in stored and local_uri(stored) == uri)


def refusal(job: PreparedJob, attrs: dict[str, Any], plan: Plan, *, same: bool) -> StoreError:
    """The one-line refusal of a store holding another job, naming what differs.

    ``same``: the method and parameters are the store's, only the images differ; the line then
    names ``--append``. With ``--append`` a refusal names only the method, parameters, tiling
    or object tables (the images are meant to differ).
    """
    spec = job.spec
    pairs = stored_pairs(plan)
    refs = [ImageRef(i, u) for i, u in pairs] if spec.append else job.refs
    tiling = tiling_identity(spec)
    difference = describe_difference(
        attrs, pairs, refs, job.method, job.params, tiling, job.objects, job.spec.view.record()
    )
    if same:
        hint = (
            "use --append to add the input's new images and keep the stored ones, "
            "--overwrite to replace it, or choose another --output"
        )
    elif spec.append:
        hint = "an append must use the store's method and parameters; use --overwrite or "
        hint += "choose another --output"
    else:
        hint = "use --overwrite to replace it or choose another --output"
    return StoreError(f"{spec.output} holds another job ({difference}); {hint}")


def grow_store(
    job: PreparedJob,
    lock: LauncherLock,
    handle: Any,
    root: zarr.Group,
    plan: Plan,
    change: InputChange,
) -> Plan:
    """Plan the new images after ``plan``, grow the store and publish it (one attribute
    write); the grown plan. Headers of the new images are read on the cluster."""
    spec, method, params = job.spec, job.method, job.params
    t0 = time.perf_counter()
    if spec.shard_size and spec.shard_size != plan.shard_size:  # table rows are per shard
        log.info("the store's shard size %d is kept for its new shards", plan.shard_size)
    from batchseg.engine.headers import scan_headers  # dask only in graph/cluster layers

    threshold = spec.tile_threshold or None
    headers = scan_headers(handle.client, change.new, spec.max_pixels, threshold)
    shapes = [h if isinstance(h, tuple) else UNREADABLE for h in headers]
    header_errors = {
        r.image_id: h for r, h in zip(change.new, headers, strict=True) if isinstance(h, str)
    }
    grown = extend_plan(
        plan, change.new, shapes, tile_threshold=threshold, tile_size=spec.tile_size
    )
    check_tiling(grown, method, params)
    attrs = store.attributes(root)
    dtypes = [np.dtype(b["dtype"]) for b in attrs["buckets"]]
    dtypes += [method.label_dtype(params, b.height, b.width) for b in grown.buckets[len(dtypes) :]]
    classes = method.classes(params)
    lock.check()
    growing.grow(
        root,
        plan,
        grown,
        header_errors=header_errors,
        label_dtypes=dtypes,
        class_map_dtype=smallest_uint(len(classes or []))
        if Kind(method.kind) is Kind.INSTANCES
        else None,
    )
    record = {
        "input": spec.input,
        "added": len(change.new),
        "gone": len(change.gone),
        "moved": change.moved,
        "first_shard": len(plan.shards),
        "shards": len(grown.shards) - len(plan.shards),
    }
    lock.check()
    growing.publish(
        root,
        grown,
        dtypes,
        fingerprint=_fingerprint(stored_pairs(grown), job),
        appends=[*attrs.get("appends", []), record],
    )
    log.info(
        "appended %s in %s after shard %d: %s in all (%.1f s)",
        plural(len(change.new), "image"),
        plural(len(grown.shards) - len(plan.shards), "new shard"),
        len(plan.shards) - 1,
        plural(grown.n_images, "image"),
        time.perf_counter() - t0,
    )
    return grown
