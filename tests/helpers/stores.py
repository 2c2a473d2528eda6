"""Compare result stores value by value, count row statuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

#: Job-spec keys that say how a run was launched, not what it computes.
RUNTIME_KEYS = {"output", "scheduler", "workers", "threads_per_worker", "io_threads", "cluster"}


def snapshot(path: str | Path) -> dict[str, object]:
    """Everything a store computes, as plain values.

    Excluded on purpose: the ``seconds`` statistics column (wall time per image), and the
    attributes that record *when/how* rather than *what*: ``runs`` (per-run timings and
    counts), ``created`` (timestamp), ``store_id`` (a random id per store) and the job spec's
    runtime keys (output path, scheduler address, worker counts, cluster profile).
    """
    root = zarr.open_group(str(path), mode="r")
    attrs = dict(root.attrs["batchseg"])
    for key in ("runs", "created", "store_id"):
        attrs.pop(key)
    attrs.pop("table_node", None)  # a fresh random name each time the table is consolidated
    attrs["job"] = {k: v for k, v in attrs["job"].items() if k not in RUNTIME_KEYS}
    out: dict[str, object] = {"attrs": attrs}
    for name in root["catalogue"].array_keys():
        out[f"catalogue/{name}"] = np.asarray(root[f"catalogue/{name}"][:])
    columns = list(root["stats"].attrs["columns"])
    keep = [i for i, c in enumerate(columns) if c != "seconds"]
    out["stats.columns"] = [columns[i] for i in keep]
    out["stats"] = np.asarray(root["stats"][:])[:, keep]
    for group in ("labels", "confidence"):
        if group in root:
            for name in root[group].array_keys():
                arr = root[f"{group}/{name}"]
                out[f"{group}/{name}"] = (str(arr.dtype), np.asarray(arr[:]))
    return out


def assert_same_store(got: str | Path, want: str | Path) -> None:
    """The two stores hold the same computed values (see :func:`snapshot`)."""
    a, b = snapshot(got), snapshot(want)
    assert sorted(a) == sorted(b)
    assert a["attrs"] == b["attrs"]
    for key in a:
        if key == "attrs":
            continue
        x, y = a[key], b[key]
        if isinstance(x, tuple):  # (dtype, labels)
            assert isinstance(y, tuple)
            assert x[0] == y[0], key
            x, y = x[1], y[1]
        if isinstance(x, np.ndarray) and x.dtype.kind == "f":
            np.testing.assert_array_equal(x, y, err_msg=key)  # NaN == NaN here
        elif isinstance(x, np.ndarray):
            assert isinstance(y, np.ndarray)
            assert x.dtype == y.dtype and x.shape == y.shape, key
            assert (x == y).all(), key
        else:
            assert x == y, key


def status_counts(path: str | Path) -> dict[str, int]:
    """Rows pending / done / failed in a store's catalogue."""
    status = np.asarray(zarr.open_group(str(path), mode="r")["catalogue/status"][:])
    return {
        "pending": int((status == 1).sum()),
        "done": int((status == 2).sum()),
        "failed": int((status == 3).sum()),
    }
