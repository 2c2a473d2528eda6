"""Dask orchestration of one tiled image: global passes, tile tasks, stitching, final row.

Phases (each a set of tile tasks; the client only ever holds counts and tile edges):

1. global reduction when the method needs one (grey range then histogram for thresholds;
   the sampled pixels for k-means);
2. one task per tile: read the haloed window, segment, write the tile's core;
3. region methods: the client stitches local ids into image-wide ids from the tiles' edges,
   then one task per tile rewrites its ids and the pyramid blocks;
4. the client writes the image's row (statistics, status) like any shard.

A failure in any tile fails the image alone (recorded with its reason); storage errors are
returned to the job, which stops with everything already stored kept.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import numpy as np
from distributed import Client, Future

from batchseg import store
from batchseg.core.faults import fault
from batchseg.core.plan import Shard
from batchseg.engine.execute import JobContext, ShardSummary, object_rows
from batchseg.engine.runner import context_task
from batchseg.engine.tiled import worker as tiles
from batchseg.engine.tiled.grid import grid_shape, semantic_blocks, stitch
from batchseg.engine.tiled.objects import merge_partials
from batchseg.errors import one_line
from batchseg.measure.objects import object_aggregates
from batchseg.measure.stats import class_stats_from_counts, region_stats_from_areas
from batchseg.methods import get_method
from batchseg.methods.tiled import finish_histogram, finish_sample, sample_indices, spec_for

log = logging.getLogger(__name__)


class _Phase:
    """Submit one task per item and gather the results in order (cancel all on a failure).

    Every task gets ``ctx`` (the job context, or a future holding it: shipped once, not with
    each of hundreds of tile tasks) as its first argument.
    """

    def __init__(
        self,
        client: Client,
        ctx: JobContext | Future,
        retries: int,
        resources: dict[str, float] | None,
        token: str,
    ) -> None:
        self.client = client
        self.ctx = ctx
        self.retries = retries
        self.resources = resources
        self.token = token

    def map(self, name: str, fn: Callable[..., Any], args: Sequence[tuple[Any, ...]]) -> list[Any]:
        start = time.perf_counter()
        futures: list[Future] = [
            self.client.submit(
                fn,
                self.ctx,
                *a,
                key=f"{name}-{self.token}-{i}",
                retries=self.retries,
                pure=False,
                resources=self.resources,
            )
            for i, a in enumerate(args)
        ]
        try:
            results = list(self.client.gather(futures))
        finally:
            self.client.cancel(futures)
        log.info("%s: %d tasks in %.1f s", name, len(futures), time.perf_counter() - start)
        return results


#: Bytes a semantic model's blended logits may take in one task (class scores and weights,
#: float32): the size of the rectangles of tiles whose windows are inferred together.
SEMANTIC_BLOCK_BYTES = 512 * 2**20


def semantic_block_pixels(n_classes: int) -> int:
    """Pixels of one semantic rectangle of tiles within :data:`SEMANTIC_BLOCK_BYTES`."""
    return SEMANTIC_BLOCK_BYTES // (4 * (max(1, n_classes) + 2))


#: Most tiled images in flight at once.
MAX_CONCURRENT_IMAGES = 8


def concurrency(n_images: int, tiles_per_image: float, n_threads: int) -> int:
    """Tiled images to run at once: enough tiles in flight for twice the worker threads.

    One image's phases end on a barrier (the launcher stitches, or waits for its slowest tile),
    so images with few tiles on a big cluster would leave workers idle if run one by one.
    """
    if n_images <= 0:
        return 0
    wanted = -(-2 * max(1, n_threads) // max(1, int(tiles_per_image)))
    return max(1, min(MAX_CONCURRENT_IMAGES, n_images, wanted))


def tasks_per_image(shape: tuple[int, int], tile: int, semantic_classes: int | None) -> int:
    """Parallel tasks of one tiled image's main phase: one per tile, or for a semantic model
    (``semantic_classes``: its class count) one per rectangle of tiles."""
    if semantic_classes is None:
        rows, cols = grid_shape(shape, tile)
        return rows * cols
    return len(semantic_blocks(shape, tile, semantic_block_pixels(semantic_classes)))


def run_many(
    client: Client,
    ctx: JobContext,
    shards: Sequence[Shard],
    n_threads: int,
    *,
    resources: dict[str, float] | None = None,
) -> Iterator[tuple[Shard, ShardSummary | BaseException]]:
    """:func:`run_tiled` for every shard, several images at once; yields as each ends."""
    if not shards:
        return
    semantic = spec_for(get_method(ctx.method_id), ctx.params).stitch == "semantic"
    tasks = [
        tasks_per_image(
            (ctx.buckets[s.bucket].height, ctx.buckets[s.bucket].width),
            ctx.buckets[s.bucket].tile,
            ctx.n_classes if semantic else None,
        )
        for s in shards
    ]
    width = concurrency(len(shards), sum(tasks) / len(tasks), n_threads)
    # a task, not scattered data: recomputed if the workers holding it die (see graph.py)
    ref = client.submit(context_task, ctx, key=f"tiledctx-{uuid.uuid4().hex[:8]}", pure=False)
    if width == 1:
        for shard in shards:
            yield shard, run_tiled(client, ctx, shard, resources=resources, ctx_ref=ref)
        return
    log.info("%d tiled images, %d at a time", len(shards), width)
    pool = ThreadPoolExecutor(width, thread_name_prefix="batchseg-tiled")
    try:
        running = {
            pool.submit(run_tiled, client, ctx, shard, resources=resources, ctx_ref=ref): shard
            for shard in shards
        }
        for future in as_completed(running):
            yield running[future], future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_tiled(
    client: Client,
    ctx: JobContext,
    shard: Shard,
    *,
    retries: int = 2,
    resources: dict[str, float] | None = None,
    ctx_ref: Future | None = None,
) -> ShardSummary | BaseException:
    """Segment the one huge image of ``shard`` tile by tile and write its row.

    ``ctx_ref``: a future holding ``ctx`` on the cluster, given to the tasks instead of ``ctx``.
    """
    start = time.perf_counter()
    bucket = ctx.buckets[shard.bucket]
    shape = (bucket.height, bucket.width)
    rows, cols = grid_shape(shape, bucket.tile)
    n_tiles = rows * cols
    image_id = shard.image_ids[0]
    token = uuid.uuid4().hex[:8]
    phase = _Phase(client, ctx if ctx_ref is None else ctx_ref, retries, resources, token)
    log.info("%s: %d x %d pixels in %d tiles of %d", image_id, *shape, n_tiles, bucket.tile)
    try:
        row, objects = _segment(phase, ctx, shard, n_tiles)
    except OSError as exc:
        return exc  # storage: the job stops, stored results are kept
    except Exception as exc:  # noqa: BLE001 - this image fails alone
        message = one_line(exc)
        log.error("%s failed: %s", image_id, message)
        _write_row(ctx, shard, None, message)
        return ShardSummary(shard.index, 0, 1, time.perf_counter() - start, {image_id: message})
    _write_row(ctx, shard, row, "", objects)
    return ShardSummary(shard.index, 1, 0, time.perf_counter() - start)


def _segment(
    phase: _Phase, ctx: JobContext, shard: Shard, n_tiles: int
) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
    """The image's statistics row and, in jobs that measure objects, its object table."""
    method = get_method(ctx.method_id)
    params = ctx.params
    spec = spec_for(method, params)
    bucket = ctx.buckets[shard.bucket]
    shape = (bucket.height, bucket.width)
    every = range(n_tiles)
    info: dict[str, Any] = {}
    seconds = 0.0
    objects: dict[str, np.ndarray] | None = None
    if spec.reduce == "histogram":
        ranges = phase.map("tile-range", tiles.tile_range, [(shard, k) for k in every])
        lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
        counts = None
        if lo != hi:
            parts = phase.map(
                "tile-histogram", tiles.tile_histogram, [(shard, k, lo, hi) for k in every]
            )
            counts = np.sum(parts, axis=0)
        info = finish_histogram(spec, params, lo, hi, counts)
    elif spec.reduce == "sample":
        flat = sample_indices(params, shape)
        ys, xs = np.divmod(flat, shape[1])
        owner = (ys // bucket.tile) * grid_shape(shape, bucket.tile)[1] + xs // bucket.tile
        used = np.unique(owner)
        parts = phase.map(
            "tile-sample",
            tiles.tile_sample,
            [(shard, int(k), flat[owner == k]) for k in used],
        )
        features = np.empty((len(flat), parts[0].shape[1]), dtype=parts[0].dtype)
        for k, part in zip(used, parts, strict=True):
            features[owner == k] = part  # flat is sorted, so this keeps the sampled order
        info = finish_sample(params, features)
    if spec.stitch in ("touch", "overlap"):
        store.create_scratch(ctx.store, bucket, np.dtype(ctx.label_dtypes[shard.bucket]))
    if spec.stitch == "semantic":
        blocks = semantic_blocks(shape, bucket.tile, semantic_block_pixels(ctx.n_classes))
        groups = phase.map("tile-semantic", tiles.semantic_block, [(shard, b) for b in blocks])
        outcomes = sorted((o for group in groups for o in group), key=lambda o: o.index)
    else:
        outcomes = phase.map("tile-segment", tiles.segment_tile, [(shard, k, info) for k in every])
    seconds += sum(o.seconds for o in outcomes)
    if spec.stitch in ("touch", "overlap"):
        fault("tiled-stitch")  # crash tests: tiles written to scratch, not yet relabelled
        joined = stitch(
            shape,
            bucket.tile,
            outcomes,
            spec.stitch,
            connectivity=int(params.get("connectivity", 2)),
            min_area=spec.min_area(params) if spec.min_area is not None else 0,
        )
        if joined.n_regions > np.iinfo(np.dtype(ctx.label_dtypes[shard.bucket])).max:
            raise ValueError(f"{joined.n_regions} regions do not fit the store's label type")
        spent = phase.map(
            "tile-relabel",
            tiles.relabel_tile,
            [(shard, k, joined.luts[k]) for k in every],
        )
        seconds += sum(spent)
        store.drop_scratch(ctx.store, bucket)
        stats = region_stats_from_areas(joined.areas)
        extra: list[float] = []
        if ctx.objects:  # after stitching: objects crossing tiles are measured once
            t0 = time.perf_counter()
            parts = phase.map("tile-measure", tiles.measure_tile, [(shard, k) for k in every])
            objects = merge_partials(parts)
            extra.extend(object_aggregates(objects["area"]))
            seconds += time.perf_counter() - t0
    else:
        counts = np.sum([o.counts for o in outcomes], axis=0)
        stats = class_stats_from_counts(counts, ctx.n_classes)
        extra = []
        if method.has_confidence:
            extra.append(sum(o.confidence_sum for o in outcomes) / (shape[0] * shape[1]) / 255.0)
    return np.concatenate([stats, extra, [seconds]]), objects


def _write_row(
    ctx: JobContext,
    shard: Shard,
    row: np.ndarray | None,
    error: str,
    objects: dict[str, np.ndarray] | None = None,
) -> None:
    """Write the image's row; its object table first (empty when it failed)."""
    S = ctx.shard_size
    stats = np.full((S, ctx.n_columns), np.nan)
    status = np.zeros(S, dtype=np.int8)
    errors = np.full(S, "", dtype=object)
    if row is None:
        status[0] = store.FAILED
        errors[0] = error
    else:
        stats[0] = row
        status[0] = store.DONE
    bucket = ctx.buckets[shard.bucket]
    store.write_shard(
        ctx.store,
        ctx.store_id,
        S,
        bucket,
        shard,
        store.ShardBlock(
            None,
            None,
            stats,
            status,
            errors,
            object_rows(shard.image_ids, {0: objects} if objects is not None else {})
            if ctx.objects
            else None,
        ),
    )
