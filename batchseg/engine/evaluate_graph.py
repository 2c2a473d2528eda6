"""The evaluation's tasks: one per store shard, scores and confusion sums back, never pixels."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from distributed import Client

from batchseg.engine.graph import map_tasks
from batchseg.evaluate.score import EvalContext, Scores, score_images

Items = Sequence[tuple[str, Sequence[str]]]


def run_scoring(
    client: Client, ctx: EvalContext, tasks: Sequence[Items], *, retries: int = 2
) -> Iterator[tuple[int, Scores | BaseException]]:
    """One scoring task per item list; yield ``(index, scores or error)`` as they end."""
    numbered = list(enumerate(tasks))
    for (k, _), result in map_tasks(
        client, _score, ctx, numbered, name="evaluate", key_of=lambda t: t[0], retries=retries
    ):
        yield k, result


def _score(ctx: EvalContext, task: tuple[int, Items]) -> Scores:
    return score_images(ctx, list(task[1]))
