"""The web app's read-only hold on a store: the open view and a cache of table columns.

Columns are read from the consolidated table the first time a query needs them and kept, so
paging and re-sorting a 10^6-row store costs a filter and a sort, not a read. The cache is
dropped when the store's attributes say the table changed (a run finished or started), checked
at most every :data:`RECHECK_SECONDS`. Nothing here writes: the store is opened read-only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd

import batchseg
from batchseg import store
from batchseg.api import StoreView
from batchseg.core.kinds import Kind
from batchseg.errors import StoreError
from batchseg.report.index import CatalogueIndex, IndexedView
from batchseg.serve.redact import PATH_COLUMNS, redact, store_name

log = logging.getLogger(__name__)

#: How often (seconds) the store's attributes are re-read to notice a changed table.
RECHECK_SECONDS = 2.0


class StoreState:
    """One store served by the app: its view, cached columns and an id index.

    Parameters
    ----------
    path : str
        The store (local path or URL); StoreError when it is not a batchseg store.
    show_paths : bool
        Whether answers may show where the store and the images live (the ``uri`` column,
        absolute paths in texts); off, they are left out or shortened (:mod:`~.redact`).
    """

    def __init__(self, path: str, show_paths: bool = False) -> None:
        self.path = path
        self.show_paths = show_paths
        self._lock = threading.RLock()
        self._view = batchseg.open(path)
        self._stamp = self._read_stamp()
        self._checked = time.monotonic()
        self._frame: pd.DataFrame | None = None
        self._index: pd.Index | None = None
        self._summary: dict[str, Any] | None = None
        self._indexed: IndexedView | None = None
        self._indexing: threading.Thread | None = None
        self.start_indexing()

    def start_indexing(self) -> None:
        """Build the catalogue index in the background (the first picture waits for it)."""
        path = self.path

        def build() -> None:
            try:
                index = CatalogueIndex(store.open_group(path, mode="r"))
                view = IndexedView(path, index, self.status_of)
            except Exception as exc:  # noqa: BLE001 - pictures then use the plain view
                log.warning("cannot index the catalogue: %s", exc)
                return
            with self._lock:
                if self.path == path:
                    self._indexed = view

        self._indexing = threading.Thread(target=build, name="batchseg-index", daemon=True)
        self._indexing.start()

    def picture_view(self) -> StoreView:
        """The view to read one image's data through: indexed by id once the index is built."""
        self.view  # noqa: B018 - notices a changed store first
        thread = self._indexing
        if thread is not None:
            thread.join()
        with self._lock:
            return self._indexed or self._view

    def status_of(self, image_id: str) -> tuple[str, str]:
        """(status, error) of ``image_id`` from the cached table; StoreError when unknown."""
        row = self.row(image_id)
        if row is None:
            raise StoreError(f"image {image_id!r} is not in the store")
        frame = self.frame(["error"])
        return str(frame["status"].iloc[row]), str(frame["error"].iloc[row] or "")

    def _read_stamp(self) -> tuple[Any, ...]:
        attrs = store.attributes(store.open_group(self.path, mode="r"))
        runs = attrs.get("runs") or []
        return (
            attrs.get("table_node"),
            attrs.get("consolidated"),
            len(runs),
            str(runs[-1]) if runs else "",
        )

    def _refresh(self) -> None:
        """Drop the caches when the store's table changed since the last look."""
        now = time.monotonic()
        if now - self._checked < RECHECK_SECONDS:
            return
        self._checked = now
        stamp = self._read_stamp()
        if stamp != self._stamp:
            log.info("the store changed (a run finished or started): reloading its table")
            self._stamp = stamp
            self._view = batchseg.open(self.path)
            self._frame, self._index, self._summary = None, None, None
            self._indexed = None
            self.start_indexing()

    @property
    def view(self) -> StoreView:
        """The open store (re-opened when it changed)."""
        with self._lock:
            self._refresh()
            return self._view

    def frame(self, columns: Sequence[str]) -> pd.DataFrame:
        """The table with at least ``image_id``, ``status`` and ``columns`` (cached)."""
        with self._lock:
            self._refresh()
            frame = self._frame
            missing = [c for c in columns if frame is None or c not in frame]
            if frame is None or missing:
                fresh = self._view.table(missing)
                if frame is None:
                    frame = fresh
                else:
                    frame = frame.assign(**{c: fresh[c].to_numpy() for c in missing})
                self._frame = frame
            return frame

    def row(self, image_id: str) -> int | None:
        """The table row of ``image_id``, None when the catalogue has no such image."""
        with self._lock:
            frame = self.frame([])
            if self._index is None:
                self._index = pd.Index(frame["image_id"].to_numpy(dtype=object))
            index = self._index
        try:
            where = index.get_loc(image_id)
        except KeyError:
            return None
        if isinstance(where, int):
            return where
        return None  # ids are unique in a store; anything else is not an answer

    def columns(self) -> list[str]:
        """The table's columns the app answers with (without ``uri`` unless ``show_paths``)."""
        columns = self.view.columns()
        return columns if self.show_paths else [c for c in columns if c not in PATH_COLUMNS]

    def public(self, value: Any, keep: str | None = None) -> Any:
        """``value`` as the app may answer it: absolute paths shortened unless ``show_paths``
        (``keep``: a key of the records of ``value`` left as it is, such as ``image_id``)."""
        if self.show_paths:
            return value
        if keep is not None and isinstance(value, dict):
            return {k: v if k == keep else redact(v) for k, v in value.items()}
        if keep is not None and isinstance(value, list):
            return [self.public(v, keep) for v in value]
        return redact(value)

    def summary(self) -> dict[str, Any]:
        """``StoreView.summary()`` (what ``batchseg stats --json`` prints; cached), paths
        shortened unless ``show_paths``."""
        with self._lock:
            self._refresh()
            if self._summary is None:
                self._summary = dict(self._view.summary())
            if self.show_paths:
                return self._summary
            return {**self.public(self._summary), "store": store_name(self.path)}

    def meta(self) -> dict[str, Any]:
        """What the page needs to draw: kind, classes and colours, columns, optional maps."""
        from batchseg.report.pictures import legend_entries

        view = self.view
        legend = legend_entries(view, overlay=True)
        return {
            "store": self.path if self.show_paths else store_name(self.path),
            "method": view.attrs.get("method", {}).get("id"),
            "kind": view.kind,
            "classes": [
                {"id": i, "name": name, "colour": list(colour)}
                for i, (name, colour) in enumerate(legend)
            ]
            if Kind(view.kind).class_map
            else [],
            "legend": [{"name": n, "colour": list(c)} for n, c in legend],
            "columns": self.columns(),
            "example": example_query(self.columns(), view.kind),
            "confidence": "mean_confidence" in view.columns(),
            "objects": bool(view.attrs.get("objects")),
            "images": int(view.attrs.get("n_images", 0)),
        }


def example_query(columns: Sequence[str], kind: str) -> str:
    """A query over columns this store has, for the page's query box."""
    fractions = [c for c in columns if c.startswith("fraction_") and c != "fraction_background"]
    if fractions:
        first = f"{fractions[0]} > 0.3"
    else:
        counts = [c for c in ("n_regions", "n_objects") if c in columns]
        first = f"{counts[0]} > 10" if counts else "status == 'failed'"
    return f"{first} and width >= 400" if "width" in columns else first
