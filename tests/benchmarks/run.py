"""batchseg benchmark suite: side-by-side throughput, per-image overhead and label storage.

    make bench
    .venv/bin/python -m tests.benchmarks.run --data ../shared/data --out bench-results [--quick]

Every figure comes from this one run on this machine: the contenders run one after another, each
in a fresh Python process, on the same image list, with the same decode, kernel and compressed
label write (see bench_common.py). Writes OUT/results.json and OUT/results.md and prints the
tables. Ray Data is measured only when ``ray`` is installed (tests/benchmarks/requirements.txt).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from tests.benchmarks import bench_common as bc
from tests.benchmarks import bench_storage

THROUGHPUT_METHODS = ("skimage.slic", "skimage.otsu")
COMPETITORS = ("pool", "dask_bag", "dask_delayed", "ray_data")
LABELS = {
    "single": "(a) single-process loop",
    "ideal": "(b) ideal = cores x r1",
    "batchseg": "(c) batchseg run, end to end",
    "batchseg_execute": "(c) batchseg, execute phase only",
    "pool": "(d) multiprocessing.Pool imap",
    "dask_bag": "(e) dask.bag map, LocalCluster",
    "dask_delayed": "(e) dask.delayed per image",
    "ray_data": "(f) Ray Data map_batches",
}


def log(msg: str) -> None:
    print(msg, flush=True)


def _children_cpu() -> float:
    """CPU seconds (user + system) of reaped child processes, their descendants included."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError("no JSON result line")


