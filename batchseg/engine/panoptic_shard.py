"""One task of the panoptic merge: read a shard's images from both source stores, merge each
(:func:`batchseg.measure.panoptic.merge`), write the output shard. No Dask here: the job runner
(:mod:`batchseg.engine.lifecycle`) runs :func:`run_panoptic_shard` as the panoptic task kind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from batchseg import store
from batchseg.core.plan import Bucket, Shard
from batchseg.engine.execute import ShardSummary
from batchseg.errors import ImageError, one_line
from batchseg.measure.panoptic import PanopticClasses, masks_from_ids, merge, segments, stats_row
from batchseg.store.object_parts import read_parts
from batchseg.store.objects import shard_part_name

log = logging.getLogger(__name__)

#: Columns of the instance store's object table the merge reads (``mask_area``: the whole
#: mask's pixels, when the instance method records it).
INSTANCE_COLUMNS = ("image_id", "label", "class_index", "score", "mask_area")


@dataclass(frozen=True)
class PanopticContext:
    """What every task of a panoptic job shares (small; shipped once)."""

    output: str
    output_id: str
    semantic: str
    instances: str
    shard_size: int
    buckets: tuple[Bucket, ...]
    classes: PanopticClasses
    overlap: float
    min_stuff_area: int
    n_columns: int
    #: the instance store has object tables (class and score of every instance id)
    instance_objects: bool
    instance_shard_size: int


@dataclass(frozen=True)
class Source:
    """Where one image is in a source store: table row, bucket index, row in the bucket."""

    row: int
    bucket: int
    bucket_row: int


@dataclass(frozen=True)
class PanopticShard:
    """One output shard and, per image, where it is in both sources or why it is failed."""

    shard: Shard
    semantic: tuple[Source | None, ...]
    instances: tuple[Source | None, ...]
    reasons: tuple[str, ...]  # "" or the error the image gets without any work


def run_panoptic_shard(ctx: PanopticContext, task: PanopticShard) -> ShardSummary:
    """Merge every image of ``task`` and write the output shard (labels, statistics, segment
    rows first, status last)."""
    start = time.perf_counter()
    shard = task.shard
    bucket = ctx.buckets[shard.bucket]
    S, n = ctx.shard_size, len(shard)
    whole = bucket.height > 0 and not bucket.tile
    shape = (bucket.shard_size, bucket.height, bucket.width)
    labels = np.zeros(shape, dtype=np.uint32) if whole else None
    stats = np.full((S, ctx.n_columns), np.nan)
    status = np.zeros(S, dtype=np.int8)
    status[:n] = store.FAILED
    errors = np.full(S, "", dtype=object)
    failures: dict[str, str] = {}
    rows: dict[int, dict[str, np.ndarray]] = {}
    todo = [slot for slot in range(n) if not task.reasons[slot]]
    reader, unreadable = None, "not an ordinary image"
    try:  # a source that cannot be opened (or a lost object part) fails the images, not the job
        reader = _Reader(ctx, task, todo) if todo and labels is not None else None
    except Exception as exc:  # noqa: BLE001 - recorded per image
        unreadable = one_line(exc)
    for slot, image_id in enumerate(shard.image_ids):
        t0 = time.perf_counter()
        try:
            if reader is None or task.reasons[slot]:
                raise ImageError(task.reasons[slot] or unreadable)
            semantic, instances = reader.read(slot)
            out, segs = merge(
                semantic,
                instances,
                ctx.classes,
                overlap=ctx.overlap,
                min_stuff_area=ctx.min_stuff_area,
            )
            assert labels is not None
            labels[slot] = out
            seconds = time.perf_counter() - t0
            stats[slot] = np.concatenate([stats_row(segs, out.size, ctx.classes), [seconds]])
            rows[slot] = segs
            status[slot] = store.DONE
        except Exception as exc:  # noqa: BLE001 - recorded per image
            errors[slot] = one_line(exc)
            failures[image_id] = errors[slot]
    block = store.ShardBlock(
        labels, None, stats, status, errors, segment_rows(shard.image_ids, rows, ctx.classes)
    )
    store.write_shard(ctx.output, ctx.output_id, S, bucket, shard, block)
    return ShardSummary(
        shard=shard.index,
        done=int((status == store.DONE).sum()),
        failed=int((status == store.FAILED).sum()),
        seconds=time.perf_counter() - start,
        errors=failures,
    )


def segment_rows(
    image_ids: Sequence[str], by_slot: Mapping[int, dict[str, np.ndarray]], classes: PanopticClasses
) -> dict[str, np.ndarray]:
    """The shard's object table: each image's segments (slot order) with its ``image_id``."""
    slots = sorted(by_slot)
    parts = [by_slot[s] for s in slots] or [segments(np.zeros((0, 0), np.uint32), classes)]
    ids = [np.full(len(by_slot[s]["label"]), image_ids[s], dtype=object) for s in slots]
    return {
        "image_id": np.concatenate(ids) if ids else np.array([], dtype=object),
        **{k: np.concatenate([p[k] for p in parts]) for k in parts[0]},
    }


class _Reader:
    """Reads one shard's inputs: the semantic class map and the instances of each image."""

    def __init__(self, ctx: PanopticContext, task: PanopticShard, slots: Sequence[int]) -> None:
        self.ctx, self.task = ctx, task
        self.semantic_root = store.open_group(ctx.semantic)
        self.instance_root = store.open_group(ctx.instances)
        self.semantic_buckets = store.attributes(self.semantic_root)["buckets"]
        self.instance_buckets = store.attributes(self.instance_root)["buckets"]
        self.table: dict[str, np.ndarray] | None = None
        if ctx.instance_objects:
            rows = [task.instances[s].row for s in slots]  # type: ignore[union-attr]
            names = sorted({shard_part_name(r // ctx.instance_shard_size) for r in rows})
            table = read_parts(ctx.instances, names, INSTANCE_COLUMNS)
            self.table = {
                c: table.column(c).to_numpy(zero_copy_only=False) for c in INSTANCE_COLUMNS
            }

    def read(self, slot: int) -> tuple[np.ndarray, list[Any]]:
        """(semantic class map, instance masks) of the image in ``slot``."""
        image_id = self.task.shard.image_ids[slot]
        sem, inst = self.task.semantic[slot], self.task.instances[slot]
        assert sem is not None and inst is not None
        semantic = _read(self.semantic_root, self.semantic_buckets, image_id, sem)
        ids = _read(self.instance_root, self.instance_buckets, image_id, inst)
        if semantic.shape != ids.shape:
            raise ImageError(f"semantic map {semantic.shape} but instance map {ids.shape}")
        n = int(ids.max()) if ids.size else 0
        kinds = np.zeros(n, dtype=np.int64)
        scores = np.full(n, np.nan)
        own = np.full(n, np.nan)
        if self.table is not None:
            mine = self.table["image_id"] == image_id
            k = self.table["label"][mine].astype(np.int64)
            if k.size and (k.min() < 1 or k.max() > n):
                raise ImageError(f"object table lists instance {int(k.max())}, map has {n}")
            kinds[k - 1] = self.table["class_index"][mine]
            scores[k - 1] = self.table["score"][mine]
            own[k - 1] = self.table["mask_area"][mine]
            present = np.flatnonzero(np.bincount(ids.ravel(), minlength=n + 1)[1:]) + 1
            if np.setdiff1d(present, k).size:
                raise ImageError("the instance store's object table lacks instances of the map")
        else:  # class of each id from the class map; ids are in descending score already
            classes = _read(self.instance_root, self.instance_buckets, image_id, inst, True)
            lookup = np.zeros(n + 1, dtype=np.int64)
            lookup[ids.ravel()] = classes.ravel()
            kinds = lookup[1:]
        return semantic, masks_from_ids(ids, kinds, scores, own)


def _read(
    root: zarr.Group,
    buckets: Sequence[Mapping[str, Any]],
    image_id: str,
    source: Source,
    classes: bool = False,
) -> np.ndarray:
    info = store.ImageInfo(
        image_id, source.row, store.DONE, "", dict(buckets[source.bucket]), source.bucket_row
    )
    return store.read_map(root, info, classes=classes)
