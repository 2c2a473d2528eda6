"""One job lifecycle for every capability (segmentation, panoptic merge, evaluation).

A capability is a :class:`TaskKind`: a pure task function run on a worker per item (a shard,
or the images of one) and how its results and failures are recorded. The runner connects
(:mod:`batchseg.engine.runner`: every cluster option, SIGINT handling, bounded submission),
checks the store lock before each record, turns a task that failed after its retries into one
clean line per image, reports progress, and, for the kinds that write a store's rows,
records the run and consolidates the table (:func:`finalise`). Dask is imported only by the
engine, lazily from here.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import zarr

from batchseg import store
from batchseg.core.faults import fault
from batchseg.core.plan import Plan
from batchseg.errors import StoreError, one_line
from batchseg.store.lock import LauncherLock

if TYPE_CHECKING:
    from batchseg.cluster.settings import ClusterSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

ProgressCallback = Callable[[int, int, int], None]  # done, failed, total
#: ``(item, its result or the error of its task)`` as tasks end.
Outcomes = Generator[tuple[Any, Any], None, None]
_KILLED = re.compile(r"on (\d+) different workers.*?was (\S+?)\.?(?:\s|$)", re.DOTALL)


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
    nothing_to_do: bool = False  # a resume of a finished store: no cluster, no run recorded
    added: int = 0  # images this run appended to the store (``--append``)
    gone: int = 0  # stored images no longer in the input (``--append``; they stay stored)

    @property
    def images_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """0 all segmented, 3 some failed or still pending."""
        return 0 if self.failed == 0 and self.pending == 0 else 3


@dataclass(frozen=True)
class TaskKind(Generic[T, R]):
    """What the runner runs: ``fn(ctx, item)`` on a worker per item (pure: it gets all it
    needs from ``ctx`` and the item, and returns counts or scores, never pixels), and how a
    result (``record``: images done and failed) or a failed task (``record_failure``, with a
    clean one-line reason: images failed) is recorded in the launcher."""

    name: str  # task keys: <name>-<token>-<key_of(item)>
    fn: Callable[[Any, T], R]
    ctx: Any
    key_of: Callable[[T], Any]
    size: Callable[[T], int]  # images of an item (progress)
    record: Callable[[T, R], tuple[int, int]]
    record_failure: Callable[[T, str], int]
    #: the tasks write the store: a storage error (OSError) stops the job, results kept
    writes: bool = True
    resources: dict[str, float] | None = None


def failure_reason(exc: BaseException) -> str:
    """The one line recorded for each image of a task that failed after its retries: the
    error's type and message, a worker that kept dying said plainly (no task keys)."""
    if type(exc).__name__ == "KilledWorker":
        found = _KILLED.search(str(exc))
        where = f" on {found.group(1)} workers, the last {found.group(2)}" if found else ""
        return f"KilledWorker: the worker running this task died{where}; see the worker logs"
    return one_line(exc, limit=487)


def drain(
    outcomes: Outcomes,
    kind: TaskKind[Any, Any],
    *,
    output: str,
    lock: LauncherLock,
    total: int,
    on_progress: ProgressCallback | None = None,
) -> int:
    """Record every outcome as it comes (the lock checked first: a lost lock stops the job,
    writing nothing more); the number of images processed. Closed on the way out, so that
    the tasks not yet finished are cancelled."""
    done = failed = 0
    with contextlib.closing(outcomes) as results:
        for item, outcome in results:
            lock.check()
            if kind.writes and isinstance(outcome, OSError):
                raise StoreError(
                    f"cannot write to {output}: {outcome.strerror or outcome}; "
                    "stored results are kept, rerun the same command to resume"
                ) from outcome
            if isinstance(outcome, BaseException):
                reason = failure_reason(outcome)
                log.error("%s task %s failed: %s", kind.name, kind.key_of(item), reason)
                failed += kind.record_failure(item, reason)
            else:
                d, f = kind.record(item, outcome)
                done, failed = done + d, failed + f
            if on_progress is not None:
                on_progress(done, failed, total)
            fault(f"after-shards-{done + failed}")
    return done + failed


def run_kind(
    cluster: ClusterSettings,
    kind: TaskKind[T, Any],
    items: Sequence[T],
    *,
    output: str,
    lock: LauncherLock,
    on_progress: ProgressCallback | None = None,
) -> tuple[int, float]:
    """Connect, run ``kind`` over ``items`` and record the outcomes; images processed and
    the seconds the tasks took."""
    from batchseg.engine import runner  # dask only in the engine and cluster layers

    total = sum(kind.size(i) for i in items)
    with runner.connected(cluster) as handle:
        lock.check()
        started = time.perf_counter()
        outcomes = runner.run_tasks(
            handle.client, kind.fn, kind.ctx, items, name=kind.name, key_of=kind.key_of,
            resources=kind.resources, window=runner.window_size(handle),
        )  # fmt: skip
        processed = drain(
            outcomes, kind, output=output, lock=lock, total=total, on_progress=on_progress
        )
        return processed, time.perf_counter() - started


def shard_failure(output: str, shard_size: int) -> Callable[[Any, str], int]:
    """``record_failure`` of the kinds whose items are shards of a store: the shard's
    unfinished rows become failed with the reason."""

    def record(shard: Any, reason: str) -> int:
        store.record_shard_failure(output, shard_size, shard, reason)
        return len(shard)

    return record


def finalise(
    output: str,
    root: zarr.Group,
    plan: Plan,
    times: tuple[int, float, float],
    *,
    run: bool = True,
) -> JobResult:
    """Count the rows, record this run (unless ``run`` is False) and consolidate the table;
    ``times``: images processed, seconds of the tasks and of the whole run."""
    fault("finalise")
    status = store.shard_status(root)
    done = int((status == store.DONE).sum())
    failed = int((status == store.FAILED).sum())
    pending = int(((status == store.PENDING) | (status == store.DAMAGED)).sum())
    processed, _, seconds = times
    if run:
        record_run(root, times, (done, failed, pending))
    store.consolidate(root, status)  # the status just read, not read again
    return JobResult(output, plan.n_images, done, failed, pending, processed, seconds)


def record_run(
    root: zarr.Group, times: tuple[int, float, float], counts: tuple[int, int, int]
) -> None:
    """Append this run to the store's ``runs`` attribute."""
    processed, exec_seconds, seconds = times
    done, failed, pending = counts
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
