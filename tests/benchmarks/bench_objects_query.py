"""Object-table query benchmark: a filtered scan over 10^7 object rows in ~100 Parquet parts.

Run: ``python -m tests.benchmarks.bench_objects_query [--rows 10000000] [--parts 100]
[--work DIR] [--where EXPR] [--out DIR]``.

Generates random but realistic object measurements (vectorised; image ids, labels, log-normal
areas, centroids, bounding boxes, shape descriptors, colour means with NaN for grey images)
and writes them as shard parts with ``batchseg.store.objects.write_part`` into a store folder.
Then, in a fresh Python process (so that its peak RSS is the query's, not the generator's),
times with ``batchseg.store.objects``:

* ``count(store, where)``: how many objects match (a filtered scan of the filter's columns);
* ``scan(store, where, limit=20)``: the first 20 matching rows, all columns (stops early);
* both together, as ``batchseg objects STORE --where EXPR`` does for its table.

Reports wall times, the matching count and the query process's peak RSS
(``resource.getrusage``), beside its RSS after the imports. Targets (reported, not asserted):
count + first rows <= 2 s, peak RSS bounded (far below the table's in-memory size).
Not part of ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_WHERE = "area > 500 and eccentricity < 0.8"


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_part(index: int, n: int, images_per_part: int) -> Any:
    """``n`` random object rows of ``images_per_part`` images, as a pyarrow Table."""
    import pyarrow as pa

    from batchseg.store.objects import object_schema

    rng = np.random.default_rng(index)
    image = np.sort(rng.integers(0, images_per_part, n))
    ids = pa.array([f"shard{index:04d}/img_{k:05d}.png" for k in range(images_per_part)])
    starts = np.searchsorted(image, np.arange(images_per_part))
    label = np.arange(n) - starts[image] + 1
    area = np.maximum(1, rng.lognormal(5.5, 1.2, n)).astype(np.int64)
    side = np.sqrt(area).astype(np.int64) + 1
    min_row, min_col = rng.integers(0, 2000, n), rng.integers(0, 2000, n)
    major = side * rng.uniform(1.0, 2.5, n)
    minor = major * rng.uniform(0.2, 1.0, n)
    grey = (image % 4 == 0)[:, None]  # a quarter of the images are grey: colour means NaN
    colour = np.where(grey, np.nan, rng.uniform(0, 255, (n, 3)))
    cols = {
        "image_id": ids.take(pa.array(image)),
        "label": label,
        "area": area,
        "centroid_row": min_row + side / 2,
        "centroid_col": min_col + side / 2,
        "bbox_min_row": min_row,
        "bbox_min_col": min_col,
        "bbox_max_row": min_row + side,
        "bbox_max_col": min_col + side,
        "eccentricity": np.sqrt(1 - (minor / major) ** 2),
        "solidity": rng.beta(8, 2, n),
        "orientation": rng.uniform(-np.pi / 2, np.pi / 2, n),
        "perimeter": 4 * side * rng.uniform(0.8, 1.4, n),
        "equivalent_diameter": np.sqrt(4 * area / np.pi),
        "major_axis_length": major,
        "minor_axis_length": minor,
        "mean_intensity": rng.uniform(0, 255, n),
        "mean_red": colour[:, 0],
        "mean_green": colour[:, 1],
        "mean_blue": colour[:, 2],
    }
    schema = object_schema()
    return pa.table([pa.array(cols[f.name], f.type) for f in schema], schema=schema)


def generate(store: Path, rows: int, parts: int) -> dict[str, Any]:
    from batchseg.store.objects import shard_part_name, write_part

    start = time.perf_counter()
    per_part = rows // parts
    for i in range(parts):
        n = per_part + (1 if i < rows % parts else 0)
        write_part(str(store), shard_part_name(i), make_part(i, n, images_per_part=200))
    seconds = time.perf_counter() - start
    size = sum(p.stat().st_size for p in (store / "objects").iterdir())
    return {"rows": rows, "parts": parts, "seconds": seconds, "bytes": size}


def query(store: str, where: str, repeat: int) -> dict[str, Any]:
    """Time count + first 20 rows (best of ``repeat``); runs in its own process."""
    from batchseg.store import objects

    rss_imports = peak_rss_mib()
    best: dict[str, float] = {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        data = objects.require_dataset(store)
        t1 = time.perf_counter()
        matching = objects.count(data, where)
        t2 = time.perf_counter()
        first = objects.scan(data, where, limit=20)
        t3 = time.perf_counter()
        times = {"open": t1 - t0, "count": t2 - t1, "first_20": t3 - t2, "total": t3 - t0}
        best = times if not best or times["total"] < best["total"] else best
    assert first.num_rows == min(20, matching)
    return {
        **best,
        "matching": matching,
        "total_rows": objects.count(store),
        "peak_rss_mib": peak_rss_mib(),
        "rss_after_imports_mib": rss_imports,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--parts", type=int, default=100)
    ap.add_argument("--where", default=DEFAULT_WHERE)
    ap.add_argument("--repeat", type=int, default=3, help="query runs; the best is kept")
    ap.add_argument("--work", type=Path, default=None, help="folder for the store (a temp one)")
    ap.add_argument("--out", type=Path, default=None, help="write objects_query.json here")
    ap.add_argument("--query-only", metavar="STORE", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.query_only:  # the child process: print the measurement as JSON
        print(json.dumps(query(args.query_only, args.where, args.repeat)))
        return
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        store = Path(tmp) / "objects-bench.zarr"
        made = generate(store, args.rows, args.parts)
        print(
            f"generated {made['rows']:,} rows in {made['parts']} parts: "
            f"{made['seconds']:.1f} s, {made['bytes'] / 2**20:.0f} MiB on disk",
            flush=True,
        )
        child = [sys.executable, "-m", "tests.benchmarks.bench_objects_query"]
        child += ["--query-only", str(store), "--where", args.where, "--repeat", str(args.repeat)]
        out = subprocess.run(child, check=True, capture_output=True, text=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"query {args.where!r}: {result['matching']:,} of {result['total_rows']:,} rows match\n"
        f"  open {result['open']:.3f} s, count {result['count']:.3f} s, "
        f"first 20 rows {result['first_20']:.3f} s, total {result['total']:.3f} s "
        f"(target <= 2 s)\n"
        f"  peak RSS {result['peak_rss_mib']:.0f} MiB "
        f"(after imports {result['rss_after_imports_mib']:.0f} MiB; "
        f"the table in memory would be ~{result['total_rows'] * 8 * 20 / 2**20:.0f} MiB)\n"
        f"  load average {os.getloadavg()[0]:.2f} (2-core machine shared with other work)"
    )
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        report = {"generate": made, "query": result, "where": args.where}
        (args.out / "objects_query.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
