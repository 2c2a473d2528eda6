"""Worker side of tiled images: one window in, one tile of labels out (no Dask here).

The graph layer (:mod:`batchseg.engine.tiled.graph`) calls these inside tasks, one tile each:
global passes (:func:`tile_range`, :func:`tile_histogram`, :func:`tile_sample`), then
:func:`segment_tile` (or :func:`semantic_block`), then for region methods :func:`relabel_tile`
once the client has stitched the tiles' ids. Memory is bounded by the tile (and halo) size.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchseg import store
from batchseg.core.plan import Bucket, Shard
from batchseg.engine.execute import JobContext
from batchseg.engine.tiled.grid import Tile, tile_at
from batchseg.engine.tiled.objects import HALO, tile_partials
from batchseg.errors import ImageError
from batchseg.io import windowed
from batchseg.methods import get_method
from batchseg.methods.tiled import (
    TileSpec,
    blend_weights,
    grey_histogram,
    grey_range,
    reduction_grey,
    reduction_halo,
    sample_features,
    spec_for,
    window_lattice,
)

#: Names of a tile's four faces.
FACES = ("top", "bottom", "left", "right")


@dataclass
class TileOutcome:
    """What a segmented tile tells the client: counts and its edges, never its pixels."""

    index: int
    n_labels: int  # regions: local ids 1..n_labels; class maps: 0
    counts: np.ndarray  # class maps: pixels per class; regions: area per local id (0 = none)
    #: face -> (labels on the core's edge, labels just beyond it as this tile saw them)
    lines: dict[str, tuple[np.ndarray, np.ndarray | None]] = field(default_factory=dict)
    confidence_sum: float = 0.0
    seconds: float = 0.0


def _setup(ctx: JobContext, shard: Shard) -> tuple[Any, dict[str, Any], TileSpec, Bucket]:
    method = get_method(ctx.method_id)
    bucket = ctx.buckets[shard.bucket]
    return method, ctx.params, spec_for(method, ctx.params), bucket


def tile_of(ctx: JobContext, shard: Shard, index: int) -> Tile:
    """Tile ``index`` of the shard's image, with the method's halo."""
    method, params, spec, bucket = _setup(ctx, shard)
    shape = (bucket.height, bucket.width)
    return tile_at(shape, bucket.tile, spec.halo(params, shape, bucket.tile), index)


def _read(ctx: JobContext, shard: Shard, box: tuple[int, int, int, int]) -> np.ndarray:
    with windowed.open_source(shard.uris[0], max_pixels=ctx.max_pixels) as src:
        if not src.windowed:
            raise ImageError(
                "image is above --tile-threshold but cannot be read in windows "
                "(store it as a tiled TIFF or a Zarr array, or raise --tile-threshold)"
            )
        return src.read(*box)


def _core_box(t: Tile) -> tuple[int, int, int, int]:
    return t.y0, t.y1, t.x0, t.x1


def _window_box(t: Tile) -> tuple[int, int, int, int]:
    return t.hy0, t.hy1, t.hx0, t.hx1


def _reduction_core(ctx: JobContext, shard: Shard, index: int) -> np.ndarray:
    """The grey values of one tile's core that the global pass counts (smoothed where the
    method smooths, from a window with the smoothing radius around the core)."""
    method, params, spec, bucket = _setup(ctx, shard)
    shape = (bucket.height, bucket.width)
    t = tile_at(shape, bucket.tile, reduction_halo(spec, params), index)
    return reduction_grey(spec, params, _read(ctx, shard, _window_box(t)))[t.core_in_window]


def tile_range(ctx: JobContext, shard: Shard, index: int) -> tuple[float, float]:
    """Grey (min, max) of one tile's core."""
    return grey_range(_reduction_core(ctx, shard, index))


def tile_histogram(ctx: JobContext, shard: Shard, index: int, lo: float, hi: float) -> np.ndarray:
    """Grey histogram of one tile's core on the whole image's bins."""
    return grey_histogram(_reduction_core(ctx, shard, index), lo, hi)


def tile_sample(ctx: JobContext, shard: Shard, index: int, flat: np.ndarray) -> np.ndarray:
    """Features of the pixels at whole-image flat indices ``flat`` (all inside this tile)."""
    t = tile_of(ctx, shard, index)
    width = ctx.buckets[shard.bucket].width
    ys, xs = np.divmod(flat, width)
    local = (ys - t.y0) * (t.x1 - t.x0) + (xs - t.x0)
    return sample_features(_read(ctx, shard, _core_box(t)), ctx.params, local)


