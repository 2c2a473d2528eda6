"""Run one shard on a worker: decode, segment, compute statistics, write aligned blocks.

No Dask here: the graph layer calls :func:`run_shard` inside a task.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchseg import store
from batchseg.core.kinds import Kind
from batchseg.core.plan import Bucket, Shard
from batchseg.engine.tiled.objects import merge_partials, tile_partials
from batchseg.errors import ImageError, one_line
from batchseg.io import read as readers
from batchseg.io.planes import StackReader, StackView, split_plane
from batchseg.measure.channels import image_channel_stats, object_channel_stats
from batchseg.measure.instances import check_instances, instance_row, object_columns
from batchseg.measure.objects import empty_columns, object_aggregates
from batchseg.measure.stats import class_stats, region_stats
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
    #: measure every object (region methods): a table part per shard, aggregates in the row
    objects: bool = False
    #: instance methods: the dtype of the class map stored beside the instance ids
    class_dtype: str | None = None
    class_names: tuple[str, ...] = ()
    max_pixels: int | None = readers.DEFAULT_MAX_PIXELS
    io_threads: int = 4
    #: stacks: planes, channels and projection (None: images read whole, as pictures)
    view: StackView | None = None
    #: channels measured per image and per object (``mean_intensity_<name>``...)
    channel_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShardSummary:
    """What a task returns to the client: counts, not pixels."""

    shard: int
    done: int
    failed: int
    seconds: float
    errors: dict[str, str] = field(default_factory=dict)


#: A decoded image (or why not), its read time, and all its channels (stacks only).
Decoded = tuple[np.ndarray | Exception, float, np.ndarray | None]


def _read(uri: str, max_pixels: int | None, stacks: StackReader | None = None) -> Decoded:
    """Decode one image; the time is this thread's CPU time (threads overlap each other).
    With ``stacks``, a plane of a stack (its file kept open for the task's other planes)."""
    start = time.thread_time()
    try:
        if stacks is not None:
            viewed = stacks.read(uri, max_pixels)
            return viewed.image, time.thread_time() - start, viewed.channels
        return readers.read_image(uri, max_pixels=max_pixels), time.thread_time() - start, None
    except Exception as exc:  # noqa: BLE001 - recorded per image
        return exc, time.thread_time() - start, None


def _prefetch(
    pool: ThreadPoolExecutor,
    uris: Sequence[str],
    max_pixels: int | None,
    ahead: int,
    stacks: StackReader | None = None,
) -> Iterator[Decoded]:
    """Decode ``uris`` in order, at most ``ahead`` images in flight (bounded memory)."""
    pending: deque[Future[Decoded]] = deque()
    it = iter(uris)
    for uri in it:
        pending.append(pool.submit(_read, uri, max_pixels, stacks))
        if len(pending) >= ahead:
            break
    while pending:
        result = pending.popleft().result()
        for uri in it:
            pending.append(pool.submit(_read, uri, max_pixels, stacks))
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
    n = len(shard)
    out = _buffers(ctx, method.has_confidence, bucket, dtype, n)
    labels, confidence, class_map = out.labels, out.confidence, out.classes
    stats, status, objects = out.stats, out.status, out.objects
    errors = np.full(ctx.shard_size, "", dtype=object)
    failures: dict[str, str] = {}

    def fail(slot: int, exc: BaseException) -> None:
        errors[slot] = one_line(exc)
        failures[shard.image_ids[slot]] = errors[slot]
        if objects is not None:
            objects.pop(slot, None)
        out.channels.pop(slot, None)

    stacks = StackReader(ctx.view, ctx.channel_names) if ctx.view is not None else None
    with ThreadPoolExecutor(max_workers=max(1, ctx.io_threads)) as pool, _closing(stacks):
        ahead = max(2 * ctx.io_threads, batch_size + ctx.io_threads)
        decoded = _prefetch(pool, shard.uris, ctx.max_pixels, ahead, stacks)
        slot = 0
        while slot < n:
            batch: list[tuple[int, np.ndarray, float]] = []
            while slot < n and len(batch) < batch_size:
                image, seconds, channels = next(decoded)
                if channels is not None:
                    out.channels[slot] = channels
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
                _segment_batch(ctx, method, runner, batch, dtype, out, fail, shard.image_ids)
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
        store.ShardBlock(
            labels,
            confidence,
            stats,
            status,
            errors,
            None if objects is None else object_rows(shard.image_ids, objects),
            class_map,
        ),
    )
    return summary


@contextmanager
def _closing(stacks: StackReader | None) -> Iterator[None]:
    try:
        yield
    finally:
        if stacks is not None:
            stacks.close()


def plane_stats(
    ctx: JobContext, labels: np.ndarray, channels: np.ndarray | None, image_id: str
) -> list[float]:
    """The stack columns of an image's row: its plane (``t``, ``z``) and each channel's
    intensities over its objects."""
    out: list[float] = []
    if ctx.view is not None and ctx.view.planes:
        _, t, z = split_plane(image_id)
        out.extend(float(v or 0) for v, axis in ((t, "t"), (z, "z")) if axis in ctx.view.planes)
    if ctx.channel_names:
        n = len(ctx.channel_names)
        if channels is None or channels.shape[0] != n:
            got = "no" if channels is None else str(channels.shape[0])
            raise ImageError(f"image has {got} channels, the job measures {n}")
        out.extend(image_channel_stats(labels, channels, n))
    return out


