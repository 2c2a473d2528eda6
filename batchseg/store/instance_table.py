"""Class index and score of every instance of an image, read from the store."""

from __future__ import annotations

import numpy as np
import zarr

from batchseg.core.meta import StoreMeta
from batchseg.errors import StoreError
from batchseg.store.object_parts import read_parts
from batchseg.store.objects import shard_part_name
from batchseg.store.read import ImageInfo, read_map


class InstanceTable:
    """Class index and score of each instance id of an image (from the object table)."""

    def __init__(self, path: str, root: zarr.Group, meta: StoreMeta) -> None:
        self.path, self.root = path, root
        self.objects = meta.objects
        self.shard_size = meta.shard_size
        self.part: tuple[str, dict[str, np.ndarray]] | None = None

    def of(self, info: ImageInfo, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(class index, score) per id 1..max; NaN scores without an object table."""
        n = int(ids.max()) if ids.size else 0
        kinds, scores = np.zeros(n, np.int64), np.full(n, np.nan)
        if not self.objects:
            classes = read_map(self.root, info, classes=True)
            lookup = np.zeros(n + 1, np.int64)
            lookup[ids.ravel()] = classes.ravel()
            return lookup[1:], scores
        name = shard_part_name(info.row // self.shard_size)
        if self.part is None or self.part[0] != name:
            table = read_parts(self.path, [name], ["image_id", "label", "class_index", "score"])
            columns = {
                c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names
            }
            self.part = (name, columns)
        rows = self.part[1]
        mine = rows["image_id"] == info.image_id
        labels = rows["label"][mine].astype(np.int64)
        if labels.size and (labels.min() < 1 or labels.max() > n):
            raise StoreError(f"image {info.image_id!r}: object table and label map disagree")
        kinds[labels - 1] = rows["class_index"][mine]
        scores[labels - 1] = rows["score"][mine]
        return kinds, scores
