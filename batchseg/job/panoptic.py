"""``batchseg panoptic``: merge a semantic store and an instance store of the same images into a
panoptic store, one Dask task per output shard. Resumes like ``run``.

The output has the semantic store's plan (buckets, shards, catalogue), labels
``class_index * 1000 + instance`` (uint32; :mod:`batchseg.measure.panoptic`), per-image class
pixels, fractions and segment counts, and one object row per segment.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import zarr

from batchseg import store
from batchseg.cluster.profiles import LocalProfile, Profile
from batchseg.cluster.settings import ClusterSettings
from batchseg.core.kinds import Kind
from batchseg.core.meta import StoreMeta
from batchseg.core.plan import Plan, Shard
from batchseg.engine.execute import ShardSummary
from batchseg.engine.lifecycle import (
    JobResult,
    ProgressCallback,
    TaskKind,
    finalise,
    run_kind,
    shard_failure,
)
from batchseg.engine.panoptic_shard import (
    PanopticContext,
    PanopticShard,
    Source,
    run_panoptic_shard,
)
from batchseg.errors import StoreError, UsageError
from batchseg.job.provenance import package_versions
from batchseg.job.run import existing_store
from batchseg.measure.panoptic import OFFSET, PanopticClasses, stats_columns, unify_classes
from batchseg.render import default_class_colours
from batchseg.store.lock import LauncherLock, store_lock
from batchseg.store.replace import check_replaceable
from batchseg.words import plural

log = logging.getLogger(__name__)

METHOD_ID = "panoptic"
KIND = "panoptic"


@dataclass(frozen=True)
class PanopticSpec:
    """What ``batchseg panoptic`` was asked to do."""

    semantic: str
    instances: str
    output: str
    things: tuple[str, ...] | None = None  # default: the instance store's classes but 0
    overlap: float = 0.5
    min_stuff_area: int = 4096
    profile: Profile | None = None  # default: an embedded local cluster
    overwrite: bool = False
    void: tuple[str, ...] | None = None  # default: semantic classes named void, background...
    tls_ca_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    @property
    def cluster_settings(self) -> ClusterSettings:
        """Where the workers come from and the TLS files of the link."""
        profile = self.profile if self.profile is not None else LocalProfile()
        return ClusterSettings(profile, self.tls_ca_file, self.tls_cert, self.tls_key)


@dataclass(frozen=True)
class _Source:
    """One opened source store and its images by id."""

    path: str
    root: zarr.Group
    meta: StoreMeta
    infos: dict[str, store.ImageInfo]

    @property
    def store_id(self) -> str | None:
        """The store's id (None in a store written before ids were recorded)."""
        return self.meta.store_id or None

    def where(self, image_id: str) -> Source:
        info = self.infos[image_id]
        return Source(info.row, int(info.bucket["index"]) if info.bucket else -1, info.bucket_row)


def run_panoptic(spec: PanopticSpec, *, on_progress: ProgressCallback | None = None) -> JobResult:
    """Merge ``spec.semantic`` and ``spec.instances`` into ``spec.output`` (see the module)."""
    started = time.perf_counter()
    spec = _checked(spec)
    semantic = _open_source(spec.semantic, Kind.CLASSES, "--semantic")
    instances = _open_source(spec.instances, Kind.INSTANCES, "--instances")
    _same_images(semantic, instances)
    classes = unify_classes(
        semantic.meta.classes,
        instances.meta.classes,
        spec.things,
        spec.void,
    )
    params = {
        "things": [classes.names[i] for i in classes.things],
        "overlap": spec.overlap,
        "min_stuff_area": spec.min_stuff_area,
    }
    fp = _fingerprint(semantic, instances, params, classes)
    if not store.is_url(spec.output):
        os.makedirs(os.path.dirname(os.path.abspath(spec.output)), exist_ok=True)
    with store_lock(spec.output) as lock:
        root = _existing(spec, fp, params, semantic, instances)
        if root is None:
            plan = store.load_plan(semantic.root)
            lock.check()
            root = _create(spec, plan, classes, params, fp, semantic, instances)
        plan = store.load_plan(root)
        todo = _todo(plan, store.shard_status(root))
        if not todo:
            log.info("nothing to do: every image of %s is finished", spec.output)
            times = (0, 0.0, time.perf_counter() - started)
            result = finalise(spec.output, root, plan, times, run=False)
            return replace(result, nothing_to_do=True)
        tasks = [_task(shard, semantic, instances) for shard in todo]
        ctx = PanopticContext(
            output=spec.output,
            output_id=store.read_meta(root, spec.output).store_id,
            semantic=spec.semantic,
            instances=spec.instances,
            shard_size=plan.shard_size,
            buckets=plan.buckets,
            classes=classes,
            overlap=spec.overlap,
            min_stuff_area=spec.min_stuff_area,
            n_columns=len(store.read_meta(root, spec.output).stats_columns),
            instance_objects=instances.meta.objects,
            instance_shard_size=instances.meta.shard_size,
        )
        processed, exec_seconds = _execute(spec, ctx, tasks, root, lock, on_progress)
        lock.check()
        times = (processed, exec_seconds, time.perf_counter() - started)
        return finalise(spec.output, root, plan, times)


