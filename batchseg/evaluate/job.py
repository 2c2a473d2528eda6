"""``batchseg evaluate``: score a store against ground truth as a Dask job, store the scores.

One task per store shard (its done images with truth); tasks return per-image values and
confusion sums. Dataset values come from the summed confusion matrix (class maps) or the mean
over images (region and boundary metrics). Instance and panoptic stores are scored against COCO
JSON truth (:mod:`batchseg.evaluate.object_job`): tasks send back RLE detections (one COCOeval
in the launcher) or per-class PQ counts (summed). Results go to the store's evaluations under the
lock (:mod:`batchseg.store.evaluations`): per-image columns ``<name>_<metric>`` in the table,
dataset results in the attributes. Nothing else in the store is written.
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from batchseg import store
from batchseg.cluster.profiles import LocalProfile, Profile
from batchseg.cluster.settings import ClusterSettings
from batchseg.core.kinds import Kind
from batchseg.core.limits import DEFAULT_MAX_PIXELS
from batchseg.core.meta import StoreMeta
from batchseg.engine.lifecycle import TaskKind, run_kind
from batchseg.errors import UsageError
from batchseg.evaluate.coco_truth import is_coco_json, read_coco_truth
from batchseg.evaluate.metrics import class_scores
from batchseg.evaluate.object_job import object_result, truth_items
from batchseg.evaluate.object_score import score_objects
from batchseg.evaluate.score import (
    REGION_METRICS,
    EvalContext,
    Scores,
    check_kind_options,
    score_images,
    warn_two_value_truth,
)
from batchseg.evaluate.truth import match_truth, read_value_map, void_classes
from batchseg.evaluate.truth_store import check_options as check_store_options
from batchseg.evaluate.truth_store import match_truth_store
from batchseg.store.evaluations import evaluations, write_evaluation
from batchseg.store.lock import LauncherLock, store_lock

log = logging.getLogger(__name__)

NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
Progress = Callable[[int, int, int], None]
#: One task's items: ``(image, truth)``, the image's :class:`~batchseg.store.ImageInfo` (where
#: its labels are) and truth file paths (class maps, regions) or an
#: :class:`~batchseg.evaluate.coco_truth.ObjectTruth` (instances, panoptic).
Items = Sequence[tuple[Any, Any]]


@dataclass(frozen=True)
class EvalOptions:
    """What ``batchseg evaluate`` was asked."""

    truth: str
    name: str = "eval"
    pattern: str | None = None
    truth_classes: str | None = None
    ignore: tuple[int, ...] = ()
    tolerance: float | None = None
    profile: Profile = field(default_factory=LocalProfile)
    #: class maps: also score this class's connected components as regions
    components: str | None = None
    #: truth files: pixel limit of a decode (``--max-pixels``)
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    #: class maps: void class names (None: those named void or unlabelled; ("none",): none)
    void: tuple[str, ...] | None = None
    #: region stores: score against the connected components of this truth value
    truth_components: int | None = None
    tls_ca_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    @property
    def cluster_settings(self) -> ClusterSettings:
        """Where the workers come from and the TLS files of the link."""
        return ClusterSettings(self.profile, self.tls_ca_file, self.tls_cert, self.tls_key)

    #: another store as the truth (``--truth-store``; ``truth`` is then empty)
    truth_store: str | None = None


@dataclass
class EvalResult:
    """The dataset result as stored (``result``), and what could not be scored."""

    name: str
    result: dict[str, Any]
    missing: list[str]
    failed: dict[str, str]

    @property
    def exit_code(self) -> int:
        return 3 if self.missing or self.failed else 0


def evaluate_store(
    path: str, options: EvalOptions, on_progress: Progress | None = None
) -> EvalResult:
    """Score the done images of the store at ``path`` against ``options.truth``."""
    if not NAME.fullmatch(options.name):
        raise UsageError(f"--name must match [a-z][a-z0-9_]*, got {options.name!r}")
    root = store.open_group(path, mode="r")
    meta = store.read_meta(root, path)
    kind = meta.kind
    if options.truth_store is not None:
        check_store_options(kind, options.truth, options.pattern, options.truth_classes)
    if kind.object_scored:
        return _evaluate_objects(path, options, root, meta, on_progress)
    if kind not in (Kind.CLASSES, Kind.REGIONS):
        raise UsageError(f"{path} holds {kind} results, which batchseg evaluate cannot score")
    if is_coco_json(options.truth):
        raise UsageError(
            f"COCO JSON truth is for instance and panoptic stores; {path} holds {kind} results "
            "(give a folder of truth images or a CSV image_id,truth_path)"
        )
    classes = meta.classes
    check_kind_options(kind, options.truth_classes, options.void, options.truth_components)
    value_map = read_value_map(options.truth_classes, classes) if options.truth_classes else None
    component = _component_class(options.components, classes, kind)
    plan = store.load_plan(root)
    done = _done(root, plan)
    ids = list(done)
    if options.truth_store is not None:  # scored as a folder of the same label maps would be
        truth: Any = match_truth_store(options.truth_store, ids, Kind.parse(kind), classes)
        value_map = truth.value_map
    else:
        truth = match_truth(options.truth, ids, options.pattern)
    ctx = EvalContext(
        path, kind, classes, value_map, options.ignore, options.tolerance, component,
        max_pixels=options.max_pixels, void=void_classes(options.void, classes),
        truth_components=options.truth_components, truth_store=options.truth_store,
    )  # fmt: skip
    if not truth.files:
        raise UsageError(
            f"no truth found for any of the {len(ids)} done images in {options.truth} "
            "(matched by relative path with any image suffix; see --truth-pattern)"
        )
    tasks = [
        [(done[i], truth.files[i]) for i in s.image_ids if i in truth.files and i in done]
        for s in plan.shards
    ]
    tasks = [t for t in tasks if t]
    with store_lock(path) as lock:
        scores = [*_run(ctx, tasks, options, lock, on_progress), Scores(errors=truth.refused)]
        warn_two_value_truth(scores)
        result = _dataset_result(ctx, options, scores, len(truth.missing))
        _store(path, options.name, ctx, scores, result)
    return _finish(options, result, truth.missing, scores)


def _done(root: Any, plan: Any) -> dict[str, store.ImageInfo]:
    """Where each done image's labels are, in plan (shard) order: one pass over the
    catalogue here, so that tasks never look an image up by id (a scan per image)."""
    done = {i.image_id: i for i in store.image_infos(root) if i.status == store.DONE}
    return {i: done[i] for s in plan.shards for i in s.image_ids if i in done}


def _finish(
    options: EvalOptions, result: dict[str, Any], missing: list[str], scores: Sequence[Scores]
) -> EvalResult:
    failed = {k: v for s in scores for k, v in s.errors.items()}
    for image_id in missing[:10]:
        log.warning("no truth for %s", image_id)
    return EvalResult(options.name, result, missing, failed)


def _evaluate_objects(
    path: str,
    options: EvalOptions,
    root: Any,
    meta: StoreMeta,
    on_progress: Progress | None,
) -> EvalResult:
    """Instance (COCO AP) and panoptic (PQ) stores against COCO JSON truth."""
    kind = meta.kind
    _check_object_options(options, kind)
    classes = meta.classes
    plan = store.load_plan(root)
    done = _done(root, plan)
    ids = list(done)
    truth = read_coco_truth(options.truth, ids, classes)
    if not truth.images:
        raise UsageError(
            f"no truth found for any of the {len(ids)} done images in {options.truth} "
            "(images matched by file_name: relative path with any image suffix)"
        )
    items = truth_items(kind, truth)
    ctx = EvalContext(
        path, kind, classes, scored=tuple(truth.scored_classes), max_pixels=options.max_pixels
    )
    tasks = [
        [(done[i], items[i]) for i in s.image_ids if i in items and i in done] for s in plan.shards
    ]
    tasks = [t for t in tasks if t]
    with store_lock(path) as lock:
        scores = _run(ctx, tasks, options, lock, on_progress)
        result = _base_result(ctx, options, scores, len(truth.missing))
        result.update(object_result(ctx, truth, scores, meta.is_thing))
        _store(path, options.name, ctx, scores, result)
    return _finish(options, result, truth.missing, scores)


def _check_object_options(options: EvalOptions, kind: str) -> None:
    if not is_coco_json(options.truth):
        raise UsageError(
            f"{kind} stores are scored against COCO JSON truth: --truth FILE.json "
            f"(got {options.truth})"
        )
    given = [
        flag
        for flag, value in (
            ("--truth-pattern", options.pattern),
            ("--truth-classes", options.truth_classes),
            ("--ignore", options.ignore or None),
            ("--boundary-tolerance", options.tolerance),
            ("--components", options.components),
            ("--void", options.void),
            ("--truth-components", options.truth_components),
        )
        if value is not None
    ]
    if given:
        raise UsageError(f"{', '.join(given)}: not used for {kind} stores (COCO truth says it all)")


def _component_class(name: str | None, classes: Sequence[str], kind: str) -> int | None:
    if name is None:
        return None
    if not Kind(kind).class_map:
        raise UsageError(
            "--components is for class maps; region stores: --truth-components VALUE scores "
            "them against the connected components of a truth value"
        )
    lowered = [c.lower() for c in classes]
    if name.lower() not in lowered:
        raise UsageError(f"--components: {name!r} is not a class ({', '.join(classes)})")
    return lowered.index(name.lower())


def _run(
    ctx: EvalContext,
    tasks: Sequence[Items],
    options: EvalOptions,
    lock: LauncherLock,
    on_progress: Progress | None,
) -> list[Scores]:
    """Score ``tasks`` on the cluster (the evaluate task kind); every task's scores, an
    image of a task that failed after its retries with the reason as its error."""
    out: list[Scores] = []

    def record(task: tuple[int, Items], scores: Scores) -> tuple[int, int]:
        out.append(scores)
        return len(scores.image_ids), len(scores.errors)

    def record_failure(task: tuple[int, Items], reason: str) -> int:
        out.append(Scores(errors={info.image_id: reason for info, _ in task[1]}))
        return len(task[1])

    kind: TaskKind[tuple[int, Items], Scores] = TaskKind(
        "evaluate", score_task, ctx, _task_key, _task_size, record, record_failure,
        writes=False,  # scores come back; the launcher stores them
    )  # fmt: skip
    run_kind(
        options.cluster_settings, kind, list(enumerate(tasks)), output=ctx.store, lock=lock,
        on_progress=on_progress,
    )  # fmt: skip
    return out


def score_task(ctx: EvalContext, task: tuple[int, Items]) -> Scores:
    """The evaluate task: score one shard's images (run on a worker; no pixels come back)."""
    if Kind(ctx.kind).object_scored:
        return score_objects(ctx, list(task[1]))
    return score_images(ctx, list(task[1]))


