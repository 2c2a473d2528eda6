"""Run a job end to end: discover, plan, execute, finalise. Resumes by default."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Generator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import zarr

from batchseg import store
from batchseg.core.faults import fault
from batchseg.core.kinds import Kind
from batchseg.core.plan import UNREADABLE, Plan, Shard, auto_shard_size, plan_shards
from batchseg.core.refcolumns import RefColumns
from batchseg.core.shard_table import ShardSelection, pending_shards
from batchseg.engine.lifecycle import (
    JobResult,
    ProgressCallback,
    TaskKind,
    drain,
    finalise,
    shard_failure,
)
from batchseg.errors import StoreError, UsageError
from batchseg.job import append
from batchseg.job.prepare import PreparedJob, check_overwrite, check_tiling, prepare_job
from batchseg.job.provenance import check_workers, method_record, package_versions
from batchseg.job.spec import JobSpec
from batchseg.measure.channels import stack_columns
from batchseg.measure.stats import stats_columns
from batchseg.methods.base import Method, smallest_uint
from batchseg.render import default_class_colours, read_class_colours
from batchseg.store import grow as growing
from batchseg.store.lock import LauncherLock, store_lock
from batchseg.words import plural

log = logging.getLogger(__name__)


def run_job(spec: JobSpec, *, on_progress: ProgressCallback | None = None) -> JobResult:
    """Run ``spec``; an existing store with the same fingerprint is resumed."""
    started = time.perf_counter()
    ready = prepare_job(spec)
    spec = ready.spec
    if not store.is_url(store.normalise_path(spec.output)):  # object stores have no folders
        parent = os.path.dirname(os.path.abspath(store.normalise_path(spec.output)))
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {parent}: {exc.strerror or exc}") from None
    with store_lock(spec.output) as lock:
        job = _Job(
            spec,
            ready.method,
            ready.params,
            ready.refs,
            ready.fingerprint,
            ready.objects,
            ready.stacks,
            lock,
        )
        return _run_locked(job, started, on_progress)


def existing_store(output: str, fingerprint: str, *, overwrite: bool) -> zarr.Group | None:
    """The store at ``output`` opened for writing, or None when a new one is to be written:
    nothing is there, ``overwrite``, or this job's own creation was interrupted (removed
    here). Anything else at ``output`` that is not a complete store is refused; whether an
    existing store is this job's is the caller's to decide."""
    if overwrite or not store.exists(output):
        if not overwrite and store.incomplete_fingerprint(output) == fingerprint:
            log.warning("replacing %s: its creation by this job was interrupted", output)
            store.remove(output)
        elif not overwrite and store.path_exists(output):
            raise StoreError(
                f"{output} exists but is not a complete batchseg store; "
                "use --overwrite to replace it"
            )
        return None
    return store.open_group(output, mode="r+")


def _existing_store(job: _Job) -> tuple[zarr.Group, Plan] | None:
    """The store to resume (or append to) and its plan, None when a new one is to be written;
    refuses another job's store, naming what differs."""
    spec, fp = job.spec, job.fingerprint
    root = existing_store(spec.output, fp, overwrite=spec.overwrite)
    if root is None:
        return None
    attrs = store.attributes(root)
    plan = store.load_plan(root)
    if attrs.get("fingerprint") != fp:
        same = append.same_job(attrs, plan, job)
        if not (same and spec.append):
            raise append.refusal(job, attrs, plan, same=same)
    return root, plan


@dataclass(frozen=True)
class _Job(PreparedJob):
    """What a locked run works with: the prepared job and the launcher's lock."""

    lock: LauncherLock


