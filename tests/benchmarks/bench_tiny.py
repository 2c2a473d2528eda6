"""Per-image overhead at scale: a job of many tiny images end to end on the embedded cluster.

    python -m tests.benchmarks.bench_tiny --images 200000 --out bench-results/tiny

Writes ``--images`` generated 64x64 grey PNGs (bright discs on noise, 1,000 per folder; kept
between runs), then runs ``batchseg run DIR -m skimage.otsu --workers 2`` as a child process
and samples, every 0.2 s, the launcher's RSS and CPU time (the scheduler runs in the launcher)
and the worker processes' CPU. Prints throughput, launcher peak RSS (target <= 1 GB), launcher
CPU per image, the shard count and size (every shard is submitted at once; the scheduler
keeps 2 x threads of them processing) and the phases from the store's run record. This is the
regime of 10^8-image collections, where per-image overhead is everything.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def generate(root: Path, n: int) -> float:
    """``n`` 64x64 PNGs under ``root`` (kept: a rerun with the same n reuses them); seconds."""
    from PIL import Image

    marker = root / f".complete-{n}"
    if marker.exists():
        return 0.0
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    for i in range(n):
        folder = root / f"d{i // 1000:04d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True)
        image = rng.normal(40, 10, (64, 64))
        cy, cx, r = rng.integers(8, 56), rng.integers(8, 56), rng.integers(5, 14)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 200
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
            folder / f"t{i:07d}.png", compress_level=1
        )
    marker.touch()
    return time.perf_counter() - t0


def sample(pid: int) -> dict[str, float]:
    """RSS (MiB) and CPU seconds of the launcher, and CPU seconds of its descendants."""
    import psutil

    try:
        proc = psutil.Process(pid)
        rss = proc.memory_info().rss / 2**20
        times = proc.cpu_times()
        kids = 0.0
        for child in proc.children(recursive=True):
            try:
                t = child.cpu_times()
                kids += t.user + t.system
            except psutil.Error:
                continue
        return {"rss": rss, "cpu": times.user + times.system, "children_cpu": kids}
    except psutil.Error:
        return {}


def run(images: Path, store: Path) -> dict[str, Any]:
    exe = str(Path(sys.executable).with_name("batchseg"))
    cmd = [exe, "-q", "run", str(images), "-m", "skimage.otsu", "-o", str(store)]
    cmd += ["--workers", "2", "--overwrite"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = last = {}
    while proc.poll() is None:
        now = sample(proc.pid)
        if now:
            last = {**now, "children_cpu": max(now["children_cpu"], last.get("children_cpu", 0))}
            peak = {**now, "rss": max(now["rss"], peak.get("rss", 0.0))}
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"batchseg exited {proc.returncode}: {err[-2000:]}")
    return {"wall_s": wall, "peak_rss_mib": peak.get("rss"), "last": last, "stdout": out}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200_000)
    ap.add_argument("--out", default="bench-results/tiny")
    args = ap.parse_args(argv)
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    images = out / f"images-{args.images}"
    made = generate(images, args.images)
    print(f"{args.images} images ready ({made:.0f} s to write)", flush=True)
    store = out / "tiny.zarr"
    result = run(images, store)
    import zarr

    attrs = dict(zarr.open_group(str(store), mode="r").attrs["batchseg"])
    record = attrs["runs"][-1]
    n = args.images
    summary = {
        "images": n,
        "wall_s": round(result["wall_s"], 1),
        "images_per_s_end_to_end": round(n / result["wall_s"], 1),
        "execute_s": round(record["execute_seconds"], 1),
        "images_per_s_execute": round(n / record["execute_seconds"], 1),
        "before_execute_s": round(record["seconds"] - record["execute_seconds"], 1),
        "done": record["processed"] - record["failed"],
        "failed": record["failed"],
        "launcher_peak_rss_mib": round(result["peak_rss_mib"] or 0.0),
        "launcher_cpu_s": round(result["last"].get("cpu", 0.0), 1),
        "launcher_cpu_ms_per_image": round(1e3 * result["last"].get("cpu", 0.0) / n, 3),
        "workers_cpu_s": round(result["last"].get("children_cpu", 0.0), 1),
        "shards": attrs["n_shards"],
        "shard_size": attrs["shard_size"],
    }
    shutil.rmtree(store, ignore_errors=True)
    (out / "results.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
