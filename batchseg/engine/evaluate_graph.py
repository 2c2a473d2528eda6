"""The evaluation's tasks: one per store shard, scores and confusion sums back, never pixels."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

from distributed import Client, as_completed

from batchseg.evaluate.score import EvalContext, Scores, score_images

Items = Sequence[tuple[str, Sequence[str]]]


def run_scoring(
    client: Client, ctx: EvalContext, tasks: Sequence[Items], *, retries: int = 2
) -> Iterator[tuple[int, Scores | BaseException]]:
    """Submit one scoring task per item list; yield ``(index, scores or error)`` as they end."""
    token = uuid.uuid4().hex[:8]
    futures = {
        client.submit(
            score_images,
            ctx,  # small: shipped with each task (survives the loss of any worker)
            list(items),
            key=f"evaluate-{token}-{k}",
            retries=retries,
            pure=False,
        ): k
        for k, items in enumerate(tasks)
    }
    try:
        for future in as_completed(futures):
            k = futures[future]
            try:
                yield k, future.result()
            except Exception as exc:  # noqa: BLE001 - the task's images are reported failed
                yield k, exc
    finally:
        for future in futures:
            future.cancel()