def _run_locked(job: _Job, started: float, on_progress: ProgressCallback | None) -> JobResult:
    from batchseg.cluster.local import METHOD_ENV  # dask only in graph/cluster layers
    from batchseg.engine import runner

    spec = job.spec
    existing = _existing_store(job)
    change = None
    if existing is not None:
        root, plan = existing
        change = _input_change(job, root, plan)
        if not (change and change.new) and not _todo(
            plan, store.shard_status(root), spec.retry_failed
        ):
            # nothing to segment: no cluster, no run of 0 images recorded
            log.debug("nothing to do: every image of %s is finished", spec.output)  # run prints it
            job.lock.check()
            times = (0, 0.0, time.perf_counter() - started)
            result = finalise(spec.output, root, plan, times, run=False)
            gone = len(change.gone) if change else 0
            return replace(result, nothing_to_do=True, gone=gone)
    scan = _start_header_scan(job) if existing is None else None
    try:
        early = _refuse_tiling_early(job, scan)
        with runner.connected(
            spec.cluster_settings, worker_env={METHOD_ENV: job.method.id}
        ) as handle:
            check_workers(handle.client, job.method, scan)  # a plug-in or function must load
            warming = _start_warm(job, handle)
            if scan is not None:
                headers = early if early is not None else scan.finish(handle.client)
                plan, root = _plan_and_create(job, handle, headers)
            elif change is not None and change.new:
                plan = append.grow_store(job, job.lock, handle, root, plan, change)
            else:
                log.info("resuming %s", spec.output)
            todo = _todo(plan, store.shard_status(root), spec.retry_failed)
            processed, exec_seconds = _execute(job, handle, plan, root, todo, on_progress, warming)
    finally:
        if scan is not None:
            scan.close()  # stops the launcher's header threads (nothing once finished)
    job.lock.check()  # finalising writes the store's attributes
    times = (processed, exec_seconds, time.perf_counter() - started)
    result = finalise(spec.output, root, plan, times)
    if change is None:
        return result
    return replace(result, added=len(change.new), gone=len(change.gone))


def _start_warm(job: _Job, handle: Any) -> list[Any]:
    """Begin loading the model in the workers while the launcher plans (no runner: none)."""
    if job.method.make_runner is None:
        return []
    from batchseg.cluster import connect as cluster_mod
    from batchseg.engine import graph

    params = _runtime_params(job.method, job.params, handle)
    gpu = cluster_mod.gpu_resources(handle.client) if job.method.uses_gpu else None
    return graph.start_warm(handle.client, job.method.id, params, gpu)


def _input_change(job: _Job, root: zarr.Group, plan: Plan) -> append.InputChange | None:
    """With ``--append`` to a store of other images: what the input adds and lacks. Rows of
    an interrupted append (never published) are discarded first, with or without it."""
    job.lock.check()
    growing.discard_unpublished(root)
    if not job.spec.append or store.attributes(root).get("fingerprint") == job.fingerprint:
        return None
    change = append.compare(plan, job.refs)
    log.info("appending to %s: %s", job.spec.output, change.describe())
    return change


def _todo(plan: Plan, status: Any, retry_failed: bool) -> ShardSelection:
    """Shards holding an image still pending (or failed, with ``retry_failed``); each shard
    is made only when the runner submits it."""
    return pending_shards(plan, store.needs_work(status, retry_failed=retry_failed))


def _execute(
    job: _Job,
    handle: Any,
    plan: Plan,
    root: zarr.Group,
    todo: ShardSelection,
    on_progress: ProgressCallback | None,
    warming: list[Any] | None = None,
) -> tuple[int, float]:
    """Run ``todo`` on the cluster; images processed and seconds. Stops (StoreError) when the
    store cannot be written or the launcher lost its lock."""
    from batchseg.cluster import connect as cluster_mod
    from batchseg.engine import graph, runner
    from batchseg.engine.execute import run_shard
    from batchseg.engine.tiled import graph as tiled_graph

    spec, method = job.spec, job.method
    run_params = _runtime_params(method, job.params, handle)
    resources = cluster_mod.gpu_resources(handle.client) if method.uses_gpu else None
    ctx = _context(job, plan, store.attributes(root), run_params)
    fault("before-execute")
    total = todo.images()
    log.info("%s in %s to process", plural(total, "image"), plural(len(todo), "shard"))
    if todo:
        job.lock.check()
        store.invalidate_consolidated(root)
        graph.warm_workers(handle.client, method.id, run_params, resources, started=warming or ())
    exec_start = time.perf_counter()
    huge = np.array([b.tile > 0 for b in plan.buckets], dtype=bool)[plan.shard_buckets()]
    tiled, small = list(todo.where(huge)), todo.where(~huge)
    kind: TaskKind[Shard, Any] = TaskKind(
        "shard", run_shard, ctx, graph.shard_key, len, _counts,
        shard_failure(spec.output, plan.shard_size), resources=resources,
    )  # fmt: skip

    def outcomes() -> Generator[tuple[Shard, Any], None, None]:
        window = runner.window_size(handle)
        yield from graph.run_shards(handle.client, ctx, small, resources=resources, window=window)
        yield from tiled_graph.run_many(
            handle.client, ctx, tiled, handle.n_threads(), resources=resources
        )

    # closed before the client: an abandoned generator would cancel its tasks later,
    # on a closed client (leaving it by an exception cancels what is not done)
    processed = drain(
        outcomes(), kind, output=spec.output, lock=job.lock, total=total, on_progress=on_progress
    )
    return processed, time.perf_counter() - exec_start


