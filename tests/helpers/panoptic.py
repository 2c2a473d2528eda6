"""Hand-built semantic, instance and panoptic stores of a few scenes with known answers.

No model and no cluster: stores are created with ``batchseg.store.create`` and filled with
``batchseg.store.write_shard``, as a job's tasks would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from batchseg import store
from batchseg.core.plan import Plan, plan_shards
from batchseg.io.sources import ImageRef
from batchseg.measure.panoptic import masks_from_ids, merge, stats_columns, unify_classes
from batchseg.measure.panoptic import stats_row as panoptic_row
from batchseg.measure.stats import stats_columns as method_columns

SEMANTIC = ["background", "sky", "road", "car", "person"]
INSTANCE = ["__background__", "person", "car"]
# unified: void, sky (1), road (2), person (3), car (4)


@dataclass
class Scene:
    """One image: its semantic class map and instances (id map, class, score, own area)."""

    semantic: np.ndarray
    ids: np.ndarray
    kinds: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    mask_area: list[float] = field(default_factory=list)

    @property
    def classes(self) -> np.ndarray:
        """The instance class map (what an instance method stores beside the ids)."""
        return np.asarray([0, *self.kinds], dtype=np.uint8)[self.ids]


def scenes() -> dict[str, Scene]:
    """Four images; ``c.png`` is failed in the instance store by :func:`write_instances`."""
    a_sem = np.full((40, 60), 2, np.uint8)
    a_sem[:10] = 1  # sky
    a_sem[20:30, 10:20] = 3  # car, covered by instance 1
    a_sem[30:35, 0:10] = 3  # car without an instance: void
    a_sem[30:40, 50:60] = 0  # background: void
    a_ids = np.zeros((40, 60), np.uint8)
    a_ids[20:30, 10:20] = 1  # car 0.9
    a_ids[12:22, 40:45] = 2  # person 0.8
    a_ids[0:2, 0:2] = 3  # car 0.7: 4 of its 20 pixels left, dropped at overlap 0.5
    a = Scene(a_sem, a_ids, [2, 1, 2], [0.9, 0.8, 0.7], [100, 50, 20])
    b_sem = np.full((40, 60), 1, np.uint8)
    b_sem[20:30, 0:5] = 2  # 50 pixels of road: below min_stuff_area, void
    b = Scene(b_sem, np.zeros((40, 60), np.uint8))
    c = Scene(np.full((30, 50), 2, np.uint8), np.zeros((30, 50), np.uint8))
    d_ids = np.zeros((30, 50), np.uint8)
    d_ids[0:10, 0:10] = 1  # car 0.95
    d_ids[15:25, 20:30] = 2  # car 0.9
    d_ids[0:5, 40:45] = 3  # person 0.5
    d = Scene(np.full((30, 50), 2, np.uint8), d_ids, [2, 2, 1], [0.95, 0.9, 0.5], [100, 100, 25])
    return {"a.png": a, "b.png": b, "c.png": c, "d.png": d}


def _plan(ids: list[str], shapes: list[tuple[int, ...]], shard_size: int) -> Plan:
    refs = [ImageRef(i, f"/nowhere/{i}") for i in ids]
    return plan_shards(refs, shapes, shard_size)


def _write(
    path: Path,
    kind: str,
    classes: list[str],
    found: dict[str, Scene],
    *,
    failed: dict[str, str],
    objects: bool,
    shard_size: int,
) -> None:
    ids = sorted(found)
    plan = _plan(ids, [found[i].semantic.shape for i in ids], shard_size)
    instances = kind == "instances"
    columns = method_columns(kind, classes, objects=False)
    meta = {
        "job": {},
        "method": {"id": f"hand.{kind}", "kind": kind, "params": {}},
        "classes": classes,
        "colours": None,
        "objects": objects,
    }
    root = store.create(
        str(path),
        plan,
        meta=meta,
        header_errors={},
        label_dtypes=[np.dtype(np.uint8)] * len(plan.buckets),
        stats_columns=columns,
        confidence=False,
        objects=objects,
        class_map_dtype=np.dtype(np.uint8) if instances else None,
    )
    store_id = store.attributes(root)["store_id"]
    S = plan.shard_size
    for shard in plan.shards:
        bucket = plan.buckets[shard.bucket]
        shape = (bucket.shard_size, bucket.height, bucket.width)
        labels, class_map = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
        status, errors = np.zeros(S, np.int8), np.full(S, "", dtype=object)
        rows: dict[str, list] = {k: [] for k in ("image_id", "label", "area", "class")}
        rows.update({k: [] for k in ("class_index", "score", "mask_area")})
        for slot, image_id in enumerate(shard.image_ids):
            scene = found[image_id]
            if image_id in failed:
                status[slot], errors[slot] = store.FAILED, failed[image_id]
                continue
            status[slot] = store.DONE
            labels[slot] = scene.ids if instances else scene.semantic
            class_map[slot] = scene.classes
            for k in np.unique(scene.ids[scene.ids > 0]):
                rows["image_id"].append(image_id)
                rows["label"].append(int(k))
                rows["area"].append(int((scene.ids == k).sum()))
                rows["class_index"].append(scene.kinds[k - 1])
                rows["class"].append(INSTANCE[scene.kinds[k - 1]])
                rows["score"].append(scene.scores[k - 1])
                rows["mask_area"].append(scene.mask_area[k - 1])
        table = {
            k: np.asarray(v, dtype=object if k in ("image_id", "class") else None)
            for k, v in rows.items()
        }
        table["label"] = table["label"].astype(np.int64)
        table["class_index"] = table["class_index"].astype(np.int64)
        table["score"] = table["score"].astype(np.float64)
        table["mask_area"] = table["mask_area"].astype(np.float64)
        block = store.ShardBlock(
            labels,
            None,
            np.zeros((S, len(columns))),
            status,
            errors,
            table if instances and objects else None,
            class_map if instances else None,
        )
        store.write_shard(str(path), store_id, S, bucket, shard, block)
    store.consolidate(store.open_group(str(path), mode="r+"))


def write_semantic(path: Path, found: dict[str, Scene] | None = None, shard_size: int = 2) -> Path:
    """A semantic store (kind ``classes``) of the scenes' semantic maps."""
    _write(
        path,
        "classes",
        SEMANTIC,
        found or scenes(),
        failed={},
        objects=False,
        shard_size=shard_size,
    )
    return path


