"""Label storage: bytes on disk per method, and a codec comparison on the same label maps.

For each method a batchseg store is written (``batchseg run``, default parameters) over the
CamVid + BSDS images; then every stored label map is encoded again, one image per chunk as in
the store, with each candidate codec, timing encode and decode.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from tests.benchmarks import bench_common as bc

METHODS = ("skimage.slic", "skimage.felzenszwalb", "skimage.otsu", "kmeans")


def codecs() -> dict[str, Any]:
    """Candidate codecs, single-threaded (numcodecs Blosc's own threads off)."""
    import numcodecs
    from numcodecs import blosc

    blosc.use_threads = False
    shuffles = {
        "bitshuffle": numcodecs.Blosc.BITSHUFFLE,
        "shuffle": numcodecs.Blosc.SHUFFLE,
        "noshuffle": numcodecs.Blosc.NOSHUFFLE,
    }
    out: dict[str, Any] = {}
    for level in (1, 3, 5):
        for name, sh in shuffles.items():
            out[f"blosc-zstd{level}-{name}"] = numcodecs.Blosc("zstd", level, sh)
    out["blosc-lz4-5-bitshuffle"] = numcodecs.Blosc("lz4", 5, numcodecs.Blosc.BITSHUFFLE)
    out["blosc-lz4-5-shuffle"] = numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE)
    out["zstd3"] = numcodecs.Zstd(level=3)
    out["gzip6"] = numcodecs.GZip(level=6)
    return out


STORE_CODEC = "blosc-zstd5-bitshuffle"  # batchseg.store.label_codec()


def run_store(batchseg: str, images: Path, method: str, store: Path, log: Path) -> float:
    t0 = time.perf_counter()
    with open(log, "ab") as fh:
        proc = subprocess.run(
            [
                batchseg,
                "-q",
                "run",
                str(images),
                "-m",
                method,
                "-o",
                str(store),
                "--workers",
                str(bc.n_cores()),
                "--overwrite",
            ],
            stdout=fh,
            stderr=fh,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"batchseg run {method} exited {proc.returncode}; see {log}")
    return time.perf_counter() - t0


def stored_labels(store: Path) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Every done image's label map as stored (bucket dtype), plus the store's bucket list."""
    import zarr

    root = zarr.open_group(str(store), mode="r")
    attrs = dict(root.attrs["batchseg"])
    cat = root["catalogue"]
    status = np.asarray(cat["status"][:])
    bucket = np.asarray(cat["bucket"][:])
    brow = np.asarray(cat["bucket_row"][:])
    maps: list[np.ndarray] = []
    for b in attrs["buckets"]:
        rows = brow[(bucket == b["index"]) & (status == 2)]
        if rows.size:
            arr = np.asarray(root[f"labels/{b['name']}"][:])
            maps.extend(np.ascontiguousarray(arr[r]) for r in rows)
    return maps, attrs


def measure_codecs(maps: list[np.ndarray]) -> dict[str, dict[str, float]]:
    raw = sum(m.size for m in maps)  # uint8 bytes: H*W per image
    out: dict[str, dict[str, float]] = {}
    for name, codec in codecs().items():
        t0 = time.perf_counter()
        encoded = [codec.encode(m) for m in maps]
        t1 = time.perf_counter()
        for e in encoded:
            codec.decode(e)
        t2 = time.perf_counter()
        size = sum(len(e) for e in encoded)
        out[name] = {
            "bytes": size,
            "ratio_to_raw_uint8": size / raw,
            "encode_ms_per_image": 1e3 * (t1 - t0) / len(maps),
            "decode_ms_per_image": 1e3 * (t2 - t1) / len(maps),
        }
    return out


def main(
    data: Path, work: Path, *, limit: int | None, methods: tuple[str, ...] = METHODS, log=print
) -> dict[str, Any]:  # noqa: ANN001
    images = bc.build_image_set(data, work / "storage", repeats=1, limit=limit)
    batchseg = str(Path(sys.executable).with_name("batchseg"))
    results: dict[str, Any] = {}
    for method in methods:
        store = work / "storage" / f"{method}.zarr"
        seconds = run_store(batchseg, images, method, store, work / "storage.log")
        maps, attrs = stored_labels(store)
        raw = sum(m.size for m in maps)
        stored_dtype_bytes = sum(m.nbytes for m in maps)
        label_bytes = bc.dir_bytes(store / "labels")
        # the same maps in the smallest dtype their actual labels fit (what the kernel returned)
        tight = [m.astype(np.min_scalar_type(int(m.max())), copy=False) for m in maps]
        tight_bytes = sum(len(bc.label_codec().encode(np.ascontiguousarray(t))) for t in tight)
        results[method] = {
            "images": len(maps),
            "run_seconds": seconds,
            "dtypes": sorted({b["dtype"] for b in attrs["buckets"]}),
            "raw_uint8_bytes": raw,
            "stored_dtype_bytes": stored_dtype_bytes,
            "label_bytes_on_disk": label_bytes,
            "disk_ratio_to_raw_uint8": label_bytes / raw,
            "store_codec_on_tightest_dtype_ratio": tight_bytes / raw,
            "codecs": measure_codecs(maps),
        }
        log(
            f"  storage {method}: {label_bytes / raw:.3f} of raw uint8 "
            f"({label_bytes / 1e6:.2f} MB on disk, {len(maps)} images)"
        )
    return results


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", default="bench-results")
    ap.add_argument("--limit", type=int, default=None)
    a = ap.parse_args()
    print(json.dumps(main(Path(a.data), Path(a.out), limit=a.limit), indent=1))
