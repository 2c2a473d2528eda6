"""Python API over a finished (or partly finished) store: table, masks, queries, reports."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from batchseg import query as query_lang
from batchseg import store
from batchseg.errors import QueryError


class StoreView:
    """Read-only view of a batchseg store."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._root = store.open_group(path, mode="r")

    @cached_property
    def attrs(self) -> dict[str, Any]:
        """The store's batchseg attributes (job, method, classes, plan, runs, versions)."""
        return store.attributes(self._root)

    @property
    def kind(self) -> str:
        return str(self.attrs["method"]["kind"])

    @property
    def classes(self) -> list[str] | None:
        return self.attrs.get("classes")

    @property
    def colours(self) -> list[list[int]] | None:
        return self.attrs.get("colours")

    def columns(self) -> list[str]:
        """Every column of :meth:`table`."""
        return store.table_columns(self._root)

    def table(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per image: ``image_id``, ``status``, ``error``, size, every statistic, uri.

        ``columns`` reads only those (plus ``image_id`` and ``status``), faster on big stores.
        """
        if columns is not None:
            unknown = sorted(set(columns) - set(self.columns()))
            if unknown:
                raise QueryError(f"unknown column {unknown[0]!r}")
        return store.read_table(self._root, columns)

    def query(self, expr: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows of :meth:`table` where the boolean expression ``expr`` holds.

        With ``columns``, only the expression's columns and those are read and returned.
        """
        parsed = query_lang.parse(expr)
        parsed.check_columns(self.columns())
        needed = None if columns is None else sorted(set(columns) | set(parsed.columns))
        table = query_lang.filter_table(self.table(needed), parsed)
        if columns is not None:
            table = table[["image_id", *[c for c in columns if c != "image_id"]]]
        return table.reset_index(drop=True)

    def mask(self, image_id: str, level: int = 0) -> np.ndarray:
        """The label map of ``image_id`` at its original size (``level`` > 0: a tiled image's
        stored pyramid level, ``labels[::2^level, ::2^level]``)."""
        return store.read_labels(self._root, image_id, level=level)

    def confidence(self, image_id: str) -> np.ndarray:
        """Per-pixel confidence (uint8 0-255) of a semantic method's class map."""
        return store.read_labels(self._root, image_id, confidence=True)

    def uri(self, image_id: str) -> str:
        row = store.find_row(self._root, image_id)
        return str(store.read_array(self._root, "catalogue/uri", row))

    def status(self) -> dict[str, Any]:
        """Counts per status and the failed images with their errors."""
        table = self.table()
        counts = table["status"].value_counts()
        failed = table[table["status"] == "failed"]
        return {
            "store": self.path,
            "images": int(len(table)),
            "done": int(counts.get("done", 0)),
            "failed": int(counts.get("failed", 0)),
            "pending": int(counts.get("pending", 0)),
            "failures": [
                {"image_id": i, "error": e}
                for i, e in zip(failed["image_id"], failed["error"], strict=True)
            ],
        }

    def summary(self) -> dict[str, Any]:
        """Dataset-level summary: per-class pixels or region-count distribution, throughput."""
        table = self.table()
        done = table[table["status"] == "done"]
        out: dict[str, Any] = {
            "store": self.path,
            "method": self.attrs["method"]["id"],
            "params": self.attrs["method"]["params"],
            "images": int(len(table)),
            "done": int(len(done)),
            "failed": int((table["status"] == "failed").sum()),
            "pending": int((table["status"] == "pending").sum()),
            "pixels": int((done["height"].astype(np.int64) * done["width"]).sum()),
            "shapes": int(len(self.attrs["buckets"])),
        }
        if self.kind == "classes":
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
            if "mean_confidence" in done:
                out["mean_confidence"] = (
                    float(done["mean_confidence"].mean()) if len(done) else None
                )
        else:
            n = done["n_regions"]
            out["regions"] = {
                "total": int(n.sum()),
                "per_image": _distribution(n),
                "area_mean": float(done["area_mean"].mean()) if len(done) else None,
            }
        out["seconds_per_image"] = _distribution(done["seconds"])
        runs = self.attrs.get("runs", [])
        out["runs"] = runs
        if runs:
            out["last_run_images_per_second"] = runs[-1]["images_per_second"]
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
    """Open a batchseg store for reading."""
    return StoreView(path)