def write_instances(
    path: Path,
    found: dict[str, Scene] | None = None,
    *,
    objects: bool = True,
    shard_size: int = 3,
) -> Path:
    """An instance store of the scenes (``c.png`` failed with ``boom``), other shard size."""
    _write(
        path,
        "instances",
        INSTANCE,
        found or scenes(),
        failed={"c.png": "boom"},
        objects=objects,
        shard_size=shard_size,
    )
    return path


def write_panoptic(path: Path, min_stuff_area: int = 100) -> tuple[Path, dict[str, np.ndarray]]:
    """A panoptic store of the scenes (merged in-process) and the expected label maps."""
    classes = unify_classes(SEMANTIC, INSTANCE)
    found = scenes()
    ids = sorted(found)
    plan = _plan(ids, [found[i].semantic.shape for i in ids], 2)
    columns = stats_columns(classes)
    meta = {
        "job": {},
        "method": {"id": "panoptic", "kind": "panoptic", "params": {}},
        "classes": list(classes.names),
        "is_thing": list(classes.is_thing),
        "colours": [[0, 0, 0], *[[10 * i, 20, 30] for i in range(1, len(classes.names))]],
        "objects": False,
    }
    root = store.create(
        str(path),
        plan,
        meta=meta,
        header_errors={},
        label_dtypes=[np.dtype(np.uint32)] * len(plan.buckets),
        stats_columns=columns,
        confidence=False,
    )
    store_id = store.attributes(root)["store_id"]
    S = plan.shard_size
    merged: dict[str, np.ndarray] = {}
    for shard in plan.shards:
        bucket = plan.buckets[shard.bucket]
        labels = np.zeros((bucket.shard_size, bucket.height, bucket.width), np.uint32)
        stats = np.zeros((S, len(columns)))
        status = np.zeros(S, np.int8)
        for slot, image_id in enumerate(shard.image_ids):
            scene = found[image_id]
            inst = masks_from_ids(
                scene.ids,
                np.asarray(scene.kinds),
                np.asarray(scene.scores),
                np.asarray(scene.mask_area),
            )
            labels[slot], segs = merge(scene.semantic, inst, classes, min_stuff_area=min_stuff_area)
            stats[slot, :-1] = panoptic_row(segs, labels[slot].size, classes)
            status[slot] = store.DONE
            merged[image_id] = labels[slot].copy()
        errors = np.full(S, "", dtype=object)
        block = store.ShardBlock(labels, None, stats, status, errors)
        store.write_shard(str(path), store_id, S, bucket, shard, block)
    store.consolidate(store.open_group(str(path), mode="r+"))
    return path, merged
