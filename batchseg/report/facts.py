"""What a report says about a store, gathered from its attributes and its table only.

No label map is read here: every number comes from the consolidated table (the columns a
report needs, never ``uri``) and the attributes (method, classes, versions, runs), so a report
over 10^6 images costs one column read of the table.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: Failure groups listed (the largest first); the rest are counted.
MAX_FAILURE_GROUPS = 20
#: Failed ids named per group.
IDS_PER_GROUP = 3


@dataclass
class Facts:
    """Everything the report's header, status and distribution sections show."""

    store: str
    method: str
    kind: str
    params: dict[str, Any]
    legend: list[tuple[str, tuple[int, int, int]]]
    versions: dict[str, str]
    created: str
    store_bytes: int | None
    cluster: str
    runs: list[dict[str, Any]]
    counts: dict[str, int]
    failures: list[dict[str, Any]]
    failure_groups_left: int
    table: pd.DataFrame = field(repr=False)  # done rows, the statistic columns only
    sizes: pd.DataFrame = field(repr=False)  # (height, width, images) of every done image
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    #: stack jobs: planes, the channels the method saw and those measured ("" otherwise)
    stacks: str = ""


def gather(view: Any) -> Facts:
    """The facts of the store behind ``view`` (a :class:`batchseg.api.StoreView`)."""
    from batchseg.report.pictures import legend_entries

    attrs = view.attrs
    available = view.columns()
    stats = [c for c in available if _is_statistic(c)]
    table = view.table([c for c in ("error", "height", "width", *stats) if c in available])
    status = table["status"].astype(str)
    counts = {k: int((status == k).sum()) for k in ("done", "failed", "pending", "damaged")}
    counts["images"] = int(len(table))
    failures, left = _failure_groups(table[status == "failed"])
    done = table[status == "done"]
    sizes = (
        done.groupby(["height", "width"], observed=True)
        .size()
        .reset_index(name="images")
        .sort_values("images", ascending=False, kind="stable")
    )
    method = attrs.get("method", {})
    return Facts(
        store=view.path,
        method=str(method.get("id", "?")),
        kind=view.kind,
        params=dict(method.get("params") or {}),
        legend=legend_entries(view, overlay=True),
        versions={str(k): str(v) for k, v in (attrs.get("versions") or {}).items()},
        created=str(attrs.get("created", "")),
        store_bytes=store_size(view.path),
        cluster=describe_cluster(attrs.get("job") or {}),
        runs=[dict(r) for r in attrs.get("runs") or []],
        counts=counts,
        failures=failures,
        failure_groups_left=left,
        table=done[[c for c in stats if c in done]].reset_index(drop=True),
        sizes=sizes.reset_index(drop=True),
        evaluations=[
            {**ev, "worst": ev.get("worst") or worst_images(view, ev)}
            for ev in _evaluations(attrs.get("evaluations"))
        ],
        stacks=describe_stacks(attrs.get("job") or {}, list(attrs.get("channels") or [])),
    )


def describe_stacks(job: dict[str, Any], measured: list[str]) -> str:
    """What a stack job read: planes, projection, the channels the method saw (by name where
    the store records them) and the channels measured; "" for other jobs."""
    parts = []
    if job.get("planes"):
        parts.append(f"every {'/'.join(job['planes'])} plane an image")
    if job.get("project"):
        parts.append(f"z projected by {job['project']}")
    picked = str(job.get("channels") or "")
    if picked == "mean":
        parts.append("the method saw the mean of all channels")
    elif picked:
        names = [
            measured[int(i)] if int(i) < len(measured) else f"channel {i}"
            for i in picked.split(",")
        ]
        rgb = " as RGB" if len(names) == 3 else ""
        parts.append(f"the method saw {', '.join(names)}{rgb}")
    if measured:
        parts.append(f"channels measured: {', '.join(measured)}")
    return "; ".join(parts)


def _is_statistic(name: str) -> bool:
    prefixes = ("pixels_", "fraction_", "n_", "area_", "object_area_")
    return name.startswith(prefixes) or name in ("mean_confidence", "seconds")