def _counts(shard: Shard, summary: Any) -> tuple[int, int]:
    """A shard task's images done and failed."""
    return summary.done, summary.failed


def _context(job: _Job, plan: Plan, attrs: dict[str, Any], run_params: dict[str, Any]) -> Any:
    """What every task of the job gets (shipped once)."""
    from batchseg.engine.execute import JobContext

    return JobContext(
        store=job.spec.output,
        # the workers' cache key of opened arrays: it changes when an append grows them
        store_id=f"{attrs['store_id']}-{attrs['n_shards']}",
        method_id=job.method.id,
        params=run_params,
        shard_size=plan.shard_size,
        buckets=plan.buckets,
        label_dtypes=tuple(b["dtype"] for b in attrs["buckets"]),
        n_classes=len(attrs.get("classes") or []),
        n_columns=len(attrs["stats_columns"]),
        objects=bool(attrs.get("objects", False)),
        class_dtype=smallest_uint(len(attrs.get("classes") or [])).str
        if Kind(job.method.kind) is Kind.INSTANCES
        else None,
        class_names=tuple(attrs.get("classes") or ()),
        max_pixels=job.spec.max_pixels,
        io_threads=job.spec.io_threads,
        view=job.spec.view if job.spec.view.active else None,
        channel_names=tuple(attrs.get("channels") or ()),
    )


def _channel_names(job: _Job) -> tuple[str, ...]:
    """The channels a new store of this job measures (none without stack options)."""
    return job.stacks.channels if job.stacks is not None else ()


def _stack_record(job: _Job) -> dict[str, Any]:
    """What a stack job records beside its spec: the channels measured, the layouts found,
    the geo-referencing tags of its rasters (only for stack jobs: other stores unchanged)."""
    if job.stacks is None:
        return {}
    record: dict[str, Any] = {
        "channels": list(job.stacks.channels),
        "layouts": dict(job.stacks.layouts),
    }
    if job.stacks.geo:
        record["geo"] = job.stacks.geo
    return record


