"""Shared pieces of the benchmark suite: the image set, the per-image work, the label codec.

Every contender does the same per-image work, :func:`process_one`:

* decode with ``batchseg.io.read.read_image``,
* segment with batchseg's registered kernel ``get_method(id).segment(image, params)``,
* cast the labels to the dtype batchseg stores for that shape (``Method.label_dtype``),
* compress them with the store's label codec settings (Blosc zstd, level 5, bitshuffle, i.e.
  ``batchseg.store.label_codec()``, through numcodecs) and write one file per image.

batchseg itself additionally computes per-image statistics and writes a Zarr v3 store with a
catalogue; that extra work is part of its measured time.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

CAMVID = "camvid/val"
BSDS = "bsds500/images/val"


# --------------------------------------------------------------------------- image set


def build_image_set(data: Path, work: Path, *, repeats: int, limit: int | None = None) -> Path:
    """A folder of symlinks: ``rep<k>/<camvid file>`` for k < repeats, plus ``bsds/<file>``.

    batchseg deduplicates image ids, so repeating the CamVid files needs distinct names. The
    folder is rebuilt each time. Returns the folder; ``image_list`` gives the sorted paths.
    """
    camvid = sorted((data / CAMVID).glob("*.png"))
    bsds = sorted((data / BSDS).glob("*.jpg"))
    if not camvid or not bsds:
        raise SystemExit(f"no images under {data / CAMVID} or {data / BSDS}")
    if limit is not None:
        camvid, bsds = camvid[:limit], bsds[:limit]
    root = work / "images"
    if root.exists():
        for p in sorted(root.rglob("*"), reverse=True):
            p.unlink() if p.is_symlink() or p.is_file() else p.rmdir()
    root.mkdir(parents=True, exist_ok=True)
    for k in range(repeats):
        sub = root / f"rep{k}"
        sub.mkdir()
        for f in camvid:
            (sub / f.name).symlink_to(f.resolve())
    sub = root / "bsds"
    sub.mkdir()
    for f in bsds:
        (sub / f.name).symlink_to(f.resolve())
    return root


def image_list(root: Path) -> list[str]:
    """Sorted absolute paths of the images under ``root`` (the same list for every contender)."""
    return sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in (".png", ".jpg"))


def write_list(paths: Sequence[str], target: Path) -> Path:
    target.write_text("\n".join(paths) + "\n")
    return target


def read_list(path: str | Path) -> list[str]:
    return [line for line in Path(path).read_text().splitlines() if line]


# --------------------------------------------------------------------------- per-image work


def label_codec() -> Any:
    """numcodecs twin of ``batchseg.store.label_codec()`` (Blosc zstd 5, bitshuffle)."""
    import numcodecs
    from numcodecs import blosc

    # Single-threaded like the store's codec (zarr encodes off the main thread, where numcodecs
    # Blosc runs without its own threads); in a main thread Blosc would otherwise use 2+.
    blosc.use_threads = False
    return numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.BITSHUFFLE)


_CACHE: dict[tuple[str, str], tuple[Any, dict[str, Any]]] = {}


def method_and_params(method_id: str, params_json: str = "{}") -> tuple[Any, dict[str, Any]]:
    key = (method_id, params_json)
    if key not in _CACHE:
        from batchseg.methods import get_method

        method = get_method(method_id)
        _CACHE[key] = (method, method.resolve_params(json.loads(params_json)))
    return _CACHE[key]


def process_one(
    path: str, index: int, out_dir: str, method_id: str, params_json: str = "{}"
) -> int:
    """Decode, segment, compress and write one image; returns the compressed size."""
    from batchseg.io.read import read_image

    method, params = method_and_params(method_id, params_json)
    image = read_image(path)
    labels = method.segment(image, params)
    h, w = labels.shape
    labels = np.ascontiguousarray(labels.astype(method.label_dtype(params, h, w), copy=False))
    data = label_codec().encode(labels)
    with open(os.path.join(out_dir, f"{index:06d}.blosc"), "wb") as fh:
        fh.write(data)
    return len(data)


def process_many(
    items: Sequence[tuple[int, str]], out_dir: str, method_id: str, params_json: str = "{}"
) -> int:
    """:func:`process_one` over a chunk of ``(index, path)``; returns the images done."""
    for index, path in items:
        process_one(path, index, out_dir, method_id, params_json)
    return len(items)


def process_item(item: tuple[int, str], out_dir: str, method_id: str, params_json: str) -> int:
    return process_one(item[1], item[0], out_dir, method_id, params_json)


def timed_one(
    path: str, index: int, out_dir: str, method_id: str, params_json: str = "{}"
) -> dict[str, float]:
    """:func:`process_one` with a per-step clock (and the statistics batchseg adds, timed apart)."""
    from batchseg.io.read import read_image
    from batchseg.measure.stats import class_stats, region_stats

    method, params = method_and_params(method_id, params_json)
    t0 = time.perf_counter()
    image = read_image(path)
    t1 = time.perf_counter()
    labels = method.segment(image, params)
    t2 = time.perf_counter()
    h, w = labels.shape
    labels = np.ascontiguousarray(labels.astype(method.label_dtype(params, h, w), copy=False))
    t3 = time.perf_counter()
    data = label_codec().encode(labels)
    t4 = time.perf_counter()
    with open(os.path.join(out_dir, f"{index:06d}.blosc"), "wb") as fh:
        fh.write(data)
    t5 = time.perf_counter()
    if method.kind == "classes":
        class_stats(labels, len(method.classes(params) or []))
    else:
        region_stats(labels)
    t6 = time.perf_counter()
    return {
        "decode": t1 - t0,
        "kernel": t2 - t1,
        "cast": t3 - t2,
        "encode": t4 - t3,
        "file_write": t5 - t4,
        "stats": t6 - t5,
    }


def chunks(items: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def n_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def dir_bytes(path: str | Path) -> int:
    """Sum of the file sizes under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def ray_batch(
    batch: dict[str, np.ndarray], out_dir: str, method_id: str, params_json: str
) -> dict[str, np.ndarray]:
    """Ray Data ``map_batches`` function: the same per-image work over one batch."""
    for index, path in zip(batch["index"], batch["path"], strict=True):
        process_one(str(path), int(index), out_dir, method_id, params_json)
    return {"done": np.array([len(batch["index"])])}
