"""The job runner's Dask part: connect to the workers and run a task kind over its items.

:func:`connected` is the one place a job connects: every cluster option
(:class:`~batchseg.cluster.settings.ClusterSettings`: profile, TLS), with the worker processes
started while SIGINT is ignored, so that a terminal's Ctrl-C reaches only the launcher.
:func:`run_tasks` submits a pure task function per item with a bounded window of tasks on the
scheduler, and yields each item's result (or its error) as it ends. The lifecycle around both
(store lock, progress, failure recording, run record) is :mod:`batchseg.engine.lifecycle`'s.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from distributed import Client, as_completed

from batchseg.cluster.connect import connect
from batchseg.cluster.forkserver import children_ignore_sigint
from batchseg.cluster.handle import ClusterHandle
from batchseg.cluster.settings import ClusterSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

#: The fewest tasks kept on the scheduler at once; more with more worker threads
#: (:func:`window_size`), so that no worker waits for the launcher to submit the next one.
MIN_WINDOW = 32
#: Tasks kept on the scheduler per worker thread.
TASKS_PER_THREAD = 4


def context_task(ctx: T) -> T:
    """The job context as a task's result (see :func:`run_tasks`)."""
    return ctx


@contextmanager
def connected(
    settings: ClusterSettings, *, worker_env: dict[str, str] | None = None
) -> Iterator[ClusterHandle]:
    """The job's cluster for the ``with`` block: attached or started as ``settings`` say
    (worker processes start with SIGINT ignored), closed at the end (batch jobs cancelled)."""
    with children_ignore_sigint():
        handle = connect(
            settings.profile,
            tls_ca_file=settings.tls_ca_file,
            tls_cert=settings.tls_cert,
            tls_key=settings.tls_key,
            worker_env=worker_env,
        )
    try:
        if handle.dashboard:
            log.info("dashboard: %s", handle.dashboard)
        yield handle
    finally:
        handle.close()


def window_size(handle: ClusterHandle) -> int:
    """Tasks kept on the scheduler at once for the cluster of ``handle``."""
    return max(MIN_WINDOW, TASKS_PER_THREAD * handle.n_threads())


def run_tasks(
    client: Client,
    fn: Callable[[Any, T], R],
    ctx: Any,
    items: Sequence[T],
    *,
    name: str,
    key_of: Callable[[T], Any],
    retries: int = 2,
    resources: dict[str, float] | None = None,
    window: int | None = None,
) -> Generator[tuple[T, R | BaseException], None, None]:
    """Run ``fn(ctx, item)`` per item, at most ``window`` tasks at once (all: None); yield
    ``(item, result or its error)`` as each ends.

    The context is a *task* (not scattered data): if every worker holding it dies, the
    scheduler recomputes it, where scattered data would be lost for good and every pending
    task would fail with "lost dependencies" / cancelled. Leaving the iteration early
    (storage fault, interrupt) cancels the tasks not yet finished.
    """
    token = uuid.uuid4().hex[:8]
    ctx_future = client.submit(context_task, ctx, key=f"{name}ctx-{token}", pure=False)
    waiting = iter(items)
    running: dict[Any, T] = {}

    def submit(n: int) -> list[Any]:
        futures = []
        for item in waiting:
            future = client.submit(
                fn, ctx_future, item, key=f"{name}-{token}-{key_of(item)}",
                retries=retries, pure=False, resources=resources,
            )  # fmt: skip
            running[future] = item
            futures.append(future)
            if len(futures) >= n:
                break
        return futures

    ended = as_completed(submit(window or len(items)))
    try:
        for future in ended:
            item = running.pop(future)
            ended.update(submit(1))
            outcome: R | BaseException
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 - the job goes on without this task
                outcome = exc
            finally:
                future.release()
            yield item, outcome
    finally:
        if running:
            client.cancel(list(running))
        ctx_future.release()