def _checked(spec: PanopticSpec) -> PanopticSpec:
    """Numbers in range, and a local output path written plainly."""
    if not 0.0 <= spec.overlap <= 1.0:
        raise UsageError(f"--overlap must be between 0 and 1, got {spec.overlap}")
    if spec.min_stuff_area < 0:
        raise UsageError(f"--min-stuff-area must be >= 0, got {spec.min_stuff_area}")
    output = store.normalise_path(spec.output)
    if not store.is_url(output):
        output = os.path.normpath(output)
    if spec.overwrite:
        check_replaceable(output, inputs=[spec.semantic, spec.instances])
    return replace(spec, output=output)


def _open_source(path: str, kind: Kind, flag: str) -> _Source:
    """A source store, refused (exit 2) unless it holds ``kind`` results."""
    root = store.open_group(path, mode="r")
    meta = store.read_meta(root, path)
    if meta.kind is not kind:
        what = "class maps (a semantic method)" if kind.class_map else "instance results"
        raise UsageError(
            f"{flag} {path} holds {meta.kind} results of {meta.method.id}; {flag} needs {what}"
        )
    infos = {info.image_id: info for info in store.image_infos(root)}
    return _Source(path, root, meta, infos)


def _same_images(semantic: _Source, instances: _Source) -> None:
    """Refuse (one line naming the difference) two stores that hold different images."""
    only_s = sorted(set(semantic.infos) - set(instances.infos))
    only_i = sorted(set(instances.infos) - set(semantic.infos))
    if not only_s and not only_i:
        return
    parts = [
        f"{plural(len(ids), 'image')} only in {src.path} ({_first(ids)})"
        for ids, src in ((only_s, semantic), (only_i, instances))
        if ids
    ]
    raise UsageError(
        f"{semantic.path} and {instances.path} hold different images: {', '.join(parts)}; "
        "panoptic merges two stores of the same images"
    )