def _timed(cmd: list[str], logf: Path, what: str) -> tuple[Any, float, float, float]:
    """Run ``cmd``; (process, wall s, CPU s of its process tree, load average before)."""
    load = os.getloadavg()[0]
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    with open(logf, "a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode != 0:
        raise RuntimeError(f"{what} exited {proc.returncode}; see {logf}")
    return proc, wall, cpu, load


def run_contender(
    name: str, method: str, listing: Path, out: Path, workers: int, chunk: int, logf: Path
) -> dict[str, Any]:
    """One contender in a fresh process; ``wall_s`` is timed from outside (start-up included)."""
    target = out / "labels" / method / name
    shutil.rmtree(target, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "tests.benchmarks.bench_throughput",
        name,
        "--method",
        method,
        "--images",
        str(listing),
        "--out",
        str(target),
        "--workers",
        str(workers),
        "--chunk",
        str(chunk),
    ]
    proc, wall, cpu, load = _timed(cmd, logf, f"{name} {method}")
    result = _last_json(proc.stdout)
    result.update(wall_s=wall, cpu_s=cpu, load_before=load)
    shutil.rmtree(target, ignore_errors=True)
    return result


def run_batchseg(method: str, images: Path, out: Path, workers: int, logf: Path) -> dict[str, Any]:
    """``batchseg run`` (console script, embedded cluster) from process start to exit."""
    import zarr

    store = out / "stores" / f"{method}.zarr"
    shutil.rmtree(store, ignore_errors=True)
    exe = str(Path(sys.executable).with_name("batchseg"))
    cmd = [
        exe,
        "-q",
        "run",
        str(images),
        "-m",
        method,
        "-o",
        str(store),
        "--workers",
        str(workers),
        "--overwrite",
    ]
    proc, wall, cpu, load = _timed(cmd, logf, f"batchseg {method}")
    root = zarr.open_group(str(store), mode="r")
    attrs = dict(root.attrs["batchseg"])
    run = attrs["runs"][-1]
    columns = list(root["stats"].attrs["columns"])
    status = np.asarray(root["catalogue/status"][:])
    seconds = np.asarray(root["stats"][:])[status == 2, columns.index("seconds")]
    result = {
        "contender": "batchseg",
        "method": method,
        "images": int(run["processed"]),
        "wall_s": wall,
        "cpu_s": cpu,
        "load_before": load,
        "run_seconds": run["seconds"],
        "compute_s": run["execute_seconds"],
        "startup_s": run["seconds"] - run["execute_seconds"],
        "shard_size": attrs["shard_size"],
        "n_shards": attrs["n_shards"],
        "buckets": [
            (b["name"], b["n_shards"], b["shard_size"], b["dtype"]) for b in attrs["buckets"]
        ],
        "seconds_column_mean": float(seconds.mean()),
        "label_bytes": bc.dir_bytes(store / "labels"),
    }
    shutil.rmtree(store, ignore_errors=True)
    return result


def pool_ratios(data: Path, out: Path, rounds: int, *, quick: bool) -> list[dict[str, Any]]:
    """Issue 15's figures: batchseg end to end vs ``multiprocessing.Pool(2)``, Otsu on 2,020
    and SLIC on 404 CamVid images, alternating rounds, medians (``bench_pool.py``)."""
    log("\n== batchseg vs multiprocessing.Pool(2), alternating, median of rounds")
    counts = ["--otsu", "202", "--slic", "101"] if quick else []
    cmd = [sys.executable, "-m", "tests.benchmarks.bench_pool", "--data", str(data)]
    cmd += ["--out", str(out / "pool"), "--rounds", str(rounds), *counts]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bench_pool exited {proc.returncode}: {proc.stderr[-2000:]}")
    for line in proc.stdout.splitlines()[:-1]:
        log(line)
    return _last_json(proc.stdout)


def best_of(fn: Any, repeat: int) -> dict[str, Any]:
    runs = [fn() for _ in range(repeat)]
    best = min(runs, key=lambda r: r["wall_s"])
    if repeat > 1:
        best["all_wall_s"] = [r["wall_s"] for r in runs]
    return best


def throughput(method: str, ctx: dict[str, Any], contenders: list[str]) -> dict[str, Any]:
    n, cores = ctx["n_images"], ctx["cores"]
    rows: dict[str, Any] = {}
    log(f"\n== {method}: {n} images, {cores} cores")
    common = (method, ctx["listing"], ctx["out"], cores, ctx["chunk"], ctx["logf"])
    rows["single"] = best_of(lambda: run_contender("single", *common), 1)
    r1 = n / rows["single"]["compute_s"]
    log(f"  single: r1 = {r1:.2f} images/s (cpu/wall {rows['single']['cpu_per_wall']:.2f})")
    order = ["batchseg", *contenders]
    for name in order:
        if name == "ray_data" and not ctx["have_ray"]:
            log(
                "  ray_data: skipped (ray is not installed; pip install -r "
                "tests/benchmarks/requirements.txt)"
            )
            continue
        if name == "batchseg":
            rows[name] = best_of(
                lambda: run_batchseg(method, ctx["images"], ctx["out"], cores, ctx["logf"]),
                ctx["repeat"],
            )
        else:
            rows[name] = best_of(lambda name=name: run_contender(name, *common), ctx["repeat"])
        r = rows[name]
        log(
            f"  {name}: {n / r['wall_s']:.2f} images/s end to end "
            f"({r['wall_s']:.1f} s, start-up {r['startup_s']:.1f} s), "
            f"{n / r['compute_s']:.2f} images/s compute"
        )
    return summarise(method, rows, n, cores, r1)


def summarise(method: str, rows: dict[str, Any], n: int, cores: int, r1: float) -> dict[str, Any]:
    ideal = cores * r1
    table = []

    def add(key: str, e2e: float | None, compute: float | None, raw: dict[str, Any] | None):
        table.append(
            {
                "contender": key,
                "label": LABELS[key],
                "images_per_s": e2e,
                "compute_images_per_s": compute,
                "vs_r1": e2e / r1 if e2e else None,
                "vs_ideal": e2e / ideal if e2e else None,
                "compute_vs_ideal": compute / ideal if compute else None,
                "wall_s": raw.get("wall_s") if raw else None,
                "cpu_ms_per_image": 1e3 * raw["cpu_s"] / n if raw and "cpu_s" in raw else None,
                "startup_s": raw.get("startup_s") if raw else None,
                "load_before": raw.get("load_before") if raw else None,
            }
        )

    s = rows["single"]
    add("single", n / s["wall_s"], r1, s)
    add("ideal", ideal, ideal, None)
    for key in ("batchseg", *COMPETITORS):
        if key in rows:
            r = rows[key]
            add(key, n / r["wall_s"], n / r["compute_s"], r)
            if key == "batchseg":
                add("batchseg_execute", n / r["compute_s"], n / r["compute_s"], None)
    base_cpu = table[0]["cpu_ms_per_image"]
    for row in table:
        if row["cpu_ms_per_image"] and base_cpu:
            row["cpu_vs_single"] = row["cpu_ms_per_image"] / base_cpu
    by = {row["contender"]: row for row in table}
    bs = by.get("batchseg")
    for row in table:
        if bs and row["contender"] not in ("batchseg", "batchseg_execute", "ideal"):
            row["batchseg_over_this"] = bs["images_per_s"] / row["images_per_s"]
            row["batchseg_over_this_compute"] = (
                bs["compute_images_per_s"] / row["compute_images_per_s"]
            )
    targets = {}
    if bs:
        targets["batchseg_vs_ideal"] = bs["vs_ideal"]
        others = [k for k in COMPETITORS if k in by]
        targets["batchseg_beats_every_competitor"] = all(
            bs["images_per_s"] >= by[k]["images_per_s"] for k in others
        )
        if "ray_data" in by:
            targets["batchseg_over_ray"] = by["ray_data"]["batchseg_over_this"]
    return {
        "method": method,
        "images": n,
        "cores": cores,
        "r1": r1,
        "ideal": ideal,
        "table": table,
        "targets": targets,
        "raw": rows,
    }


def overhead(ctx: dict[str, Any], bs_row: dict[str, Any] | None) -> dict[str, Any]:
    """Per-image cost breakdown for skimage.otsu: single loop vs batchseg vs Dask tasks."""
    method, n, cores = "skimage.otsu", ctx["n_images"], ctx["cores"]
    common = (method, ctx["listing"], ctx["out"], cores, ctx["chunk"], ctx["logf"])
    log("\n== per-image overhead (skimage.otsu)")
    timed = run_contender("single_timed", *common)
    steps = timed["per_image_s"]
    tasks = run_contender("dask_tasks", *common)
    if bs_row is None:
        bs_row = run_batchseg(method, ctx["images"], ctx["out"], cores, ctx["logf"])
    loop_per_image = timed["compute_s"] / n
    bs_worker_s = bs_row["compute_s"] * cores / n
    result = {
        "single_loop_per_image_s": steps,
        "single_loop_total_per_image_s": loop_per_image,
        "batchseg_seconds_column_mean_s": bs_row["seconds_column_mean"],
        "batchseg_worker_seconds_per_image": bs_worker_s,
        "batchseg_e2e_worker_seconds_per_image": bs_row["wall_s"] * cores / n,
        "batchseg_overhead_per_image_s": bs_worker_s - loop_per_image,
        "dask_tasks": tasks["runs"],
        "dask_shard_size": tasks["shard_size"],
        "dask_per_task_overhead_s": tasks["per_task_overhead_s"],
    }
    for k, v in steps.items():
        log(f"  single loop {k}: {1e3 * v:.2f} ms/image")
    log(
        f"  single loop total: {1e3 * loop_per_image:.2f} ms/image; batchseg seconds column "
        f"(decode+kernel+stats) {1e3 * bs_row['seconds_column_mean']:.2f} ms; batchseg execute "
        f"phase {1e3 * bs_worker_s:.2f} worker-ms/image"
    )
    log(
        f"  dask per-task overhead: {1e3 * tasks['per_task_overhead_s']:.2f} worker-ms/task "
        f"(1-image tasks vs shards of {tasks['shard_size']})"
    )
    return result


# --------------------------------------------------------------------------- report


def _f(x: Any, fmt: str = "{:.2f}") -> str:
    return "" if x is None else fmt.format(x)


def markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    out = [
        "# batchseg benchmark results",
        "",
        f"{env['cores']} cores, {env['platform']}, Python {env['python']}; "
        f"{results['n_images']} images ({results['image_set']}); started {env['started']}, "
        f"{results['total_seconds']:.0f} s in all. All numbers come from this one run; every "
        "contender runs in a fresh process (images/s end to end include interpreter start, "
        "imports and cluster/pool start; 'compute' excludes them). Per image, every contender "
        "decodes with batchseg.io.read.read_image, runs get_method(id).segment, casts to "
        "batchseg's stored label dtype and writes the labels compressed with Blosc zstd 5 "
        "bitshuffle (the store's codec); batchseg also computes statistics and writes a Zarr "
        "v3 store. Load average before each run is shown (other processes on the machine); "
        "CPU ms/image is the user+system time of the contender's whole process tree (reaped "
        "children; Ray's raylet workers may be under-counted), which other load does not "
        "inflate the way it inflates wall time.",
        "",
    ]
    if results.get("pool"):
        from tests.benchmarks.bench_pool import table as pool_table

        out += [
            "## batchseg vs multiprocessing.Pool(2) (bench_pool.py: CamVid val copies, "
            "alternating rounds, medians; Pool decodes with Pillow, batchseg with its reader)",
            "",
            pool_table(results["pool"]),
            "",
        ]
    for th in results["throughput"]:
        out += [
            f"## {th['method']} (r1 = {th['r1']:.2f} images/s, ideal = {th['ideal']:.2f})",
            "",
            "| contender | images/s | x r1 | x ideal | compute images/s | compute x ideal "
            "| start-up s | batchseg / this | CPU ms/image | CPU / single | load |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in th["table"]:
            out.append(
                f"| {r['label']} | {_f(r['images_per_s'])} | {_f(r['vs_r1'])} | "
                f"{_f(r['vs_ideal'])} | {_f(r['compute_images_per_s'])} | "
                f"{_f(r['compute_vs_ideal'])} | {_f(r['startup_s'], '{:.1f}')} | "
                f"{_f(r.get('batchseg_over_this'))} | {_f(r['cpu_ms_per_image'], '{:.1f}')} | "
                f"{_f(r.get('cpu_vs_single'))} | {_f(r['load_before'], '{:.1f}')} |"
            )
        t = th["targets"]
        if t:
            out += [
                "",
                f"Targets: batchseg / ideal = {_f(t.get('batchseg_vs_ideal'))} (target >= 0.90); "
                f"batchseg >= every competitor: {t.get('batchseg_beats_every_competitor')}; "
                f"batchseg / Ray Data = {_f(t.get('batchseg_over_ray'))} (target >= 1.3).",
            ]
        out.append("")
    ov = results.get("overhead")
    if ov:
        st = ov["single_loop_per_image_s"]
        out += [
            "## Per-image overhead, skimage.otsu (ms per image, one core)",
            "",
            "| step | ms |",
            "| --- | ---: |",
            *[f"| single loop: {k} | {1e3 * v:.2f} |" for k, v in st.items()],
            f"| single loop: whole image (decode..write, no stats) | "
            f"{1e3 * ov['single_loop_total_per_image_s']:.2f} |",
            f"| batchseg seconds column (decode+kernel+stats) | "
            f"{1e3 * ov['batchseg_seconds_column_mean_s']:.2f} |",
            f"| batchseg execute phase, worker-ms per image | "
            f"{1e3 * ov['batchseg_worker_seconds_per_image']:.2f} |",
            f"| batchseg end to end, worker-ms per image | "
            f"{1e3 * ov['batchseg_e2e_worker_seconds_per_image']:.2f} |",
            f"| Dask cost per extra task (1-image tasks vs shards of {ov['dask_shard_size']}) | "
            f"{1e3 * ov['dask_per_task_overhead_s']:.2f} |",
            "",
        ]
    sto = results.get("storage")
    if sto:
        out += [
            "## Label storage (batchseg store, default parameters)",
            "",
            "| method | images | stored dtype | labels/ bytes | / raw uint8 (H*W) "
            "| store codec on tightest dtype |",
            "| --- | ---: | --- | ---: | ---: | ---: |",
        ]
        for m, s in sto.items():
            out.append(
                f"| {m} | {s['images']} | {','.join(s['dtypes'])} | {s['label_bytes_on_disk']:,} | "
                f"{s['disk_ratio_to_raw_uint8']:.3f} | "
                f"{s['store_codec_on_tightest_dtype_ratio']:.3f} |"
            )
        names = list(next(iter(sto.values()))["codecs"])
        methods = list(sto)
        out += [
            "",
            "Codecs on the stored label maps (one image per chunk): size / raw uint8 bytes, "
            "and encode ms per image.",
            "",
            "| codec | " + " | ".join(f"{m} ratio | {m} enc ms" for m in methods) + " |",
            "| --- | " + " | ".join("---: | ---:" for _ in methods) + " |",
        ]
        for c in names:
            cells = []
            for m in methods:
                v = sto[m]["codecs"][c]
                cells.append(f"{v['ratio_to_raw_uint8']:.4f} | {v['encode_ms_per_image']:.2f}")
            mark = " (store)" if c == bench_storage.STORE_CODEC else ""
            out.append(f"| {c}{mark} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="batchseg benchmark suite")
    ap.add_argument("--data", default="../shared/data", help="folder with camvid/ and bsds500/")
    ap.add_argument("--out", default="bench-results")
    ap.add_argument("--quick", action="store_true", help="small image set (~1-2 minutes)")
    ap.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="copies of CamVid val in the set (3: 303 + 100 BSDS = 403 images)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs per parallel contender (best)")
    ap.add_argument("--chunk", type=int, default=8, help="images per Pool chunk / Ray batch")
    ap.add_argument("--methods", default=",".join(THROUGHPUT_METHODS))
    ap.add_argument("--contenders", default=",".join(COMPETITORS))
    ap.add_argument("--skip-storage", action="store_true")
    ap.add_argument(
        "--skip-pool", action="store_true", help="skip the Pool(2) ratios (bench_pool.py)"
    )
    ap.add_argument("--pool-rounds", type=int, default=3, help="alternating rounds of bench_pool")
    ap.add_argument("--skip-overhead", action="store_true")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data).absolute()
    limit = 30 if args.quick else None
    repeats = 1 if args.quick else args.repeats
    images = bc.build_image_set(data, out, repeats=repeats, limit=limit)
    paths = bc.image_list(images)
    listing = bc.write_list(paths, out / "images.txt")
    logf = out / "run.log"
    logf.write_text("")
    have_ray = importlib.util.find_spec("ray") is not None
    ctx = {
        "images": images,
        "listing": listing,
        "out": out,
        "logf": logf,
        "n_images": len(paths),
        "cores": bc.n_cores(),
        "chunk": args.chunk,
        "repeat": args.repeat,
        "have_ray": have_ray,
    }
    import dask
    import distributed
    import numcodecs
    import skimage
    import zarr

    versions = {
        "dask": dask.__version__,
        "distributed": distributed.__version__,
        "zarr": zarr.__version__,
        "numcodecs": numcodecs.__version__,
        "skimage": skimage.__version__,
        "numpy": np.__version__,
    }
    if have_ray:
        import ray

        versions["ray"] = ray.__version__
    results: dict[str, Any] = {
        "environment": {
            "cores": ctx["cores"],
            "platform": platform.platform(),
            "python": platform.python_version(),
            "versions": versions,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "load_at_start": os.getloadavg(),
        },
        "n_images": len(paths),
        "image_set": f"CamVid val x{repeats}"
        + (f" (first {limit})" if limit else "")
        + " + BSDS500 val"
        + (f" (first {limit})" if limit else ""),
        "throughput": [],
    }
    log(
        f"{len(paths)} images, {ctx['cores']} cores; Ray Data: "
        f"{'ray ' + versions['ray'] if have_ray else 'not installed, skipped'}"
    )
    if not args.skip_pool:
        results["pool"] = pool_ratios(data, out, args.pool_rounds, quick=args.quick)
    contenders = [c for c in args.contenders.split(",") if c]
    otsu_bs = None
    for method in [m for m in args.methods.split(",") if m]:
        th = throughput(method, ctx, contenders)
        results["throughput"].append(th)
        if method == "skimage.otsu":
            otsu_bs = th["raw"].get("batchseg")
    if not args.skip_overhead:
        results["overhead"] = overhead(ctx, otsu_bs)
    if not args.skip_storage:
        log("\n== label storage")
        results["storage"] = bench_storage.main(data, out, limit=limit, log=log)
    results["total_seconds"] = time.perf_counter() - started
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    md = markdown(results)
    (out / "results.md").write_text(md)
    log("\n" + md)
    log(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
