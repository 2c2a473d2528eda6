"""Python API over a finished (or partly finished) store: table, masks, queries, reports.

``batchseg.open(path)`` returns a :class:`StoreView`; every read goes through
:mod:`batchseg.store` (which alone knows the Zarr layout).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import zarr

from batchseg import store
from batchseg.core.kinds import Kind
from batchseg.core.limits import DEFAULT_MAX_PIXELS
from batchseg.core.meta import StoreMeta
from batchseg.errors import ImageError, QueryError, StoreError
from batchseg.io.planes import StackView
from batchseg.query import Selection, select
from batchseg.results import Failure, ImageRecord, StatusReport, Summary
from batchseg.store.evaluations import evaluation_columns, evaluation_frame
from batchseg.store.evaluations import evaluations as store_evaluations

__all__ = ["Failure", "ImageRecord", "StatusReport", "StoreView", "Summary", "open"]


class StoreView:
    """Read-only view of a batchseg store.

    Parameters
    ----------
    path : str
        The store: a local path or an fsspec URL.

    Raises
    ------
    StoreError
        Nothing is at ``path``, it is not a batchseg store, or its schema is another one.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._root = store.open_group(path, mode="r")

    @property
    def group(self) -> zarr.Group:
        """The store's open root group, to hand to :mod:`batchseg.store` functions."""
        return self._root

    @cached_property
    def meta(self) -> StoreMeta:
        """The store's metadata, parsed and checked once (:class:`batchseg.core.meta.StoreMeta`);
        a malformed attribute is one StoreError naming the store and the key."""
        return store.read_meta(self._root, self.path)

    @cached_property
    def attrs(self) -> dict[str, Any]:
        """The store's batchseg attributes as stored (job, method, classes, plan, runs,
        versions); :attr:`meta` is the typed view."""
        return dict(self.meta.raw)

    @property
    def kind(self) -> Kind:
        """The output kind (a :class:`batchseg.core.kinds.Kind`, equal to its name):
        ``classes`` (class maps), ``regions`` (region label maps), ``instances`` (instance-id
        maps with a class map beside them, :meth:`class_map`) or ``panoptic``
        (``class_index * 1000 + instance`` per pixel, ``batchseg panoptic``)."""
        return self.meta.kind

    @property
    def classes(self) -> list[str] | None:
        """Class names of a semantic method, None for region methods."""
        return list(self.meta.classes) if self.meta.kind.has_classes else None

    @cached_property
    def colours(self) -> list[list[int]] | None:
        """RGB colour per class (None when the store has none); a bad stored table reads as
        the default colours, with one warning (:func:`batchseg.render.stored_colours`)."""
        from batchseg.render import stored_colours

        return stored_colours(self.attrs.get("colours"), self.classes, self.path)

    def columns(self) -> list[str]:
        """Every column of :meth:`table`.

        Returns
        -------
        list of str
            ``image_id``, ``status``, ``error``, ``height``, ``width``, the statistics, ``uri``.
        """
        return [*store.table_columns(self._root), *evaluation_columns(self._root, self.attrs)]

    def table(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per image: ``image_id``, ``status``, ``error``, size, every statistic, uri.

        Parameters
        ----------
        columns : sequence of str, optional
            Read only these (plus ``image_id`` and ``status``), faster on big stores.

        Returns
        -------
        pandas.DataFrame
            ``status`` is categorical: empty, pending, done, failed or damaged (a stored
            status code batchseg does not know).

        Raises
        ------
        QueryError
            An unknown column name.
        StoreError
            The table cannot be read (damaged store).
        """
        if columns is not None:
            unknown = sorted(set(columns) - set(self.columns()))
            if unknown:
                raise QueryError(f"unknown column {unknown[0]!r}")
        scored = evaluation_columns(self._root, self.attrs)
        base = None if columns is None else [c for c in columns if c not in scored]
        table = store.read_table(self._root, base)
        wanted = scored if columns is None else [c for c in columns if c in scored]
        if not wanted:
            return table
        extra = evaluation_frame(self._root, wanted, self.attrs)
        return table.merge(extra, on="image_id", how="left")

    def evaluations(self) -> dict[str, dict[str, Any]]:
        """The stored evaluations by name: dataset results, confusion matrix, truth source
        (:func:`batchseg.evaluate` scores a store; this view never writes to it)."""
        return store_evaluations(self._root, self.attrs)

    def query(self, expr: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows of :meth:`table` where the boolean expression ``expr`` holds.

        Parameters
        ----------
        expr : str
            A safe boolean expression over the columns (see :mod:`batchseg.query`).
        columns : sequence of str, optional
            Read and return only the expression's columns and these (globs allowed).

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        QueryError
            An invalid expression or an unknown column.
        """
        if expr == "":  # a Selection reads "" as every row; a query must say something
            raise QueryError("the query is empty")
        chosen = Selection(where=expr, columns=None if columns is None else list(columns))
        return select(self, chosen, self.columns(), integers=False).rows

    def objects(
        self,
        where: str | None = None,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """One row per object per image (jobs that measured objects).

        Parameters
        ----------
        where : str, optional
            A safe boolean expression over the object columns (the grammar of
            :meth:`query`), pushed down to the Parquet scan: the whole table is never loaded
            to filter it.
        columns : sequence of str, optional
            Return only these columns (globs allowed; default: all).
        limit : int, optional
            Stop after this many matching rows.

        Returns
        -------
        pandas.DataFrame
            ``image_id``, ``label``, ``area``, ``centroid_row``, ``centroid_col``, ``bbox_*``
            (max exclusive), ``eccentricity``, ``solidity``, ``orientation``, ``perimeter``,
            ``equivalent_diameter``, ``major_axis_length``, ``minor_axis_length``,
            ``mean_intensity`` and, for RGB images, ``mean_red``/``green``/``blue``.

        Raises
        ------
        QueryError
            An invalid expression or an unknown column.
        StoreError
            The store has no object tables (the job ran without ``--objects``).
        """
        from batchseg.store import objects as parts

        chosen = Selection(where, None if columns is None else list(columns), limit=limit)
        query = chosen.expression()
        data = parts.require_dataset(self.path)
        names = chosen.column_names(data.schema.names, data.schema.names)
        return parts.scan(data, None if query is None else query.text, names, limit).to_pandas()

    def mask(self, image_id: str, level: int = 0) -> np.ndarray:
        """The label map of one image.

        Parameters
        ----------
        image_id : str
            The image's id in the store.
        level : int
            0: the map at its original size; > 0: a tiled image's stored pyramid level,
            ``labels[::2^level, ::2^level]``.

        Returns
        -------
        numpy.ndarray
            ``(height, width)`` class ids or region ids.

        Raises
        ------
        StoreError
            The image is unknown, not done (pending, failed, damaged), has no such level, or
            its stored data is missing or fails its checksum (the message names the image).
        """
        return store.read_labels(self._root, image_id, level=level)

    def class_map(self, image_id: str) -> np.ndarray:
        """The class index of every pixel of an instance method's result (0 = background).

        :meth:`mask` of such a store is the instance-id map (ids 1..n by descending score);
        this is the class map of the same pixels, and :meth:`classes` names its values.

        Raises
        ------
        StoreError
            As :meth:`mask`, or the store holds no instance results.
        """
        return store.read_labels(self._root, image_id, classes=True)

    def confidence(self, image_id: str) -> np.ndarray:
        """Per-pixel confidence (uint8 0-255) of a semantic method's class map.

        Raises
        ------
        StoreError
            As :meth:`mask`, or the store has no confidence maps.
        """
        return store.read_labels(self._root, image_id, confidence=True)

    def uri(self, image_id: str) -> str:
        """The source image's URI.

        Raises
        ------
        StoreError
            The image is not in the store.
        """
        return store.image_uri(self._root, image_id)

    def image(self, image_id: str) -> ImageRecord:
        """``image_id``'s catalogue entry: status (``done``, ...), error, row and size.

        Raises
        ------
        StoreError
            The image is not in the store.
        """
        info = self.locate(image_id)
        bucket = info.bucket
        return ImageRecord(
            image_id=info.image_id,
            status=store.STATUS_NAMES[info.status],
            error=info.error,
            row=info.row,
            height=None if bucket is None else int(bucket["height"]),
            width=None if bucket is None else int(bucket["width"]),
            tiled=info.tiled,
        )

    def locate(self, image_id: str) -> store.ImageInfo:
        """Where ``image_id``'s results are stored (status code, bucket and row), for
        :mod:`batchseg.store` functions.

        Raises
        ------
        StoreError
            The image is not in the store.
        """
        return store.image_info(self._root, image_id)

    def stack_view(self, channels: str | None = None) -> StackView | None:
        """How the store's job read stacks (``--planes``, ``--channels``...), with
        ``channels`` instead of the method's where given; None for a job without them.

        Parameters
        ----------
        channels : str, optional
            Channels to show: an index, three as RGB (``"2,1,0"``) or ``"mean"``.
        """
        from batchseg.io.planes import recorded_view

        return recorded_view(dict(self.meta.job), channels)

    def source(self, image_id: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """The source pixels of ``image_id``, decoded as a job decodes them (``H x W`` grey or
        ``H x W x 3`` RGB, EXIF orientation applied).

        Parameters
        ----------
        image_id : str
            The image's id in the store.
        max_pixels : int
            Largest image decoded (``--max-pixels``); a source larger than its stored size
            is refused from its header too (a file replaced by a decompression bomb).

        Raises
        ------
        StoreError
            The image is not in the store, or its header could not be read when listed.
        ImageError
            The source cannot be read, is over a limit, or its size is not the stored one.
        """
        from batchseg.io.windowed import read_overlay_source

        record = self.image(image_id)
        if record.height is None or record.width is None:
            raise StoreError(f"image {image_id!r} has no stored size: {record.error}")
        shape = (record.height, record.width)
        uri = self.uri(image_id)
        try:
            pixels = read_overlay_source(uri, shape, 0, max_pixels, stacks=self.stack_view())
        except ImageError as exc:
            raise ImageError(f"source of {image_id!r} ({uri}): {exc}") from None
        if pixels.shape[:2] != shape:
            raise ImageError(
                f"source of {image_id!r} ({uri}) is {pixels.shape[1]}x{pixels.shape[0]} but "
                f"was segmented at {shape[1]}x{shape[0]}: the file changed since"
            )
        return pixels

    def verify(self) -> store.VerifyReport:
        """Check every done image's stored data without changing the store.

        Returns
        -------
        VerifyReport
            Rows checked and the damaged ones with reasons (``marked`` is 0); to mark them
            for re-segmentation use :func:`batchseg.store.verify` (``batchseg verify``).
        """
        return store.verify(self.path, mark=False)

    def status(self) -> StatusReport:
        """Counts per status and the failed images with their errors.

        Returns
        -------
        dict
            ``store``, ``images``, ``done``, ``failed``, ``pending``, ``damaged`` (rows with a
            status code batchseg does not know: re-segmented by the next run), ``failures``
            (``image_id`` and ``error`` per failed image) and ``damaged_images`` (ids).
        """
        table = self.table()
        counts = table["status"].value_counts()
        failed = table[table["status"] == "failed"]
        damaged = table[table["status"] == "damaged"]
        report: StatusReport = {
            "store": self.path,
            "images": int(len(table)),
            "done": int(counts.get("done", 0)),
            "failed": int(counts.get("failed", 0)),
            "pending": int(counts.get("pending", 0)),
            "damaged": int(counts.get("damaged", 0)),
            "failures": [
                {"image_id": i, "error": e}
                for i, e in zip(failed["image_id"], failed["error"], strict=True)
            ],
            "damaged_images": [str(i) for i in damaged["image_id"]],
        }
        appends = self.meta.appends
        if appends:
            report["gone_at_last_append"] = int(appends[-1].get("gone", 0))
        return report

    def summary(self) -> Summary:
        """Dataset-level summary: per-class pixels or region-count distribution, throughput.

        Returns
        -------
        dict
            Counts, pixels, shapes, per-class totals (class maps) or region-count
            distribution (region maps), seconds per image and the runs.
        """
        table = self.table()
        done = table[table["status"] == "done"]
        out: Summary = {
            "store": self.path,
            "method": self.meta.method.id,
            "params": dict(self.meta.method.params),
            "images": int(len(table)),
            "done": int(len(done)),
            "failed": int((table["status"] == "failed").sum()),
            "pending": int((table["status"] == "pending").sum()),
            "damaged": int((table["status"] == "damaged").sum()),
            "pixels": int((done["height"].astype(np.int64) * done["width"]).sum()),
            "shapes": len(self.meta.buckets),
        }
        if Kind(self.kind).has_classes:
            keys = [c[len("pixels_") :] for c in table.columns if c.startswith("pixels_")]
            total = max(1, out["pixels"])
            out["classes"] = {
                k: {
                    "pixels": int(done[f"pixels_{k}"].sum()),
                    "fraction": float(done[f"pixels_{k}"].sum() / total),
                    "images_with_class": int((done[f"pixels_{k}"] > 0).sum()),
                }
                for k in keys
            }
            if Kind(self.kind).object_classes:  # panoptic: thing classes only
                for k in keys:
                    if f"n_{k}" in done:
                        out["classes"][k]["instances"] = int(done[f"n_{k}"].sum())
            if "mean_confidence" in done:
                out["mean_confidence"] = (
                    float(done["mean_confidence"].mean()) if len(done) else None
                )
        if not Kind(self.kind).class_map:
            n = done["n_regions"]
            out["regions"] = {
                "total": int(n.sum()),
                "per_image": _distribution(n),
                "area_mean": float(done["area_mean"].mean()) if len(done) else None,
            }
        out["seconds_per_image"] = _distribution(done["seconds"])
        runs = self.meta.runs
        out["runs"] = runs
        if runs:
            out["last_run_images_per_second"] = runs[-1]["images_per_second"]
        scored = self.evaluations()
        if scored:
            out["evaluations"] = {
                name: {k: v for k, v in e.items() if k not in ("confusion_matrix", "node")}
                for name, e in scored.items()
            }
        return out


def _distribution(values: pd.Series) -> dict[str, float] | None:
    if len(values) == 0:
        return None
    q = values.quantile([0.0, 0.25, 0.5, 0.75, 1.0]).to_numpy()
    return {
        "min": float(q[0]),
        "p25": float(q[1]),
        "median": float(q[2]),
        "p75": float(q[3]),
        "max": float(q[4]),
        "mean": float(values.mean()),
    }


def open(path: str) -> StoreView:  # noqa: A001 - the documented API name
    """Open a batchseg store for reading.

    Parameters
    ----------
    path : str
        The store: a local path or an fsspec URL (``s3://``, ``gs://``, ``file://``...).

    Returns
    -------
    StoreView

    Raises
    ------
    StoreError
        Nothing is at ``path``, or it is not a batchseg store of this schema.
    """
    return StoreView(path)
