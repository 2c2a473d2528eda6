"""Run a job end to end: discover, plan, execute, finalise. Resumes by default."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import zarr

from batchseg import store
from batchseg.engine.stats import stats_columns
from batchseg.errors import StoreError
from batchseg.io.sources import ImageRef, discover
from batchseg.job.faults import fault
from batchseg.job.plan import UNREADABLE, Plan, Shard, auto_shard_size, plan_shards
from batchseg.job.provenance import package_versions
from batchseg.job.spec import JobSpec
from batchseg.methods import get_method
from batchseg.methods.base import Method
from batchseg.render import default_class_colours
from batchseg.store.lock import store_lock

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, int], None]  # done, failed, total


@dataclass(frozen=True)
class JobResult:
    """Outcome of a run over the whole store (not only this run's shards)."""

    store: str
    images: int
    done: int
    failed: int
    pending: int
    processed: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """0 all segmented, 3 some failed or still pending."""
        return 0 if self.failed == 0 and self.pending == 0 else 3


def _file_identity(value: Any) -> Any:
    """A parameter naming a file (checkpoint, model, classes) is identified by its content."""
    if isinstance(value, str) and value and os.path.isfile(value):
        digest = hashlib.sha256()
        with open(value, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return {"file": value, "sha256": digest.hexdigest()}
    return value


def fingerprint(
    refs: list[ImageRef],
    method: Method,
    params: dict[str, Any],
    tiling: tuple[int, int] | None = None,
) -> str:
    """Identity of a job's inputs, method, parameters and tiling (resume refuses another)."""
    h = hashlib.sha256()
    identity = {k: _file_identity(v) for k, v in params.items() if k not in method.runtime_params}
    job: dict[str, Any] = {"method": method.id, "params": identity}
    if tiling is not None:
        job["tiling"] = list(tiling)
    h.update(json.dumps(job, sort_keys=True, default=str).encode())
    for ref in refs:
        h.update(ref.image_id.encode("utf-8", "surrogateescape") + b"\0")
        h.update(ref.uri.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()


def run_job(spec: JobSpec, *, on_progress: ProgressCallback | None = None) -> JobResult:
    """Run ``spec``; an existing store with the same fingerprint is resumed."""
    started = time.perf_counter()
    method = get_method(spec.method)
    params = method.resolve_params(spec.params)
    refs = discover(spec.input)
    fp = fingerprint(refs, method, params, _tiling(spec))
    if not store.is_url(store.normalise(spec.output)):  # object stores have no folders
        parent = os.path.dirname(os.path.abspath(store.normalise(spec.output)))
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {parent}: {exc.strerror or exc}") from None
    with store_lock(spec.output):
        return _run_locked(spec, method, params, refs, fp, started, on_progress)


def plan_job(spec: JobSpec, *, header_threads: int = 16) -> dict[str, Any]:
    """The plan of ``spec`` without pixel work (``--dry-run``): buckets, shards, tasks, sizes.

    Headers are read by threads in this process (no cluster); sizes given by a manifest's
    width/height columns are not read at all.
    """
    from concurrent.futures import ThreadPoolExecutor

    started = time.perf_counter()
    method = get_method(spec.method)
    params = method.resolve_params(spec.params)
    refs = discover(spec.input)
    fp = fingerprint(refs, method, params, _tiling(spec))
    todo = [r for r in refs if r.height is None or r.width is None]
    threshold = spec.tile_threshold or None

    def header(ref: ImageRef) -> tuple[int, ...]:
        from batchseg.engine.graph import header_of

        found = header_of(ref.uri, spec.max_pixels, threshold)
        return UNREADABLE if isinstance(found, str) else found

    with ThreadPoolExecutor(header_threads) as pool:
        read = dict(zip((r.image_id for r in todo), pool.map(header, todo), strict=True))
    shapes = [
        (r.height, r.width) if r.height is not None and r.width is not None else read[r.image_id]
        for r in refs
    ]
    from batchseg.cluster.connect import default_workers
    from batchseg.cluster.profiles import JobqueueProfile, KubernetesProfile

    profile = spec.profile
    if isinstance(profile, JobqueueProfile):
        slots = profile.max_threads
    elif isinstance(profile, KubernetesProfile):
        slots = profile.n_workers
    else:
        slots = (spec.workers or default_workers()) * (spec.threads_per_worker or 1)
    size = spec.shard_size or auto_shard_size(len(refs), slots)
    plan = plan_shards(refs, shapes, size, tile_threshold=threshold, tile_size=spec.tile_size)
    _check_tiling(plan, method, params)
    classes = method.classes(params) if method.family != "semantic" else None
    n_cols = len(stats_columns(method.kind, classes, confidence=method.has_confidence))
    per_bucket: dict[int, int] = {}
    for shard in plan.shards:
        per_bucket[shard.bucket] = per_bucket.get(shard.bucket, 0) + len(shard)
    label_bytes = 0
    for b in plan.buckets:
        n = per_bucket.get(b.index, 0)
        itemsize = method.label_dtype(params, b.height, b.width).itemsize
        label_bytes += n * b.height * b.width * itemsize * (2 if method.has_confidence else 1)
    existing = None
    if store.exists(spec.output) and not spec.overwrite:
        root = store.open_group(spec.output, mode="r")
        status = store.shard_status(root)
        existing = {
            "same_job": store.attributes(root).get("fingerprint") == fp,
            "done": int((status == store.DONE).sum()),
            "failed": int((status == store.FAILED).sum()),
            "pending": int((status == store.PENDING).sum()),
        }
    return {
        "input": spec.input,
        "output": spec.output,
        "method": method.id,
        "params": params,
        "images": plan.n_images,
        "unreadable_headers": sum(1 for sh in shapes if tuple(sh) == UNREADABLE),
        "headers_read": len(todo),
        "buckets": len(plan.buckets),
        "largest_buckets": [
            {"shape": [plan.buckets[i].height, plan.buckets[i].width], "images": n}
            for i, n in sorted(per_bucket.items(), key=lambda kv: -kv[1])[:5]
        ],
        "shard_size": plan.shard_size,
        "tasks": len(plan.shards),
        "tiled_images": [
            {"shape": [b.height, b.width], "tiles": _n_tiles(b)} for b in plan.buckets if b.tile
        ],
        "table_rows": plan.n_rows,
        "label_bytes_uncompressed": label_bytes,
        "stats_bytes_uncompressed": plan.n_rows * n_cols * 8,
        "existing_store": existing,
        "plan_seconds": round(time.perf_counter() - started, 3),
    }


def _existing_store(spec: JobSpec, fp: str) -> zarr.Group | None:
    """The store to resume, None when a new one is to be written; refuses another job's store."""
    if spec.overwrite or not store.exists(spec.output):
        if not spec.overwrite and store.incomplete_fingerprint(spec.output) == fp:
            log.warning("replacing %s: its creation by this job was interrupted", spec.output)
            store.remove(spec.output)
        elif not spec.overwrite and store.path_exists(spec.output):
            raise StoreError(
                f"{spec.output} exists but is not a complete batchseg store; "
                "use --overwrite to replace it"
            )
        return None
    root = store.open_group(spec.output, mode="r+")
    if store.attributes(root).get("fingerprint") != fp:
        raise StoreError(
            f"{spec.output} holds another job (different inputs, method or parameters); "
            "use --overwrite to replace it or choose another --output"
        )
    return root


def _run_locked(
    spec: JobSpec,
    method: Method,
    params: dict[str, Any],
    refs: list[ImageRef],
    fp: str,
    started: float,
    on_progress: ProgressCallback | None,
) -> JobResult:
    from batchseg.cluster import connect as cluster_mod  # dask only in graph/cluster layers
    from batchseg.engine import graph
    from batchseg.engine.execute import JobContext
    from batchseg.engine.tiled import graph as tiled_graph

    root = _existing_store(spec, fp)
    handle = cluster_mod.connect(
        spec.scheduler,
        workers=spec.workers,
        threads_per_worker=spec.threads_per_worker,
        gpus=spec.gpus,
        tls_ca_file=spec.tls_ca_file,
        tls_cert=spec.tls_cert,
        tls_key=spec.tls_key,
        profile=spec.profile,
    )
    try:
        if handle.dashboard:
            log.info("dashboard: %s", handle.dashboard)
        if root is not None:
            plan = store.load_plan(root)
            log.info("resuming %s", spec.output)
        else:
            plan, root = _plan_and_create(spec, handle, graph, method, params, refs, fp)
        attrs = store.attributes(root)
        status = store.shard_status(root)
        wanted = (status == store.PENDING) | (spec.retry_failed & (status == store.FAILED))
        todo = [
            s for s in plan.shards if len(s) and wanted[s.index * plan.shard_size :][: len(s)].any()
        ]
        classes = attrs.get("classes") or []
        run_params = _runtime_params(method, params, handle)
        resources = (
            cluster_mod.gpu_resources(handle.client) if method.family == "semantic" else None
        )
        ctx = JobContext(
            store=spec.output,
            store_id=attrs["store_id"],
            method_id=method.id,
            params=run_params,
            shard_size=plan.shard_size,
            buckets=plan.buckets,
            label_dtypes=tuple(b["dtype"] for b in attrs["buckets"]),
            n_classes=len(classes),
            n_columns=len(attrs["stats_columns"]),
            max_pixels=spec.max_pixels,
            io_threads=spec.io_threads,
        )
        fault("before-execute")
        total = sum(len(s) for s in todo)
        log.info("%d images in %d shards to process", total, len(todo))
        done = failed = 0
        if todo:
            store.invalidate_consolidated(root)
            graph.warm_workers(handle.client, method.id, run_params, resources)
        exec_start = time.perf_counter()
        tiled = [s for s in todo if plan.buckets[s.bucket].tile]
        small = [s for s in todo if not plan.buckets[s.bucket].tile]

        def outcomes() -> Generator[tuple[Shard, Any], None, None]:
            yield from graph.run_shards(handle.client, ctx, small, resources=resources)
            yield from tiled_graph.run_many(
                handle.client, ctx, tiled, handle.n_threads(), resources=resources
            )

        # closed before the client: an abandoned generator would cancel its tasks later,
        # on a closed client
        with contextlib.closing(outcomes()) as results:
            for shard, outcome in results:
                if isinstance(outcome, OSError):
                    raise StoreError(
                        f"cannot write to {spec.output}: {outcome.strerror or outcome}; "
                        "stored results are kept, rerun the same command to resume"
                    ) from outcome
                if isinstance(outcome, BaseException):
                    _record_task_failure(spec.output, plan, shard, outcome)
                    failed += len(shard)
                else:
                    done += outcome.done
                    failed += outcome.failed
                if on_progress is not None:
                    on_progress(done, failed, total)
                fault(f"after-shards-{done + failed}")
        exec_seconds = time.perf_counter() - exec_start
    finally:
        handle.close()
    return _finalise(spec, root, plan, done + failed, exec_seconds, time.perf_counter() - started)


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


def _plan_and_create(
    spec: JobSpec,
    handle: Any,
    graph: Any,
    method: Method,
    params: dict[str, Any],
    refs: list[ImageRef],
    fp: str,
) -> tuple[Plan, zarr.Group]:
    t0 = time.perf_counter()
    threshold = spec.tile_threshold or None
    headers = graph.scan_headers(handle.client, refs, spec.max_pixels, threshold)
    fault("planning")
    shapes = [h if isinstance(h, tuple) else UNREADABLE for h in headers]
    header_errors = {
        r.image_id: h for r, h in zip(refs, headers, strict=True) if isinstance(h, str)
    }
    size = spec.shard_size or auto_shard_size(len(refs), handle.n_threads())
    plan = plan_shards(refs, shapes, size, tile_threshold=threshold, tile_size=spec.tile_size)
    _check_tiling(plan, method, params)
    classes = method.classes(params)
    columns = stats_columns(method.kind, classes, confidence=method.has_confidence)
    dtypes = [method.label_dtype(params, b.height, b.width) for b in plan.buckets]
    meta = {
        "job": spec.to_dict(),
        "method": {"id": method.id, "kind": method.kind, "family": method.family, "params": params},
        "classes": classes,
        "colours": [list(c) for c in default_class_colours(classes)] if classes else None,
        "fingerprint": fp,
        "versions": package_versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    root = store.create(
        spec.output,
        plan,
        meta=meta,
        header_errors=header_errors,
        label_dtypes=dtypes,
        stats_columns=columns,
        confidence=method.has_confidence,
        overwrite=spec.overwrite,
    )
    log.info(
        "planned %d images: %d shape buckets, %d shards of <= %d (%.1f s)",
        plan.n_images,
        len(plan.buckets),
        len(plan.shards),
        plan.shard_size,
        time.perf_counter() - t0,
    )
    return plan, root


def _tiling(spec: JobSpec) -> tuple[int, int] | None:
    """Tiling settings for the fingerprint; None for the defaults, so stores written before
    tiling existed (whose plans hold no tiled images) still resume."""
    from batchseg.job.plan import DEFAULT_TILE_SIZE, DEFAULT_TILE_THRESHOLD

    settings = (spec.tile_threshold, spec.tile_size)
    return None if settings == (DEFAULT_TILE_THRESHOLD, DEFAULT_TILE_SIZE) else settings


def _n_tiles(bucket: Any) -> int:
    from batchseg.engine.tiled.grid import grid_shape

    rows, cols = grid_shape((bucket.height, bucket.width), bucket.tile)
    return rows * cols


def _check_tiling(plan: Plan, method: Method, params: dict[str, Any]) -> None:
    """A clear error before any work when the plan tiles images this method cannot tile."""
    if any(b.tile for b in plan.buckets):
        from batchseg.methods.tiled import spec_for

        spec_for(method, params)


def _record_task_failure(path: str, plan: Plan, shard: Shard, exc: BaseException) -> None:
    """Mark a shard whose task died (after retries) as failed, with the reason."""
    reason = " ".join(f"task failed: {type(exc).__name__}: {exc}".split())[:500]
    log.error("shard %d failed: %s", shard.index, reason)
    S = plan.shard_size
    rows = slice(shard.index * S, (shard.index + 1) * S)
    root = store.open_group(path, mode="r+")
    status = store.read_array(root, "catalogue/status", rows)
    errors = store.read_array(root, "catalogue/error", rows, dtype=object)
    pending = status == store.PENDING
    redo = pending | (status == store.FAILED)
    redo[len(shard) :] = False
    errors[redo] = reason
    status[redo] = store.FAILED
    store.array(root, "catalogue/error")[rows] = errors
    store.array(root, "catalogue/status")[rows] = status


def _finalise(
    spec: JobSpec, root: zarr.Group, plan: Plan, processed: int, exec_seconds: float, seconds: float
) -> JobResult:
    fault("finalise")
    status = store.shard_status(root)
    done = int((status == store.DONE).sum())
    failed = int((status == store.FAILED).sum())
    pending = int((status == store.PENDING).sum())
    runs = list(store.attributes(root).get("runs", []))
    runs.append(
        {
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "processed": processed,
            "seconds": round(seconds, 3),
            "execute_seconds": round(exec_seconds, 3),
            "images_per_second": round(processed / seconds, 3) if seconds > 0 else 0.0,
            "done": done,
            "failed": failed,
            "pending": pending,
        }
    )
    store.update_attributes(root, runs=runs)
    store.consolidate(root, status)  # the status just read, not read again
    return JobResult(spec.output, plan.n_images, done, failed, pending, processed, seconds)
