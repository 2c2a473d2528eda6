"""``run --dry-run``: the plan of a job without pixel work (no cluster, no store written)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict

import numpy as np

from batchseg import store
from batchseg.cluster.profiles import LocalProfile
from batchseg.core.plan import UNREADABLE, Plan, auto_shard_size, extend_plan, plan_shards
from batchseg.core.refcolumns import RefColumns
from batchseg.io.sources import ImageRef
from batchseg.job import append
from batchseg.job.prepare import PreparedJob, check_tiling, prepare_job
from batchseg.job.spec import JobSpec
from batchseg.measure.channels import stack_columns
from batchseg.measure.stats import stats_columns
from batchseg.methods.base import Method
from batchseg.store.table import published_status


class BucketCount(TypedDict):
    shape: list[int]
    images: int
    #: stack jobs: the files' axes and sizes (``TZCYX 2x3x2x512x512``) -> files of that layout
    axes: NotRequired[dict[str, int]]


class TiledImage(TypedDict):
    shape: list[int]
    tiles: int


class ExistingStore(TypedDict):
    """What a dry run finds at the output: the same job (resumable) or another one."""

    same_job: bool
    done: int
    failed: int
    pending: int
    #: the store's method and parameters: only the images differ (``--append`` adds them)
    appendable: NotRequired[bool]
    #: images of the input the store does not hold, and how many it holds already
    new: NotRequired[int]
    stored: NotRequired[int]
    #: stored image ids that are not in the input (an append keeps them)
    gone: NotRequired[list[str]]


class PlanReport(TypedDict):
    """The plan of a job without pixel work (``run --dry-run``; ``--json`` prints it as is)."""

    input: str
    output: str
    method: str
    params: dict[str, Any]
    #: whether a new store of this job gets object tables
    objects: bool
    images: int
    unreadable_headers: int
    headers_read: int
    buckets: int
    largest_buckets: list[BucketCount]
    shard_size: int
    tasks: int
    tiled_images: list[TiledImage]
    table_rows: int
    label_bytes_uncompressed: int
    stats_bytes_uncompressed: int
    existing_store: ExistingStore | None
    #: with ``--append`` to an existing store of this job: the plan is the new images' only
    append: bool
    plan_seconds: float
    #: stack jobs: the channels measured per image and object (empty: none)
    channels: NotRequired[list[str]]


def plan_job(spec: JobSpec, *, header_threads: int = 16) -> PlanReport:
    """The plan of ``spec`` without pixel work (``--dry-run``): buckets, shards, tasks, sizes.

    Headers are read by threads in this process (no cluster); sizes given by a manifest's
    width/height columns are not read at all. With ``--overwrite``, an output that may not be
    replaced is refused here already. With ``--append`` to a store of the same method and
    parameters, only the new images are planned (after the store's shards).
    """
    started = time.perf_counter()
    job = prepare_job(spec)
    spec, method, params = job.spec, job.method, job.params
    existing, stored = _existing_summary(job)
    refs = job.refs if stored is None else append.compare(stored, job.refs).new
    shapes, headers_read = _header_shapes(spec, refs, header_threads)
    threshold = spec.tile_threshold or None
    if stored is None:
        size = spec.shard_size or auto_shard_size(len(refs), _slots(spec))
        plan = plan_shards(refs, shapes, size, tile_threshold=threshold, tile_size=spec.tile_size)
    else:  # only the new images: shards after the store's last
        plan = extend_plan(
            stored,
            refs,
            shapes if shapes is not None else _sizes(refs),
            tile_threshold=threshold,
            tile_size=spec.tile_size,
        )
    check_tiling(plan, method, params)
    first = len(stored.shards) if stored is not None else 0
    tasks = len(plan.shards) - first
    classes = method.classes(params) if method.family != "semantic" else None
    names = job.stacks.channels if job.stacks is not None else ()
    stacks = stack_columns(spec.view.planes, names)
    n_cols = len(
        stats_columns(
            method.kind,
            classes,
            confidence=method.has_confidence,
            objects=job.objects,
            stacks=stacks,
        )
    )
    counts = np.bincount(
        plan.shard_buckets()[first:], weights=plan.lengths()[first:], minlength=len(plan.buckets)
    )
    per_bucket = {i: int(n) for i, n in enumerate(counts.tolist()) if n}
    tiled = [b for b in plan.buckets if b.tile and b.index in per_bucket]
    report: PlanReport = {
        "input": spec.input,
        "output": spec.output,
        "method": method.id,
        "params": params,
        "objects": job.objects,
        "images": sum(per_bucket.values()),
        "unreadable_headers": sum(1 for sh in shapes or () if tuple(sh) == UNREADABLE),
        "headers_read": headers_read,
        "buckets": len(per_bucket),
        "largest_buckets": [
            _bucket_count(plan.buckets[i].height, plan.buckets[i].width, n, job)
            for i, n in sorted(per_bucket.items(), key=lambda kv: -kv[1])[:5]
        ],
        "shard_size": plan.shard_size,
        "tasks": tasks,
        "tiled_images": [{"shape": [b.height, b.width], "tiles": _n_tiles(b)} for b in tiled],
        "table_rows": tasks * plan.shard_size,
        "label_bytes_uncompressed": _label_bytes(plan, per_bucket, method, params),
        "stats_bytes_uncompressed": tasks * plan.shard_size * n_cols * 8,
        "existing_store": existing,
        "append": stored is not None,
        "plan_seconds": round(time.perf_counter() - started, 3),
    }
    if job.stacks is not None:
        report["channels"] = list(names)
    return report


def _bucket_count(height: int, width: int, n: int, job: PreparedJob) -> BucketCount:
    """A shape bucket of the plan: its shape, images and (stack jobs) the files' axes."""
    count: BucketCount = {"shape": [height, width], "images": n}
    if job.stacks is not None:
        count["axes"] = job.stacks.axes_of(height, width)
    return count


def _header_shapes(
    spec: JobSpec, refs: Sequence[ImageRef], threads: int
) -> tuple[list[tuple[int, ...]] | None, int]:
    """Every image's shape: the manifest's, else its header read by ``threads`` threads; and
    how many headers were read. None when columns hold every size (the planner reads them)."""
    from concurrent.futures import ThreadPoolExecutor

    if isinstance(refs, RefColumns) and bool(refs.sized().all()):
        return None, 0
    todo = [r for r in refs if r.height is None or r.width is None]
    threshold = spec.tile_threshold or None

    def header(ref: ImageRef) -> tuple[int, ...]:
        from batchseg.engine.headers import header_of

        found = header_of(ref.uri, spec.max_pixels, threshold)
        return UNREADABLE if isinstance(found, str) else found

    with ThreadPoolExecutor(threads) as pool:
        read = dict(zip((r.image_id for r in todo), pool.map(header, todo), strict=True))
    shapes = [
        (r.height, r.width) if r.height is not None and r.width is not None else read[r.image_id]
        for r in refs
    ]
    return shapes, len(todo)


def _sizes(refs: Sequence[ImageRef]) -> list[tuple[int, ...]]:
    """The sizes the refs carry (every one known)."""
    return [(int(r.height or 0), int(r.width or 0)) for r in refs]


def _slots(spec: JobSpec) -> int:
    """Worker threads the spec's cluster will have (for the automatic shard size)."""
    from batchseg.cluster.connect import default_workers
    from batchseg.cluster.profiles import JobqueueProfile, KubernetesProfile

    profile = spec.profile
    if isinstance(profile, JobqueueProfile):
        return int(profile.max_threads)
    if isinstance(profile, KubernetesProfile):
        return int(profile.n_workers)
    if isinstance(profile, LocalProfile):
        return (profile.workers or default_workers()) * (profile.threads_per_worker or 1)
    return default_workers()


def _label_bytes(
    plan: Plan, per_bucket: dict[int, int], method: Method, params: dict[str, Any]
) -> int:
    label_bytes = 0
    for b in plan.buckets:
        n = per_bucket.get(b.index, 0)
        itemsize = method.label_dtype(params, b.height, b.width).itemsize
        label_bytes += n * b.height * b.width * itemsize * (2 if method.has_confidence else 1)
    return label_bytes


def _existing_summary(job: PreparedJob) -> tuple[ExistingStore | None, Plan | None]:
    """The store at the output (counts of its published rows), and its plan when ``--append``
    adds to it (same method and parameters, other images)."""
    spec = job.spec
    if not store.exists(spec.output) or spec.overwrite:
        return None, None
    root = store.open_group(spec.output, mode="r")
    attrs = store.attributes(root)
    status = published_status(root)
    summary: ExistingStore = {
        "same_job": attrs.get("fingerprint") == job.fingerprint,
        "done": int((status == store.DONE).sum()),
        "failed": int((status == store.FAILED).sum()),
        "pending": int((status == store.PENDING).sum()),
    }
    if summary["same_job"] and not spec.append:
        return summary, None
    stored = store.load_plan(root)
    summary["appendable"] = summary["same_job"] or append.same_job(attrs, stored, job)
    if not spec.append or not summary["appendable"]:
        return summary, None
    change = append.compare(stored, job.refs)
    summary["new"], summary["stored"], summary["gone"] = len(change.new), change.stored, change.gone
    return summary, stored


def _n_tiles(bucket: Any) -> int:
    from batchseg.engine.tiled.grid import grid_shape

    rows, cols = grid_shape((bucket.height, bucket.width), bucket.tile)
    return rows * cols