def _runtime_params(method: Method, params: dict[str, Any], handle: Any) -> dict[str, Any]:
    """Parameters as tasks get them: torch threads sized so worker processes share the cores."""
    if method.family != "semantic" or params.get("threads"):
        return params
    from batchseg.cluster.connect import default_workers

    info = handle.client.scheduler_info(n_workers=-1).get("workers", {})
    per_host: dict[str, int] = {}
    for w in info.values():
        host = str(w.get("host", ""))
        per_host[host] = per_host.get(host, 0) + int(w.get("nthreads", 1))
    busiest = max(per_host.values(), default=1)
    on_this_host = handle.owned and getattr(handle, "local", True)
    threads = max(1, default_workers() // busiest) if on_this_host else 1
    return {**params, "threads": threads}


def _start_header_scan(job: _Job) -> Any:
    """Begin reading the headers: on this machine while an embedded cluster starts (its
    workers read the same files), on the cluster only when attaching to another one."""
    from batchseg.cluster.profiles import LocalProfile
    from batchseg.engine.headers import HeaderScan

    spec = job.spec
    local = isinstance(spec.profile, LocalProfile)
    return HeaderScan(job.refs, spec.max_pixels, spec.tile_threshold or None, local=local)


def _refuse_tiling_early(job: _Job, scan: Any) -> list[Any] | None:
    """When these parameters have no tiled form, read the headers on this machine before any
    cluster starts (embedded clusters only) and refuse, naming every reason, if an image would
    be tiled; the headers read, or None when the scan goes on as usual."""
    from batchseg.cluster.profiles import LocalProfile
    from batchseg.methods.tiled import spec_for, tiling_refusals

    spec = job.spec
    if scan is None or not spec.tile_threshold or not isinstance(spec.profile, LocalProfile):
        return None
    if not tiling_refusals(job.method, job.params):
        return None
    try:
        headers: list[Any] | None = scan.finish(None)
    except BaseException:
        scan.close()
        raise
    threshold = spec.tile_threshold
    if headers is None:  # every size from the manifest's columns (a scan of RefColumns)
        refs = job.refs
        if isinstance(refs, RefColumns):
            pixels = refs.heights.astype(np.int64) * refs.widths.astype(np.int64)
            if bool((pixels > threshold).any()):
                spec_for(job.method, job.params)
        return None
    # (h, w) from a manifest, or (h, w, windowed) above the threshold: tiled as plan_shards does
    if any(isinstance(h, tuple) and h[0] * h[1] > threshold and h[2:] != (False,) for h in headers):
        spec_for(job.method, job.params)  # raises, naming every reason in one line
    return headers


def _plan_and_create(job: _Job, handle: Any, headers: list[Any] | None) -> tuple[Plan, zarr.Group]:
    """Plan from the images' ``headers`` (None: the sizes of the manifest's columns) and
    create the store (all pending)."""
    spec, method, params, refs, fp = job.spec, job.method, job.params, job.refs, job.fingerprint
    t0 = time.perf_counter()
    threshold = spec.tile_threshold or None
    fault("planning")
    shapes, header_errors = None, {}
    if headers is not None:
        shapes = [h if isinstance(h, tuple) else UNREADABLE for h in headers]
        header_errors = {
            r.image_id: h for r, h in zip(refs, headers, strict=True) if isinstance(h, str)
        }
    size = spec.shard_size or auto_shard_size(len(refs), handle.n_threads())
    plan = plan_shards(refs, shapes, size, tile_threshold=threshold, tile_size=spec.tile_size)
    check_tiling(plan, method, params)
    if job.stacks is not None and any(b.tile for b in plan.buckets):
        raise UsageError("stack jobs are not tiled: raise --tile-threshold above the plane size")
    classes = method.classes(params)
    columns = stats_columns(
        method.kind,
        classes,
        confidence=method.has_confidence,
        objects=job.objects,
        stacks=stack_columns(spec.view.planes, _channel_names(job)),
    )
    dtypes = [method.label_dtype(params, b.height, b.width) for b in plan.buckets]
    meta = {
        "job": spec.to_dict(),
        "method": method_record(method, params),
        "classes": classes,
        "colours": [list(c) for c in _colours(spec, classes)] if classes else None,
        "fingerprint": fp,
        "objects": job.objects,
        "versions": package_versions(),
        **_stack_record(job),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    job.lock.check()
    if spec.overwrite:
        check_overwrite(spec)  # again, under the lock, right before replacing
    root = store.create(
        spec.output,
        plan,
        meta=meta,
        header_errors=header_errors,
        label_dtypes=dtypes,
        stats_columns=columns,
        confidence=method.has_confidence,
        overwrite=spec.overwrite,
        objects=job.objects,
        class_map_dtype=smallest_uint(len(classes or []))
        if Kind(method.kind) is Kind.INSTANCES
        else None,  # instance methods: the class of every instance pixel
    )
    log.info(
        "planned %s: %s, %s of <= %d (%.1f s)",
        plural(plan.n_images, "image"),
        plural(len(plan.buckets), "shape bucket"),
        plural(len(plan.shards), "shard"),
        plan.shard_size,
        time.perf_counter() - t0,
    )
    return plan, root


def _colours(spec: JobSpec, classes: list[str]) -> list[tuple[int, int, int]]:
    """The classes' colours: ``--colors FILE.csv`` where given, the defaults elsewhere."""
    if spec.colors:
        return read_class_colours(spec.colors, classes)
    return default_class_colours(classes)