def _task_key(task: tuple[int, Items]) -> int:
    return task[0]


def _task_size(task: tuple[int, Items]) -> int:
    return len(task[1])


def _base_result(
    ctx: EvalContext, options: EvalOptions, scores: Sequence[Scores], missing: int
) -> dict[str, Any]:
    """What every evaluation stores: the truth source, the kind, the image counts."""
    n = sum(len(s.image_ids) for s in scores)
    result: dict[str, Any] = {
        "truth": options.truth or options.truth_store,
        "truth_pattern": options.pattern,
        "truth_classes": options.truth_classes,
        "ignore": list(options.ignore),
        "kind": ctx.kind,
        "images_scored": n,
        "images_without_truth": missing,
        "images_failed": sum(len(s.errors) for s in scores),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if options.truth_store is not None:
        result["truth_store"] = options.truth_store
    return result


def _dataset_result(
    ctx: EvalContext, options: EvalOptions, scores: Sequence[Scores], missing: int
) -> dict[str, Any]:
    result = _base_result(ctx, options, scores, missing)
    if Kind(ctx.kind).class_map:
        total = np.zeros((len(ctx.class_names),) * 2, dtype=np.int64)
        for s in scores:
            if s.confusion is not None:
                total += s.confusion
        result.update(class_scores(total, ctx.class_names, ctx.void))
        result["classes"] = list(ctx.class_names)
        result["void"] = [ctx.class_names[c] for c in ctx.void]
        result["confusion_matrix"] = total.tolist()
    if ctx.truth_components is not None:
        result["truth_components"] = ctx.truth_components
    if not Kind(ctx.kind).class_map or ctx.components is not None:
        values = [v for s in scores for v in s.values]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(np.vstack(values), axis=0) if values else None
        for k, metric in enumerate(ctx.metrics):
            if (
                metric in REGION_METRICS and means is not None
            ):  # means over images; class values: from the matrix
                value = means[k]
                result[metric] = None if np.isnan(value) else float(value)
        if options.tolerance is not None:
            result["boundary_tolerance"] = options.tolerance
        else:
            result["boundary_tolerance"] = "0.0075 x image diagonal"
    return result


def _store(path: str, name: str, ctx: EvalContext, scores: Sequence[Scores], result: dict) -> None:
    started = time.perf_counter()
    ids = [i for s in scores for i in s.image_ids]
    metrics = ctx.metrics
    values = (
        np.vstack([v for s in scores for v in s.values]) if ids else np.zeros((0, len(metrics)))
    )
    root = store.open_group(path, mode="r+")
    columns = [f"{name}_{m}" for m in metrics]
    write_evaluation(root, name, ids, columns, values, result)
    log.info(
        "stored evaluation %r: %d images (%.1f s)", name, len(ids), time.perf_counter() - started
    )


def stored(path: str, name: str | None = None) -> dict[str, dict[str, Any]]:
    """Stored evaluations of the store (``name``: that one; UsageError when absent)."""
    found = evaluations(store.open_group(path, mode="r"))
    if name is None:
        return found
    if name not in found:
        have = ", ".join(sorted(found)) or "none"
        raise UsageError(f"{path} has no evaluation {name!r} (evaluations: {have})")
    return {name: found[name]}
