"""A small store with object tables, written without a cluster (store-level tests).

Built as a job writes it: :func:`batchseg.store.create` with ``objects=True``, then one
:func:`batchseg.store.write_shard` per shard with the labels, the statistics (``n_objects``
included) and the measured objects of random region maps, then the consolidated table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from batchseg import store
from batchseg.core.plan import plan_shards
from batchseg.io.sources import ImageRef
from batchseg.measure.objects import measure_objects, object_aggregates
from batchseg.measure.stats import region_stats, stats_columns

COLUMNS = stats_columns("regions", None, objects=True)
H, W, N, S = 24, 32, 6, 3


def build_object_store(path: Path, *, seed: int = 0) -> dict[str, np.ndarray]:
    """A consolidated store of ``N`` done region maps with objects (two shards of ``S``);
    returns the label map of each image id."""
    refs = [ImageRef(f"img{i}.png", f"/data/img{i}.png") for i in range(N)]
    plan = plan_shards(refs, [(H, W)] * N, S)
    root = store.create(
        str(path),
        plan,
        meta={"method": {"id": "test", "kind": "regions"}, "classes": None, "objects": True},
        header_errors={},
        label_dtypes=[np.dtype(np.uint16)],
        stats_columns=COLUMNS,
        confidence=False,
        objects=True,
    )
    store_id = store.attributes(root)["store_id"]
    rng = np.random.default_rng(seed)
    maps: dict[str, np.ndarray] = {}
    for shard in plan.shards:
        bucket = plan.buckets[shard.bucket]
        labels = np.zeros((bucket.shard_size, H, W), np.uint16)
        stats = np.full((S, len(COLUMNS)), np.nan)
        parts: dict[str, list[np.ndarray]] = {}
        for slot, image_id in enumerate(shard.image_ids):
            labels[slot] = np.repeat(np.repeat(rng.integers(0, 30, (H // 4, W // 4)), 4, 0), 4, 1)
            measured = measure_objects(labels[slot], rng.uniform(0, 255, (H, W)))
            measured["image_id"] = np.full(len(measured["label"]), image_id, dtype=object)
            for name, values in measured.items():
                parts.setdefault(name, []).append(np.asarray(values))
            stats[slot] = [*region_stats(labels[slot]), *object_aggregates(measured["area"]), 0.01]
            maps[image_id] = labels[slot].copy()
        block = store.ShardBlock(
            labels,
            None,
            stats,
            np.full(S, store.DONE, np.int8),
            np.full(S, "", dtype=object),
            {name: np.concatenate(values) for name, values in parts.items()},
        )
        store.write_shard(str(path), store_id, S, bucket, shard, block)
    store.consolidate(store.open_group(str(path), mode="r+"))
    return maps


def part_file(path: Path, shard: int) -> Path:
    """The Parquet part of task shard ``shard``."""
    return path / "objects" / f"part-{shard:06d}.parquet"
