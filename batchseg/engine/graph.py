"""The segmentation graph: warm the workers, one task per shard (the bounded submission is
:mod:`batchseg.engine.runner`'s; headers: :mod:`batchseg.engine.headers`)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Generator, Sequence
from typing import Any

from distributed import Client, Future, wait

from batchseg.core.plan import Shard
from batchseg.engine.execute import JobContext, ShardSummary, run_shard
from batchseg.engine.runner import run_tasks

log = logging.getLogger(__name__)


def _warm(method_id: str, params: dict[str, Any]) -> None:
    """Import the method and build its runner (semantic: load the model) in this worker."""
    from batchseg.methods import get_method

    get_method(method_id).runner(params)


def _targets(client: Client, resources: dict[str, float] | None) -> list[str]:
    """The workers that will run shards (those with ``resources``, when given)."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return [
        addr
        for addr, info in workers.items()
        if not resources
        or all((info.get("resources") or {}).get(k, 0) >= v for k, v in resources.items())
    ]


def start_warm(
    client: Client,
    method_id: str,
    params: dict[str, Any],
    resources: dict[str, float] | None = None,
) -> list[Future]:
    """Begin building the runner (semantic: loading the model) in every worker that will run
    shards, as one task pinned to each, and return at once: the model loads while the
    launcher plans and creates the store. :func:`warm_workers` waits for these tasks."""
    token = uuid.uuid4().hex[:8]
    return [
        client.submit(
            _warm,
            method_id,
            params,
            key=f"warm-{token}-{i}",
            workers=[addr],
            allow_other_workers=True,  # a lost worker must not leave it waiting forever
            pure=False,
            resources=resources,
        )
        for i, addr in enumerate(_targets(client, resources))
    ]


def warm_workers(
    client: Client,
    method_id: str,
    params: dict[str, Any],
    resources: dict[str, float] | None = None,
    *,
    started: Sequence[Future] = (),
) -> None:
    """Build the runner once in every worker that will run shards, before timing starts;
    with ``started`` (from :func:`start_warm`), wait for those builds instead.

    Failures are ignored here: the tasks report them per shard.
    """
    if started:
        wait(list(started))
        for future in started:
            if future.status == "error":
                log.debug("warm-up failed: %s", future.exception())
            future.release()
        return
    targets = _targets(client, resources)
    if not targets:
        return
    try:
        client.run(_warm, method_id, params, workers=targets)
    except Exception as exc:  # noqa: BLE001 - the shard tasks will report the real error
        log.debug("warm-up failed: %s", exc)


def run_shards(
    client: Client,
    ctx: JobContext,
    shards: Sequence[Shard],
    *,
    retries: int = 2,
    resources: dict[str, float] | None = None,
    window: int | None = None,
) -> Generator[tuple[Shard, ShardSummary | BaseException], None, None]:
    """One task per shard, at most ``window`` at once; yield each shard's summary (or its
    error) as it ends."""
    return run_tasks(
        client, run_shard, ctx, shards, name="shard", key_of=shard_key,
        retries=retries, resources=resources, window=window,
    )  # fmt: skip


def shard_key(shard: Shard) -> int:
    """A shard's task key: its index."""
    return shard.index