def _lines(t: Tile, lab: np.ndarray, local: np.ndarray, ids: np.ndarray) -> dict[str, Any]:
    """Core edges (local ids) and the halo line just beyond each (mapped the same way)."""
    cy, cx = t.core_in_window
    y0, y1, x0, x1 = cy.start, cy.stop, cx.start, cx.stop

    def beyond(line: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(ids, line)
        idx = np.minimum(idx, max(0, len(ids) - 1))
        hit = (line > 0) & (ids[idx] == line) if len(ids) else np.zeros(line.shape, bool)
        return np.where(hit, idx + 1, 0).astype(np.uint32)

    # copies, not views: a view would keep the whole tile alive in the task's result
    return {
        "top": (local[0].copy(), beyond(lab[y0 - 1, x0:x1]) if y0 > 0 else None),
        "bottom": (local[-1].copy(), beyond(lab[y1, x0:x1]) if y1 < lab.shape[0] else None),
        "left": (local[:, 0].copy(), beyond(lab[y0:y1, x0 - 1]) if x0 > 0 else None),
        "right": (local[:, -1].copy(), beyond(lab[y0:y1, x1]) if x1 < lab.shape[1] else None),
    }


def segment_tile(ctx: JobContext, shard: Shard, index: int, info: dict[str, Any]) -> TileOutcome:
    """Segment one haloed window; write its core (final class map, or local region ids)."""
    start = time.perf_counter()
    method, params, spec, bucket = _setup(ctx, shard)
    shape = (bucket.height, bucket.width)
    t = tile_at(shape, bucket.tile, spec.halo(params, shape, bucket.tile), index)
    assert spec.segment is not None  # semantic models go through semantic_block
    lab = np.asarray(spec.segment(_read(ctx, shard, _window_box(t)), params, info, shape))
    core = lab[t.core_in_window]
    dtype = np.dtype(ctx.label_dtypes[shard.bucket])
    if spec.stitch == "none":
        counts = np.bincount(core.ravel(), minlength=ctx.n_classes)
        if counts.size > ctx.n_classes:
            raise ValueError(f"label {counts.size - 1} outside the {ctx.n_classes} classes")
        store.write_tile(ctx.store, ctx.store_id, bucket, t.core, core.astype(dtype))
        return TileOutcome(index, 0, counts, seconds=time.perf_counter() - start)
    outcome, local = region_outcome(index, t, lab)
    store.write_tile(ctx.store, ctx.store_id, bucket, t.core, local.astype(dtype), scratch=True)
    outcome.seconds = time.perf_counter() - start
    return outcome


def region_outcome(index: int, t: Tile, lab: np.ndarray) -> tuple[TileOutcome, np.ndarray]:
    """(outcome, local ids of the core) of a haloed window's region labels ``lab``.

    Local ids are 1..n in order of the window's ids; the outcome carries their areas and the
    core's edges with the halo line beyond each, which :func:`~.grid.stitch` joins.
    """
    core = lab[t.core_in_window]
    ids = np.unique(core)
    ids = ids[ids > 0]
    local = np.where(core > 0, np.searchsorted(ids, core) + 1, 0).astype(np.uint32)
    counts = np.bincount(local.ravel(), minlength=len(ids) + 1)
    return TileOutcome(index, len(ids), counts, _lines(t, lab, local, ids)), local


def relabel_tile(ctx: JobContext, shard: Shard, index: int, lut: np.ndarray) -> float:
    """Map a tile's local ids to the stitched global ids (``lut[local]``); write its pyramid."""
    start = time.perf_counter()
    bucket = ctx.buckets[shard.bucket]
    t = tile_at((bucket.height, bucket.width), bucket.tile, 0, index)
    local = store.read_scratch_tile(ctx.store, ctx.store_id, bucket, t.core)
    dtype = np.dtype(ctx.label_dtypes[shard.bucket])
    store.write_tile(ctx.store, ctx.store_id, bucket, t.core, lut[local].astype(dtype))
    return time.perf_counter() - start


def measure_tile(ctx: JobContext, shard: Shard, index: int) -> dict[str, np.ndarray]:
    """Mergeable measurements of the objects' parts in one tile of the final labels
    (:func:`~batchseg.engine.tiled.objects.tile_partials`), read with a ring of
    :data:`~batchseg.engine.tiled.objects.HALO` pixels so that perimeters add up exactly."""
    bucket = ctx.buckets[shard.bucket]
    H, W = bucket.height, bucket.width
    t = tile_at((H, W), bucket.tile, 0, index)
    y0, y1 = max(0, t.y0 - HALO), min(H, t.y1 + HALO)
    x0, x1 = max(0, t.x0 - HALO), min(W, t.x1 + HALO)
    context = store.read_tile(ctx.store, ctx.store_id, bucket, (slice(y0, y1), slice(x0, x1)))
    core = (slice(t.y0 - y0, t.y1 - y0), slice(t.x0 - x0, t.x1 - x0))
    image = _read(ctx, shard, _core_box(t))
    return tile_partials(context[core], image, (t.y0, t.x0), context=context, core=core)


def semantic_block(ctx: JobContext, shard: Shard, indices: Sequence[int]) -> list[TileOutcome]:
    """Class maps of a rectangle of tiles (:func:`~.grid.semantic_blocks`) from sliding windows
    on the image-wide lattice, logits blended: each window the rectangle touches is inferred
    once, whatever the tile size, and each tile's core is written as its own chunk."""
    start = time.perf_counter()
    bucket = ctx.buckets[shard.bucket]
    shape = (bucket.height, bucket.width)
    cores = [tile_at(shape, bucket.tile, 0, k) for k in indices]
    y0, y1 = min(t.y0 for t in cores), max(t.y1 for t in cores)
    x0, x1 = min(t.x0 for t in cores), max(t.x1 for t in cores)
    labels, confidence = _blend(ctx, shard, (y0, y1, x0, x1))
    dtype = np.dtype(ctx.label_dtypes[shard.bucket])
    outcomes = []
    for k, t in zip(indices, cores, strict=True):
        inside = (slice(t.y0 - y0, t.y1 - y0), slice(t.x0 - x0, t.x1 - x0))
        lab, conf = labels[inside], confidence[inside]
        counts = np.bincount(lab.ravel(), minlength=ctx.n_classes)
        store.write_tile(ctx.store, ctx.store_id, bucket, t.core, lab.astype(dtype), conf)
        outcomes.append(TileOutcome(k, 0, counts, confidence_sum=float(conf.sum(dtype=np.int64))))
    share = (time.perf_counter() - start) / len(outcomes)
    for outcome in outcomes:
        outcome.seconds = share
    return outcomes


def _blend(
    ctx: JobContext, shard: Shard, box: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, uint8 confidence) of ``box`` = (y0, y1, x0, x1): every lattice window that
    touches it inferred once, in batches of the runner's size, logits blended by weight."""
    method, params, _, bucket = _setup(ctx, shard)
    runner = method.runner(params)
    H, W = bucket.height, bucket.width
    y0, y1, x0, x1 = box
    win, overlap = int(params["window"]), int(params["overlap"])
    wy, wx = min(win, H), min(win, W)
    ys = [s for s in window_lattice(H, win, overlap) if s < y1 and s + wy > y0]
    xs = [s for s in window_lattice(W, win, overlap) if s < x1 and s + wx > x0]
    ry0, rx0 = ys[0], xs[0]
    region = _read(ctx, shard, (ry0, ys[-1] + wy, rx0, xs[-1] + wx))
    weights = np.outer(blend_weights(wy), blend_weights(wx))
    th, tw = y1 - y0, x1 - x0
    acc: np.ndarray | None = None
    wsum = np.zeros((th, tw), dtype=np.float32)
    starts = [(sy, sx) for sy in ys for sx in xs]
    step = max(1, int(runner.batch_size))
    for b in range(0, len(starts), step):
        batch = starts[b : b + step]
        crops = [region[sy - ry0 : sy - ry0 + wy, sx - rx0 : sx - rx0 + wx] for sy, sx in batch]
        logits = runner.logits(crops)
        if acc is None:
            acc = np.zeros((logits.shape[1], th, tw), dtype=np.float32)
        for (sy, sx), lg in zip(batch, logits, strict=True):
            oy0, oy1 = max(sy, y0), min(sy + wy, y1)
            ox0, ox1 = max(sx, x0), min(sx + wx, x1)
            w = weights[oy0 - sy : oy1 - sy, ox0 - sx : ox1 - sx]
            acc[:, oy0 - y0 : oy1 - y0, ox0 - x0 : ox1 - x0] += (
                lg[:, oy0 - sy : oy1 - sy, ox0 - sx : ox1 - sx] * w
            )
            wsum[oy0 - y0 : oy1 - y0, ox0 - x0 : ox1 - x0] += w
    assert acc is not None
    acc /= wsum
    labels = acc.argmax(axis=0)
    top = acc.max(axis=0)
    acc -= top
    np.exp(acc, out=acc)
    confidence = np.clip(np.round(255.0 / acc.sum(axis=0)), 0, 255).astype(np.uint8)
    return labels, confidence
