"""Finding an image's stored data by id without scanning the catalogue for every image.

``StoreView.locate``/``mask``/``uri`` look an id up by reading the whole ``image_id`` column
(about 2 s per call on a 10^6-image store, and a picture needs three). :class:`IndexedView`
reads the catalogue once (:func:`batchseg.store.load_plan`, 3.6 s at 10^6 images), keeps each
image's bucket, bucket row and uri in arrays, and reads labels through the store's checked
reads (:func:`batchseg.store.read_checked`); status and error come from the table the app
already holds. Every lookup is by id in that index: no path from a request is ever opened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from batchseg import store
from batchseg.api import StoreView
from batchseg.errors import StoreError

log = logging.getLogger(__name__)

_CODES = {name: code for code, name in store.STATUS_NAMES.items()}


class CatalogueIndex:
    """Per image (by id): catalogue bucket, row in the bucket's arrays and source uri."""

    def __init__(self, root: Any) -> None:
        started = time.perf_counter()
        plan = store.load_plan(root)
        ids: list[str] = []
        uris: list[str] = []
        bucket: list[np.ndarray] = []
        bucket_row: list[np.ndarray] = []
        for shard in plan.shards:
            n = len(shard.image_ids)
            size = plan.buckets[shard.bucket].shard_size
            ids.extend(shard.image_ids)
            uris.extend(shard.uris)
            bucket.append(np.full(n, shard.bucket, dtype=np.int32))
            bucket_row.append(shard.bucket_shard * size + np.arange(n, dtype=np.int64))
        self._position = pd.Index(np.asarray(ids, dtype=object))
        self._uris = np.asarray(uris, dtype=object)
        self._bucket = np.concatenate(bucket) if bucket else np.zeros(0, np.int32)
        self._bucket_row = np.concatenate(bucket_row) if bucket_row else np.zeros(0, np.int64)
        self._buckets = [dict(b) for b in store.attributes(root)["buckets"]]
        log.info("indexed %d images in %.1f s", len(ids), time.perf_counter() - started)

    def find(self, image_id: str) -> int:
        """Position of ``image_id``; StoreError when the catalogue has no such image."""
        try:
            where = self._position.get_loc(image_id)
        except KeyError:
            raise StoreError(f"image {image_id!r} is not in the store") from None
        if not isinstance(where, int | np.integer):
            raise StoreError(f"image {image_id!r} is listed more than once in the catalogue")
        return int(where)

    def uri(self, image_id: str) -> str:
        return str(self._uris[self.find(image_id)])

    def info(self, image_id: str, status: str, error: str) -> store.ImageInfo:
        """The :class:`~batchseg.store.ImageInfo` of ``image_id`` with the given status."""
        i = self.find(image_id)
        code = _CODES.get(status, store.DAMAGED)
        bucket = self._buckets[int(self._bucket[i])]
        return store.ImageInfo(image_id, i, code, error, bucket, int(self._bucket_row[i]))


class IndexedView(StoreView):
    """A :class:`StoreView` whose per-image reads use a :class:`CatalogueIndex`.

    ``status_of(image_id)`` gives ``(status, error)`` from the app's cached table.
    """

    def __init__(
        self, path: str, index: CatalogueIndex, status_of: Callable[[str], tuple[str, str]]
    ) -> None:
        super().__init__(path)
        self._index = index
        self._status_of = status_of

    def locate(self, image_id: str) -> store.ImageInfo:
        status, error = self._status_of(image_id)
        return self._index.info(image_id, status, error)

    def uri(self, image_id: str) -> str:
        return self._index.uri(image_id)

    def mask(self, image_id: str, level: int = 0) -> np.ndarray:
        return self._read(image_id, level=level)

    def confidence(self, image_id: str) -> np.ndarray:
        return self._read(image_id, confidence=True)

    def _read(self, image_id: str, level: int = 0, confidence: bool = False) -> np.ndarray:
        """As :func:`batchseg.store.read_labels` (level 0 or a stored pyramid level)."""
        info = self.locate(image_id)
        info.require_done()
        assert info.bucket is not None  # a done image has a bucket
        name = str(info.bucket["name"])
        what = "confidence data" if confidence else "label data"
        root = self.group
        if level:
            levels = info.bucket.get("levels") or []
            arr = (
                None
                if confidence or level not in levels
                else store.pyramid_array(root, name, level)
            )
            if arr is None:
                raise StoreError(f"image {image_id!r} has no stored label level {level}")
            return store.read_checked(root, arr, (0, slice(None), slice(None)), info, what)
        if confidence and "mean_confidence" not in self.columns():
            raise StoreError("this store has no confidence maps (not a semantic method)")
        arr = store.label_array(root, name, confidence=confidence)
        row = 0 if info.tiled else info.bucket_row
        return store.read_checked(root, arr, (row, slice(None), slice(None)), info, what)
