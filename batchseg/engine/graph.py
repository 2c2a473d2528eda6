"""Build and run the task graph: header scan tasks, then one task per shard."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Generator, Sequence
from typing import Any, TypeVar

from distributed import Client, as_completed

from batchseg.engine.execute import JobContext, ShardSummary, run_shard
from batchseg.errors import one_line
from batchseg.io import read as readers
from batchseg.io.sources import ImageRef
from batchseg.job.plan import Shard

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

HEADER_BATCH = 512


Header = tuple[int, int] | tuple[int, int, bool] | str


def header_of(uri: str, max_pixels: int | None, tile_threshold: int | None) -> Header:
    """(height, width), or (height, width, windowed) above ``tile_threshold``; else the error.

    ``windowed`` says whether the image can be read in windows (TIFF/Zarr), and so tiled.
    """
    try:
        h, w = readers.read_header(uri, max_pixels=max_pixels, windowed_above=tile_threshold)
        if tile_threshold is not None and h * w > tile_threshold:
            if max_pixels is not None and h * w > max_pixels:
                return h, w, True  # read_header accepted it only because it is windowed
            from batchseg.io.windowed import windowed_header

            return h, w, windowed_header(uri) is not None
        return h, w
    except Exception as exc:  # noqa: BLE001 - recorded per image
        return one_line(exc)


def _headers(
    uris: Sequence[str], max_pixels: int | None, tile_threshold: int | None = None
) -> list[Header]:
    return [header_of(uri, max_pixels, tile_threshold) for uri in uris]


def scan_headers(
    client: Client,
    refs: Sequence[ImageRef],
    max_pixels: int | None,
    tile_threshold: int | None = None,
) -> list[Header]:
    """A :func:`header_of` per ref; sizes known from a manifest are not read again."""
    todo = [i for i, r in enumerate(refs) if r.height is None or r.width is None]
    result: list[Header] = [
        (int(r.height), int(r.width)) if r.height is not None and r.width is not None else ""
        for r in refs
    ]
    if not todo:
        return result
    token = uuid.uuid4().hex[:8]
    batches = [todo[i : i + HEADER_BATCH] for i in range(0, len(todo), HEADER_BATCH)]
    futures = [
        client.submit(
            _headers,
            [refs[i].uri for i in batch],
            max_pixels,
            tile_threshold,
            key=f"headers-{token}-{n}",
            pure=False,
        )
        for n, batch in enumerate(batches)
    ]
    for batch, future in zip(batches, futures, strict=True):
        for i, value in zip(batch, future.result(), strict=True):
            result[i] = value
    return result


def context_task(ctx: T) -> T:
    """The job context as a task's result (see :func:`map_tasks`)."""
    return ctx


def _warm(method_id: str, params: dict[str, Any]) -> None:
    """Import the method and build its runner (semantic: load the model) in this worker."""
    from batchseg.methods import get_method

    get_method(method_id).runner(params)


def warm_workers(
    client: Client,
    method_id: str,
    params: dict[str, Any],
    resources: dict[str, float] | None = None,
) -> None:
    """Build the runner once in every worker that will run shards, before timing starts.

    Failures are ignored here: the tasks report them per shard.
    """
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    targets = [
        addr
        for addr, info in workers.items()
        if not resources
        or all((info.get("resources") or {}).get(k, 0) >= v for k, v in resources.items())
    ]
    if not targets:
        return
    try:
        client.run(_warm, method_id, params, workers=targets)
    except Exception as exc:  # noqa: BLE001 - the shard tasks will report the real error
        log.debug("warm-up failed: %s", exc)


def map_tasks(
    client: Client,
    fn: Callable[..., R],
    ctx: Any,
    items: Sequence[T],
    *,
    name: str,
    key_of: Callable[[T], Any],
    retries: int = 2,
    resources: dict[str, float] | None = None,
) -> Generator[tuple[T, R | BaseException], None, None]:
    """Submit ``fn(ctx, item)`` per item; yield ``(item, result or its error)`` as each ends.

    The context is a *task* (not scattered data): if every worker holding it dies, the
    scheduler recomputes it, where scattered data would be lost for good and every pending
    task would fail with "lost dependencies" / cancelled. Leaving the iteration early
    (storage fault, interrupt) cancels the tasks not yet finished.
    """
    token = uuid.uuid4().hex[:8]
    ctx_future = client.submit(context_task, ctx, key=f"{name}ctx-{token}", pure=False)
    futures = {
        client.submit(
            fn,
            ctx_future,
            item,
            key=f"{name}-{token}-{key_of(item)}",
            retries=retries,
            pure=False,
            resources=resources,
        ): item
        for item in items
    }
    try:
        for future in as_completed(futures):
            item = futures.pop(future)
            try:
                yield item, future.result()
            except Exception as exc:  # noqa: BLE001 - the job goes on without this task
                yield item, exc
            finally:
                future.release()
    finally:
        if futures:
            client.cancel(list(futures))


def run_shards(
    client: Client,
    ctx: JobContext,
    shards: Sequence[Shard],
    *,
    retries: int = 2,
    resources: dict[str, float] | None = None,
) -> Generator[tuple[Shard, ShardSummary | BaseException], None, None]:
    """Submit one task per shard and yield each shard's summary (or its error) as it ends."""
    return map_tasks(
        client, run_shard, ctx, shards, name="shard", key_of=lambda s: s.index,
        retries=retries, resources=resources,
    )  # fmt: skip
