"""Web app and report speed: query pages on a 10^6-row store, overlay thumbnails of 480x360.

Run: ``python -m tests.benchmarks.bench_serve --out bench-results [--n 1000000]``.
The big store has no pixels: it is planned from a manifest with width/height columns and its
rows filled as finished tasks would leave them (``bench_scale``'s recipe, reused when already
in ``--out``). Pictures are timed on a real store of four 480x360 RGB images (SLIC). Every
request goes through a real uvicorn server on loopback; figures are medians of warm requests
(the first, cold request is reported separately).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from tests.benchmarks.bench_scale import FILL, PLAN_AND_CREATE, write_manifest

PY = sys.executable


def big_store(work: Path, n: int) -> Path:
    store = work / f"store_{n}.zarr"
    if (store / "zarr.json").exists():
        return store
    manifest = work / f"manifest_{n}.csv"
    write_manifest(manifest, n)
    subprocess.run([PY, "-c", PLAN_AND_CREATE, str(manifest), str(store)], check=True)
    subprocess.run([PY, "-c", FILL, str(store)], check=True)
    return store


def small_store(work: Path) -> Path:
    """Four 480x360 RGB images segmented with SLIC by a real (embedded-cluster) run."""
    store = work / "pictures.zarr"
    if (store / "zarr.json").exists():
        return store
    images = work / "pictures"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        base = rng.integers(0, 255, (45, 60, 3), dtype=np.uint8)
        Image.fromarray(base).resize((480, 360), Image.Resampling.BICUBIC).save(
            images / f"img_{i}.png"
        )
    cmd = [str(Path(PY).with_name("batchseg")), "-q", "run", str(images), "-m", "skimage.slic"]
    subprocess.run([*cmd, "-o", str(store), "--workers", "1", "-p", "n_segments=300"], check=True)
    return store


def timed(client: httpx.Client, url: str, params: dict[str, Any], repeat: int) -> dict[str, float]:
    """Cold (first) and warm (median of ``repeat``) seconds of one GET (status 200 checked)."""
    times = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        answer = client.get(url, params=params)
        times.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text[:300]
    return {"cold_s": round(times[0], 4), "warm_median_s": round(statistics.median(times[1:]), 4)}


def bench_queries(store: Path, repeat: int) -> dict[str, Any]:
    from batchseg import serve

    started = time.perf_counter()
    running = serve.start(str(store), port=0, timeout=120)
    out: dict[str, Any] = {"start_s": round(time.perf_counter() - started, 2)}
    queries = {
        "first_page": {"limit": 50},
        "page_500000": {"limit": 50, "offset": 500_000},
        "filter_sort_page": {
            "where": "fraction_foreground > 0.3",
            "sort": "-fraction_foreground",
            "limit": 50,
            "offset": 1000,
        },
        "all_columns_page": {"columns": "*", "limit": 50, "offset": 250_000},
    }
    try:
        with httpx.Client(base_url=running.url, timeout=300) as client:
            for name, params in queries.items():
                out[name] = timed(client, "/api/query", params, repeat)
            state = running.server.config.app.state.store
            started = time.perf_counter()
            state.picture_view()
            out["catalogue_index_wait_s"] = round(time.perf_counter() - started, 2)
            image_id = client.get("/api/query", params={"limit": 1, "offset": 777_777}).json()
            path = f"/api/images/{image_id['rows'][0]['image_id']}"
            out["image_row"] = timed(client, path, {}, repeat)
    finally:
        running.stop()
    return out


def bench_pictures(store: Path, repeat: int) -> dict[str, Any]:
    from batchseg import serve

    running = serve.start(str(store), port=0)
    out: dict[str, Any] = {}
    try:
        with httpx.Client(base_url=running.url, timeout=60) as client:
            path = "/api/images/img_1.png"
            for name, params in {
                "overlay_thumb_64": {"size": 64},
                "overlay_thumb_240": {"size": 240},
                "overlay_full_480x360": {},
            }.items():
                out[name] = timed(client, f"{path}/overlay.png", params, repeat)
            out["mask_full"] = timed(client, f"{path}/mask.png", {}, repeat)
    finally:
        running.stop()
    return out


def bench_report(store: Path, out_dir: Path) -> dict[str, Any]:
    cmd = [str(Path(PY).with_name("batchseg")), "-q", "report", str(store)]
    started = time.perf_counter()
    done = subprocess.run([*cmd, "-o", str(out_dir / "report.html")], capture_output=True)
    return {
        "report_wall_s": round(time.perf_counter() - started, 2),
        "report_exit": done.returncode,
        "report_bytes": (out_dir / "report.html").stat().st_size if not done.returncode else 0,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench-results")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    work = Path(args.out) / "serve"
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"images": args.n}
    result["queries"] = bench_queries(big_store(Path(args.out) / "scale", args.n), args.repeat)
    result["pictures"] = bench_pictures(small_store(work), max(args.repeat, 10))
    result["report_big_store"] = bench_report(big_store(Path(args.out) / "scale", args.n), work)
    (work / "serve.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
