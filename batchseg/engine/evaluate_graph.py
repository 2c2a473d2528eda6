"""The evaluation's tasks: one per store shard, scores and confusion sums back, never pixels.

Instance stores send back COCO RLE detections with scores, panoptic stores per-class PQ
counts (:mod:`batchseg.evaluate.object_score`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from distributed import Client

from batchseg.engine.graph import map_tasks
from batchseg.evaluate.object_job import OBJECT_KINDS
from batchseg.evaluate.object_score import score_objects
from batchseg.evaluate.score import EvalContext, Scores, score_images

#: ``(image, truth)``: the image's :class:`~batchseg.store.ImageInfo` (where its labels are)
#: and truth file paths (class maps, regions) or an
#: :class:`~batchseg.evaluate.coco_truth.ObjectTruth` (instances, panoptic).
Items = Sequence[tuple[Any, Any]]


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
    if ctx.kind in OBJECT_KINDS:
        return score_objects(ctx, list(task[1]))
    return score_images(ctx, list(task[1]))
