"""The panoptic merge's task graph: one task per output shard (see
:mod:`batchseg.engine.panoptic_shard`)."""

from __future__ import annotations

from collections.abc import Generator, Sequence

from distributed import Client

from batchseg.engine.execute import ShardSummary
from batchseg.engine.graph import map_tasks
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
    return map_tasks(
        client, run_panoptic_shard, ctx, tasks, name="panoptic",
        key_of=lambda t: t.shard.index, retries=retries,
    )  # fmt: skip