def _failure_groups(failed: pd.DataFrame) -> tuple[list[dict[str, Any]], int]:
    """Failed images grouped by error (largest group first): error, count, the first ids."""
    if failed.empty:
        return [], 0
    errors = failed["error"].astype(str).fillna("")
    groups: list[tuple[int, str, list[str]]] = []
    for error, ids in failed.groupby(errors.to_numpy(), sort=False)["image_id"]:
        groups.append((len(ids), str(error), [str(i) for i in ids[:IDS_PER_GROUP]]))
    groups.sort(key=lambda g: (-g[0], g[1]))
    out = [{"error": e, "count": n, "ids": ids} for n, e, ids in groups[:MAX_FAILURE_GROUPS]]
    return out, max(0, len(groups) - MAX_FAILURE_GROUPS)


def store_size(path: str) -> int | None:
    """Bytes on disk under a local store (None for object stores or when unreadable)."""
    from batchseg.store import is_url

    if is_url(path) and not path.startswith("file://"):
        return None
    root = path[len("file://") :] if path.startswith("file://") else path
    total = 0
    try:
        for folder, _, files in os.walk(root):
            for name in files:
                try:
                    total += os.lstat(os.path.join(folder, name)).st_size
                except OSError:
                    continue
    except OSError as exc:
        log.warning("cannot measure the store's size: %s", exc)
        return None
    return total


def describe_cluster(job: dict[str, Any]) -> str:
    """The cluster the job spec asked for, in words (as recorded; later runs may differ)."""
    profile = job.get("cluster") or {}
    if isinstance(profile, dict) and profile.get("profile") not in (None, "local"):
        name = str(profile.get("profile"))
        keys = ("queue", "cores", "memory", "processes", "jobs", "maximum_jobs", "gpus")
        extra = ", ".join(f"{k} {profile[k]}" for k in keys if profile.get(k) is not None)
        return f"{name}" + (f" ({extra})" if extra else "")
    if job.get("scheduler"):
        return f"existing scheduler {job['scheduler']}"
    parts = []
    if job.get("gpus"):
        parts.append(f"{job['gpus']} GPU workers")
    if job.get("workers"):
        parts.append(f"{job['workers']} workers")
    if job.get("threads_per_worker"):
        parts.append(f"{job['threads_per_worker']} threads each")
    return "embedded local cluster" + (f" ({', '.join(parts)})" if parts else "")


def _evaluations(value: Any) -> list[dict[str, Any]]:
    """The store's evaluations (attrs ``evaluations``: name -> entry, or a list of entries),
    each with its ``name``."""
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        return [{**dict(v), "name": str(k)} for k, v in sorted(value.items())]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return []
    return [dict(v) for v in value if isinstance(v, dict)]


def worst_images(view: Any, evaluation: dict[str, Any], n: int = 10) -> list[dict[str, Any]]:
    """The ``n`` worst scored images of an evaluation, by its per-image column
    ``<name>_miou`` (lowest first) or ``<name>_adapted_rand_error`` (highest first)."""
    name = str(evaluation.get("name", ""))
    columns = [str(c) for c in evaluation.get("columns") or []]
    for metric, ascending in (("miou", True), ("adapted_rand_error", False)):
        column = f"{name}_{metric}"
        if column in columns and column in view.columns():
            try:
                table = view.table([column])
            except Exception as exc:  # noqa: BLE001 - the report goes on without the list
                log.warning("cannot read %s: %s", column, exc)
                return []
            scored = table[np.isfinite(table[column].to_numpy(dtype=float, na_value=np.nan))]
            scored = scored.sort_values(column, ascending=ascending, kind="stable").head(n)
            return [
                {"image_id": str(i), metric: float(v)}
                for i, v in zip(scored["image_id"], scored[column], strict=True)
            ]
    return []


def class_pixels(facts: Facts) -> list[tuple[str, int, tuple[int, int, int]]]:
    """(class, pixels over done images, colour) per class of a class map (the ``pixels_*``
    columns are in class order, so the i-th is class i of the legend)."""
    columns = [c for c in facts.table.columns if c.startswith("pixels_")]
    out = []
    for i, column in enumerate(columns):
        name, colour = facts.legend[i] if i < len(facts.legend) else (column[7:], (90, 90, 90))
        out.append((str(name), int(np.nansum(facts.table[column].to_numpy())), colour))
    return out