def measure(labels: np.ndarray, image: np.ndarray) -> dict[str, np.ndarray]:
    """The object table of one image: the columns of
    :func:`batchseg.measure.objects.measure_objects` (``regionprops_table``), computed by the
    vectorised moment kernel of :mod:`batchseg.engine.tiled.objects` with the whole image as
    one tile: equal to it to float rounding (tested), about 40x faster, because
    ``regionprops_table`` loops over regions in Python (README, Objects)."""
    return merge_partials([tile_partials(labels, image, (0, 0))])


@dataclass(frozen=True)
class _Outputs:
    """A shard's result buffers, filled image by image."""

    labels: np.ndarray
    confidence: np.ndarray | None
    classes: np.ndarray | None
    stats: np.ndarray
    status: np.ndarray
    objects: dict[int, dict[str, np.ndarray]] | None
    #: every channel of each slot's plane (stacks), for the per-channel measurements
    channels: dict[int, np.ndarray] = field(default_factory=dict)


def _buffers(
    ctx: JobContext, with_confidence: bool, bucket: Bucket, dtype: np.dtype, n: int
) -> _Outputs:
    """Empty result buffers of a shard of ``n`` images: every real row failed until done."""
    maps = (bucket.shard_size, bucket.height, bucket.width)
    status = np.zeros(ctx.shard_size, dtype=np.int8)
    status[:n] = store.FAILED
    return _Outputs(
        labels=np.zeros(maps, dtype=dtype),
        confidence=np.zeros(maps, dtype=np.uint8) if with_confidence else None,
        classes=np.zeros(maps, dtype=ctx.class_dtype) if ctx.class_dtype is not None else None,
        stats=np.full((ctx.shard_size, ctx.n_columns), np.nan),
        status=status,
        objects={} if ctx.objects else None,
    )


def object_rows(
    image_ids: Sequence[str], by_slot: dict[int, dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """One object table for a shard: each image's rows (in slot order) with its ``image_id``."""
    slots = sorted(by_slot)
    parts = [by_slot[s] for s in slots]
    if not parts:
        return {"image_id": np.array([], dtype=object), **empty_columns()}
    ids = np.concatenate(
        [
            np.full(len(p["label"]), image_ids[s], dtype=object)
            for s, p in zip(slots, parts, strict=True)
        ]
    )
    return {"image_id": ids, **{k: np.concatenate([p[k] for p in parts]) for k in parts[0]}}


def _segment_batch(
    ctx: JobContext,
    method: Any,
    runner: Any,
    batch: list[tuple[int, np.ndarray, float]],
    dtype: np.dtype,
    out: _Outputs,
    fail: Any,
    image_ids: Sequence[str] = (),
) -> None:
    t0 = time.perf_counter()
    images = [image for _, image, _ in batch]
    if getattr(runner, "reads_partners", False):  # import.*: each image's label file, by id
        results = runner.segment_batch(images, image_ids=[image_ids[s] for s, _, _ in batch])
    else:
        results = runner.segment_batch(images)
    share = (time.perf_counter() - t0) / len(batch)
    top = np.iinfo(dtype).max
    labels, confidence = out.labels, out.confidence
    for (slot, image, read_seconds), result in zip(batch, results, strict=True):
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
            if Kind(method.kind) is Kind.INSTANCES:
                check_instances(lab, result.classes, result.instances)
                assert out.classes is not None and result.instances is not None
                assert result.classes is not None
                row = instance_row(lab, result.classes, result.instances, ctx.n_classes)
                out.classes[slot] = result.classes
            elif Kind(method.kind).class_map:
                row = class_stats(lab, ctx.n_classes)
            else:
                row = region_stats(lab)
            extra: list[float] = []
            if confidence is not None and result.confidence is not None:
                confidence[slot] = result.confidence
                extra.append(float(result.confidence.mean()) / 255.0)
            if out.objects is not None:
                measured = measure(lab, image)
                if result.instances is not None:
                    measured = object_columns(measured, result.instances, ctx.class_names)
                stack = out.channels.get(slot)
                if ctx.channel_names and stack is not None:
                    measured.update(object_channel_stats(lab, stack, ctx.channel_names))
                out.objects[slot] = measured
                extra.extend(object_aggregates(measured["area"]))
            extra.extend(plane_stats(ctx, lab, out.channels.pop(slot, None), image_ids[slot]))
            labels[slot] = lab
            seconds = read_seconds + share + (time.perf_counter() - t1)
            out.stats[slot] = np.concatenate([row, extra, [seconds]])
            out.status[slot] = store.DONE
        except Exception as exc:  # noqa: BLE001 - recorded per image
            fail(slot, exc)
