"""Evaluations stored beside a job's results: per-image scores and dataset results by name.

Layout: ``evaluations/<name>-<token>/`` holds ``image_id`` (str, the scored images) and
``values`` (float64, images x columns; attrs ``columns``); the store's attributes hold, under
``evaluations``, one entry per name: its node, columns, truth source and dataset results. A new
evaluation of a name is written beside the old one and switched in by one attribute write,
then the old node is removed: a failed or interrupted evaluation leaves the previous one (and
never touches labels, statistics or status).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from batchseg.store.layout import table_codecs, text_codecs
from batchseg.store.read import attributes, read_array, subgroup, update_attributes

if TYPE_CHECKING:  # pandas is imported where a table is read (a slow import)
    import pandas as pd

EVALUATIONS = "evaluations"
KEY = "evaluations"


def evaluations(root: zarr.Group, attrs: Mapping[str, Any] | None = None) -> dict[str, dict]:
    """The stored evaluations by name (their dataset results and truth source); ``attrs``:
    the store's attributes when the caller has them already (no second read)."""
    found = (attributes(root) if attrs is None else attrs).get(KEY) or {}
    return {str(k): dict(v) for k, v in found.items()}


def write_evaluation(
    root: zarr.Group,
    name: str,
    image_ids: Sequence[str],
    columns: Sequence[str],
    values: np.ndarray,
    result: Mapping[str, Any],
) -> None:
    """Store evaluation ``name`` (replacing an earlier one of that name) in one switch."""
    node = f"{name}-{uuid.uuid4().hex[:12]}"
    group = root.require_group(EVALUATIONS).create_group(node)
    n = len(image_ids)
    ids = group.create_array(
        "image_id",
        shape=(n,),
        chunks=(max(1, min(n, 1 << 16)),),
        dtype=str,
        fill_value="",
        compressors=text_codecs(),
    )
    ids[:] = np.asarray(list(image_ids), dtype=object)
    arr = group.create_array(
        "values",
        shape=(n, len(columns)),
        chunks=(max(1, min(n, 1 << 16)), max(1, len(columns))),
        dtype=np.float64,
        fill_value=np.nan,
        compressors=table_codecs(),
    )
    if n and len(columns):
        arr[:] = values
    arr.attrs["columns"] = list(columns)
    old = evaluations(root).get(name, {}).get("node")
    entry = {**dict(result), "node": node, "columns": list(columns)}
    update_attributes(root, **{KEY: {**evaluations(root), name: entry}})
    if old and old in subgroup(root, EVALUATIONS):
        del subgroup(root, EVALUATIONS)[old]


def delete_evaluation(path: str, name: str) -> dict[str, Any]:
    """Remove evaluation ``name`` (its per-image columns and dataset result) under the store's
    lock and return its stored entry; UsageError, with the names there are, when the store has
    no such evaluation. The entry goes first (one attribute write), then its node."""
    from batchseg.errors import UsageError
    from batchseg.store.lock import store_lock
    from batchseg.store.read import open_group
    from batchseg.words import did_you_mean

    with store_lock(path):
        root = open_group(path, mode="r+")
        found = evaluations(root)
        if name not in found:
            have = ", ".join(repr(k) for k in sorted(found)) or "none"
            raise UsageError(
                f"{path} has no evaluation {name!r}{did_you_mean(name, found, stems=False)} "
                f"(evaluations: {have})"
            )
        entry = found.pop(name)
        update_attributes(root, **{KEY: found})
        node = entry.get("node")
        if node and EVALUATIONS in root and node in subgroup(root, EVALUATIONS):
            del subgroup(root, EVALUATIONS)[node]
    return entry


def evaluation_columns(root: zarr.Group, attrs: Mapping[str, Any] | None = None) -> list[str]:
    """Every per-image evaluation column (``<name>_<metric>``), in name order."""
    found = evaluations(root, attrs)
    return [c for _, entry in sorted(found.items()) for c in entry["columns"]]


def evaluation_frame(
    root: zarr.Group,
    columns: Sequence[str] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """``image_id`` and the wanted evaluation columns of every scored image (outer join)."""
    import pandas as pd

    frame: pd.DataFrame | None = None
    for _, entry in sorted(evaluations(root, attrs).items()):
        wanted = [c for c in entry["columns"] if columns is None or c in columns]
        if not wanted:
            continue
        group = subgroup(subgroup(root, EVALUATIONS), entry["node"])
        ids = read_array(group, "image_id", dtype=object)
        picked = [entry["columns"].index(c) for c in wanted]
        values = read_array(group, "values")[:, picked] if len(ids) else np.zeros((0, 0))
        part = pd.DataFrame(values.reshape(len(ids), len(picked)), columns=wanted)
        part.insert(0, "image_id", ids)
        frame = part if frame is None else frame.merge(part, on="image_id", how="outer")
    return frame if frame is not None else pd.DataFrame({"image_id": []})
