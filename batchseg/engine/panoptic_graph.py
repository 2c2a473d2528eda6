"""The panoptic merge's task graph: one task per output shard (see
:mod:`batchseg.engine.panoptic_shard`)."""

from __future__ import annotations

import uuid
from collections.abc import Generator, Sequence

from distributed import Client, as_completed

from batchseg.engine.execute import ShardSummary
from batchseg.engine.graph import context_task
from batchseg.engine.panoptic_shard import PanopticContext, PanopticShard, run_panoptic_shard


def run_panoptic_shards(
    client: Client,
    ctx: PanopticContext,
    tasks: Sequence[PanopticShard],
    *,
    retries: int = 2,
) -> Generator[tuple[PanopticShard, ShardSummary | BaseException], None, None]:
    """Submit one task per shard; yield each shard's summary (or its error) as it ends.

    Leaving the iteration early cancels the tasks not yet finished.
    """
    token = uuid.uuid4().hex[:8]
    # a task, not scattered data: recomputed if every worker holding it dies
    ctx_future = client.submit(context_task, ctx, key=f"panopticctx-{token}", pure=False)
    futures = {
        client.submit(
            run_panoptic_shard,
            ctx_future,
            task,
            key=f"panoptic-{token}-{task.shard.index}",
            retries=retries,
            pure=False,
        ): task
        for task in tasks
    }
    try:
        for future in as_completed(futures):
            task = futures.pop(future)
            try:
                yield task, future.result()
            except Exception as exc:  # noqa: BLE001 - the job goes on without this shard
                yield task, exc
            finally:
                future.release()
    finally:
        if futures:
            client.cancel(list(futures))