def _first(ids: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(ids[:n])
    return shown + (f", ... {len(ids) - n} more" if len(ids) > n else "")


def _fingerprint(
    semantic: _Source, instances: _Source, params: dict[str, Any], classes: PanopticClasses
) -> str:
    identity = {
        "semantic": semantic.store_id,
        "instances": instances.store_id,
        "params": params,
        "classes": list(classes.names),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _existing(
    spec: PanopticSpec, fp: str, params: dict[str, Any], semantic: _Source, instances: _Source
) -> zarr.Group | None:
    """The output store to resume; None when a new one is to be written. Refuses another
    job's store, naming what differs."""
    root = existing_store(spec.output, fp, overwrite=spec.overwrite)
    if root is None:
        return None
    attrs = store.attributes(root)
    if attrs.get("fingerprint") == fp:
        log.info("resuming %s", spec.output)
        return root
    method = attrs.get("method", {})
    if method.get("id") != METHOD_ID:
        why = f"results of {method.get('id')}"
    else:
        old = method.get("params", {})
        why = "; ".join(
            [f"{k} {old.get(k)} -> {v}" for k, v in params.items() if old.get(k) != v]
            + [
                f"{src.path} is not the store it merged (another store id)"
                for key, src in (("semantic", semantic), ("instances", instances))
                if attrs.get("sources", {}).get(key, {}).get("store_id") != src.store_id
            ]
        )
    raise StoreError(
        f"{spec.output} holds another job ({why or 'other classes'}); "
        "use --overwrite to replace it or choose another --output"
    )


def _create(
    spec: PanopticSpec,
    plan: Plan,
    classes: PanopticClasses,
    params: dict[str, Any],
    fp: str,
    semantic: _Source,
    instances: _Source,
) -> zarr.Group:
    """A new output store with the semantic store's plan, all pending."""
    colours = [(0, 0, 0), *default_class_colours(classes.names[1:])]
    meta = {
        "job": {
            "command": "panoptic",
            "semantic": spec.semantic,
            "instances": spec.instances,
            "output": spec.output,
            **params,
        },
        "method": {"id": METHOD_ID, "kind": KIND, "params": params},
        "sources": {
            key: {
                "path": src.path,
                "store_id": src.store_id,
                "method": src.meta.method.id,
            }
            for key, src in (("semantic", semantic), ("instances", instances))
        },
        "classes": list(classes.names),
        "is_thing": list(classes.is_thing),
        "colours": [list(c) for c in colours],
        "label_offset": OFFSET,
        "fingerprint": fp,
        "objects": True,
        "versions": package_versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    root = store.create(
        spec.output,
        plan,
        meta=meta,
        header_errors={},
        label_dtypes=[np.dtype(np.uint32)] * len(plan.buckets),
        stats_columns=stats_columns(classes),
        confidence=False,
        overwrite=spec.overwrite,
        objects=True,
    )
    log.info(
        "created %s: %s in %s, %s",
        spec.output,
        plural(plan.n_images, "image"),
        plural(len(plan.shards), "shard"),
        plural(len(classes.names) - 1, "class", "classes"),
    )
    return root


def _todo(plan: Plan, status: np.ndarray) -> list[Shard]:
    """Shards holding an image pending, damaged or failed (failed ones are retried: a source
    may have finished them since)."""
    wanted = store.needs_work(status, retry_failed=True)
    return [
        s for s in plan.shards if len(s) and wanted[s.index * plan.shard_size :][: len(s)].any()
    ]


def _task(shard: Shard, semantic: _Source, instances: _Source) -> PanopticShard:
    """One output shard: where each image is in both sources, or why it fails at once."""
    reasons = tuple(_reason(i, semantic, instances) for i in shard.image_ids)
    ok = [i if not r else None for i, r in zip(shard.image_ids, reasons, strict=True)]
    return PanopticShard(
        shard,
        tuple(semantic.where(i) if i is not None else None for i in ok),
        tuple(instances.where(i) if i is not None else None for i in ok),
        reasons,
    )


def _reason(image_id: str, semantic: _Source, instances: _Source) -> str:
    """Why ``image_id`` cannot be merged ("" when it can)."""
    for src in (semantic, instances):
        info = src.infos[image_id]
        if info.status != store.DONE:
            detail = f": {info.error}" if info.error else ""
            return f"not done in {src.path} ({store.STATUS_NAMES[info.status]}{detail})"
    a, b = semantic.infos[image_id].bucket, instances.infos[image_id].bucket
    assert a is not None and b is not None  # done images have buckets
    if (a["height"], a["width"]) != (b["height"], b["width"]):
        return (
            f"sizes differ: {a['height']}x{a['width']} in {semantic.path}, "
            f"{b['height']}x{b['width']} in {instances.path}"
        )
    if a.get("tile") or b.get("tile"):
        return f"tiled image ({a['height']}x{a['width']}): panoptic merges ordinary images only"
    return ""


def _execute(
    spec: PanopticSpec,
    ctx: PanopticContext,
    tasks: list[PanopticShard],
    root: zarr.Group,
    lock: LauncherLock,
    on_progress: ProgressCallback | None,
) -> tuple[int, float]:
    """Run ``tasks`` on the cluster; the number of images processed and the seconds."""
    total = sum(len(t.shard) for t in tasks)
    log.info("%s in %s to merge", plural(total, "image"), plural(len(tasks), "shard"))
    lock.check()
    store.invalidate_consolidated(root)
    record_failure = shard_failure(spec.output, ctx.shard_size)
    kind: TaskKind[PanopticShard, ShardSummary] = TaskKind(
        "panoptic", run_panoptic_shard, ctx, _task_key, _task_size, _counts,
        lambda task, reason: record_failure(task.shard, reason),
    )  # fmt: skip
    return run_kind(
        spec.cluster_settings, kind, tasks, output=spec.output, lock=lock, on_progress=on_progress
    )


def _task_key(task: PanopticShard) -> int:
    return task.shard.index


def _task_size(task: PanopticShard) -> int:
    return len(task.shard)


def _counts(task: PanopticShard, summary: ShardSummary) -> tuple[int, int]:
    return summary.done, summary.failed
