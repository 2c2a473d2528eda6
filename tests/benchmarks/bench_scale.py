"""Scale benchmark: planning time and launcher memory from 10^4 to 10^7 images, query speed.

Run: ``python -m tests.benchmarks.bench_scale --out bench-results [--max 10000000]
[--store-max 1000000] [--layout relative|absolute|shuffled]``.
No pixels are involved: manifests carry width/height columns (which skip the header scan);
``absolute`` writes absolute paths in 1,000 folders, ``shuffled`` the same rows out of order
(the launcher then sorts them). Stores up to ``--store-max`` images are created by the real
planner and store code, the largest then has its per-image rows filled as finished tasks
would leave them, consolidated, and queried from a fresh process. The last line fits the
dry run's peak RSS against the image count: the launcher's bytes per image.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SHAPES = [(360, 480), (480, 640), (321, 481), (481, 321), (1080, 1920), (768, 1024)]
PY = sys.executable


def write_manifest(path: Path, n: int, layout: str = "relative") -> None:
    """``n`` rows: relative paths in folders of 1,000 (sorted), or absolute paths in 1,000
    folders (``absolute``: sorted; ``shuffled``: row i in folder i mod 1,000)."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "width", "height"])
        for i in range(n):
            h, wd = SHAPES[i % len(SHAPES)]
            if layout == "relative":
                name = f"images/d{i // 1000:04d}/img_{i:08d}.jpg"
            elif layout == "absolute":
                name = f"/data/collection/folder_{i * 1000 // n:04d}/img_{i:09d}.jpg"
            else:
                name = f"/data/collection/folder_{i % 1000:04d}/img_{i:09d}.jpg"
            w.writerow([name, wd, h])


def measured(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, stdout) of a child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out = proc.stdout.read() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd} failed: {proc.stderr.read() if proc.stderr else ''}")
    return wall, usage.ru_maxrss / 1024, out


PLAN_AND_CREATE = """
import sys, time
from batchseg.job.fingerprint import fingerprint
from batchseg.methods import get_method
from batchseg.io.sources import discover
from batchseg.core.plan import plan_shards, auto_shard_size
from batchseg import store
from batchseg.measure.stats import stats_columns
m = get_method("skimage.otsu"); params = m.resolve_params({})
t = time.perf_counter()
refs = discover(sys.argv[1])
fp = fingerprint(refs, m, params)
plan = plan_shards(refs, None, auto_shard_size(len(refs), 2))
t_plan = time.perf_counter() - t
cols = stats_columns(m.kind, m.classes(params))
store.create(sys.argv[2], plan, meta={"fingerprint": fp, "method": {"id": m.id, "kind": m.kind,
    "params": params}, "classes": m.classes(params)}, header_errors={},
    label_dtypes=[m.label_dtype(params, b.height, b.width) for b in plan.buckets],
    stats_columns=cols, confidence=False, overwrite=True)
print(t_plan, time.perf_counter() - t, len(plan.shards), plan.shard_size)
"""

FILL = """
import sys, numpy as np, zarr
from batchseg import store
root = zarr.open_group(sys.argv[1], mode="r+")
status = store.shard_status(root)
real = status != store.EMPTY
rng = np.random.default_rng(0)
f = rng.random(status.size)
stats = np.full(root["stats"].shape, np.nan)
stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3], stats[:, 4] = f * 1e5, (1 - f) * 1e5, f, 1 - f, 0.01
stats[~real] = np.nan
status[real] = store.DONE
root["stats"][...] = stats
root["catalogue/status"][...] = status
store.consolidate(root)
"""

