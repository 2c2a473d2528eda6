"""Run one shard on a worker: decode, segment, compute statistics, write aligned blocks.

No Dask here: the graph layer calls :func:`run_shard` inside a task.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchseg import store
from batchseg.engine.stats import class_stats, region_stats
from batchseg.errors import ImageError, one_line
from batchseg.io import read as readers
from batchseg.job.plan import Bucket, Shard
from batchseg.methods import get_method
from batchseg.methods.base import Segmentation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobContext:
    """What every task of a job shares (small; shipped with each task)."""

    store: str
    store_id: str
    method_id: str
    params: dict[str, Any]
    shard_size: int
    buckets: tuple[Bucket, ...]
    label_dtypes: tuple[str, ...]
    n_classes: int
    n_columns: int
    max_pixels: int | None = readers.DEFAULT_MAX_PIXELS
    io_threads: int = 4


@dataclass(frozen=True)
class ShardSummary:
    """What a task returns to the client: counts, not pixels."""

    shard: int
    done: int
    failed: int
    seconds: float
    errors: dict[str, str] = field(default_factory=dict)


def _read(uri: str, max_pixels: int | None) -> tuple[np.ndarray | Exception, float]:
    """Decode one image; the time is this thread's CPU time (threads overlap each other)."""
    start = time.thread_time()
    try:
        return readers.read_image(uri, max_pixels=max_pixels), time.thread_time() - start
    except Exception as exc:  # noqa: BLE001 - recorded per image
        return exc, time.thread_time() - start


def _prefetch(
    pool: ThreadPoolExecutor, uris: Sequence[str], max_pixels: int | None, ahead: int
) -> Iterator[tuple[np.ndarray | Exception, float]]:
    """Decode ``uris`` in order, at most ``ahead`` images in flight (bounded memory)."""
    pending: deque[Future[tuple[np.ndarray | Exception, float]]] = deque()
    it = iter(uris)
    for uri in it:
        pending.append(pool.submit(_read, uri, max_pixels))
        if len(pending) >= ahead:
            break
    while pending:
        result = pending.popleft().result()
        for uri in it:
            pending.append(pool.submit(_read, uri, max_pixels))
            break
        yield result


def run_shard(ctx: JobContext, shard: Shard) -> ShardSummary:
    """Segment every image of ``shard`` and write the shard's blocks to the store."""
    start = time.perf_counter()
    bucket = ctx.buckets[shard.bucket]
    dtype = np.dtype(ctx.label_dtypes[shard.bucket])
    method = get_method(ctx.method_id)
    runner = method.runner(ctx.params)
    batch_size = max(1, int(runner.batch_size))
    S, n = ctx.shard_size, len(shard)
    labels = np.zeros((bucket.shard_size, bucket.height, bucket.width), dtype=dtype)
    confidence = (
        np.zeros((bucket.shard_size, bucket.height, bucket.width), dtype=np.uint8)
        if method.has_confidence
        else None
    )
    stats = np.full((S, ctx.n_columns), np.nan)
    status = np.zeros(S, dtype=np.int8)
    status[:n] = store.FAILED
    errors = np.full(S, "", dtype=object)
    failures: dict[str, str] = {}

    def fail(slot: int, exc: BaseException) -> None:
        errors[slot] = one_line(exc)
        failures[shard.image_ids[slot]] = errors[slot]

    with ThreadPoolExecutor(max_workers=max(1, ctx.io_threads)) as pool:
        ahead = max(2 * ctx.io_threads, batch_size + ctx.io_threads)
        decoded = _prefetch(pool, shard.uris, ctx.max_pixels, ahead)
        slot = 0
        while slot < n:
            batch: list[tuple[int, np.ndarray, float]] = []
            while slot < n and len(batch) < batch_size:
                image, seconds = next(decoded)
                if isinstance(image, Exception):
                    fail(slot, image)
                elif image.shape[:2] != (bucket.height, bucket.width):
                    h, w = image.shape[:2]
                    fail(
                        slot,
                        ImageError(
                            f"image changed since planning: now {h}x{w}, planned "
                            f"{bucket.height}x{bucket.width}; rerun with --overwrite"
                        ),
                    )
                else:
                    batch.append((slot, image, seconds))
                slot += 1
            if batch:
                _segment_batch(
                    ctx, method, runner, batch, dtype, labels, confidence, stats, status, fail
                )
    summary = ShardSummary(
        shard=shard.index,
        done=int((status == store.DONE).sum()),
        failed=int((status == store.FAILED).sum()),
        seconds=time.perf_counter() - start,
        errors=failures,
    )
    store.write_shard(
        ctx.store,
        ctx.store_id,
        ctx.shard_size,
        bucket,
        shard,
        store.ShardBlock(labels, confidence, stats, status, errors),
    )
    return summary


def _segment_batch(
    ctx: JobContext,
    method: Any,
    runner: Any,
    batch: list[tuple[int, np.ndarray, float]],
    dtype: np.dtype,
    labels: np.ndarray,
    confidence: np.ndarray | None,
    stats: np.ndarray,
    status: np.ndarray,
    fail: Any,
) -> None:
    t0 = time.perf_counter()
    results = runner.segment_batch([image for _, image, _ in batch])
    share = (time.perf_counter() - t0) / len(batch)
    top = np.iinfo(dtype).max
    for (slot, _, read_seconds), result in zip(batch, results, strict=True):
        t1 = time.perf_counter()
        try:
            if isinstance(result, Exception):
                raise result
            assert isinstance(result, Segmentation)
            lab = np.asarray(result.labels)
            if lab.shape != labels.shape[1:]:
                raise ValueError(f"method returned labels of shape {lab.shape}")
            if lab.size and (lab.min() < 0 or lab.max() > top):
                raise ValueError(f"label {lab.max()} does not fit the store's {dtype}")
            lab = lab.astype(dtype, copy=False)
            if method.kind == "classes":
                row = class_stats(lab, ctx.n_classes)
            else:
                row = region_stats(lab)
            extra = []
            if confidence is not None and result.confidence is not None:
                confidence[slot] = result.confidence
                extra.append(float(result.confidence.mean()) / 255.0)
            labels[slot] = lab
            seconds = read_seconds + share + (time.perf_counter() - t1)
            stats[slot] = np.concatenate([row, extra, [seconds]])
            status[slot] = store.DONE
        except Exception as exc:  # noqa: BLE001 - recorded per image
            fail(slot, exc)