QUERY = """
import sys, time
t0 = time.perf_counter()
import batchseg
t1 = time.perf_counter()
view = batchseg.open(sys.argv[1])
hits = view.query("fraction_foreground > 0.3 and pixels_background < 50000",
                  columns=["fraction_foreground"])
t2 = time.perf_counter()
print(t1 - t0, t2 - t1, len(hits))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench-results")
    ap.add_argument("--max", type=int, default=1_000_000)
    ap.add_argument("--store-max", type=int, default=1_000_000)
    ap.add_argument("--layout", choices=["relative", "absolute", "shuffled"], default="relative")
    args = ap.parse_args()
    out = Path(args.out)
    work = out / "scale"
    work.mkdir(parents=True, exist_ok=True)
    sizes = [n for n in (10_000, 100_000, 1_000_000, 10_000_000) if n <= args.max]
    stored = [n for n in sizes if n <= args.store_max]
    rows = []
    for n in sizes:
        manifest = work / f"manifest_{args.layout}_{n}.csv"
        if not manifest.exists():
            write_manifest(manifest, n, args.layout)
        wall, rss, _ = measured(
            [
                str(Path(PY).with_name("batchseg")),
                "-q",
                "run",
                str(manifest),
                "-m",
                "skimage.otsu",
                "-o",
                str(work / f"dry_{n}.zarr"),
                "--dry-run",
                "--workers",
                "2",
            ]
        )
        row: dict[str, float | int | str] = {
            "images": n,
            "layout": args.layout,
            "dry_run_wall_s": round(wall, 2),
            "dry_run_peak_rss_mib": round(rss),
        }
        if n in stored:
            store_path = work / f"store_{n}.zarr"
            wall2, rss2, text = measured(
                [PY, "-c", PLAN_AND_CREATE, str(manifest), str(store_path)]
            )
            t_plan, t_create, tasks, shard = text.split()
            row.update(
                plan_s=round(float(t_plan), 2),
                plan_and_create_store_s=round(float(t_create), 2),
                plan_and_create_peak_rss_mib=round(rss2),
                tasks=int(tasks),
                shard_size=int(shard),
            )
        if stored and n == stored[-1]:
            subprocess.run([PY, "-c", FILL, str(store_path)], check=True)
            _, q_rss, text = measured([PY, "-c", QUERY, str(store_path)])
            t_import, t_query, hits = text.split()
            row.update(
                query_import_s=round(float(t_import), 2),
                query_s=round(float(t_query), 3),
                query_hits=int(hits),
            )
            wall_cli, _, _ = measured(
                [
                    str(Path(PY).with_name("batchseg")),
                    "query",
                    str(store_path),
                    "--where",
                    "fraction_foreground > 0.3",
                    "--columns",
                    "fraction_foreground",
                    "--limit",
                    "10",
                    "--format",
                    "csv",
                ]
            )
            row["query_cli_wall_s"] = round(wall_cli, 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    (out / "scale.json").write_text(json.dumps(rows, indent=2))
    lines = [
        "| images | dry-run wall s | dry-run peak MiB | plan s | plan+create store s | peak MiB | tasks |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['images']:,} | {r['dry_run_wall_s']} | {r['dry_run_peak_rss_mib']} | "
            f"{r.get('plan_s', '-')} | {r.get('plan_and_create_store_s', '-')} | "
            f"{r.get('plan_and_create_peak_rss_mib', '-')} | {r.get('tasks', '-')} |"
        )
    if len(rows) >= 2:
        n_img = [float(r["images"]) for r in rows]
        mib = [float(r["dry_run_peak_rss_mib"]) for r in rows]
        mean_n, mean_m = sum(n_img) / len(n_img), sum(mib) / len(mib)
        slope = sum((a - mean_n) * (b - mean_m) for a, b in zip(n_img, mib, strict=True)) / sum(
            (a - mean_n) ** 2 for a in n_img
        )
        lines.append("")
        lines.append(
            f"Launcher memory per image (least-squares slope of the dry run's peak RSS over "
            f"{', '.join(f'{int(n):,}' for n in n_img)} images, {args.layout} paths): "
            f"{slope * 2**20:.0f} bytes."
        )
    last = next((r for r in reversed(rows) if "tasks" in r), rows[-1])
    if "query_s" in last:
        lines.append("")
        lines.append(
            f"Query on a {last['images']:,}-image store (`fraction_foreground > 0.3 and "
            f"pixels_background < 50000`, {last['query_hits']:,} hits): {last['query_s']} s in the "
            f"API after a {last['query_import_s']} s import; `batchseg query` CLI wall time "
            f"{last['query_cli_wall_s']} s (process start and imports included)."
        )
    (out / "scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
