"""Semantic segmentation on the CPU: ``batchseg run`` end to end vs the bare model, side by side.

    .venv/bin/python -m tests.benchmarks.bench_semantic --data ../shared/data --out bench-results

Model: ``torchvision.lraspp_mobilenet_v3_large`` with 11 classes and seeded random weights saved
as a state_dict (no download; throughput does not depend on weight values). Images: the 101
CamVid val PNGs (480x360), repeated through a folder of symlinks with distinct names.

Contenders, measured one after another in this run, on the same cores:

* **model-only** (the ceiling): ``P`` processes x ``T`` torch threads; each process decodes and
  normalises its share of the images into float32 NCHW batches *before* the clock starts, loads
  the model, does one warm-up pass, waits on a barrier, then runs ``model(x)`` under
  ``torch.inference_mode`` over its batches. images/s = all images / (last end - first start).
  ``P = cores, T = 1`` is what batchseg's embedded cluster uses (one single-threaded worker process
  per core, torch threads = 1 per worker); ``P = 1, T = cores`` is reported for reference.
* **batchseg**: the ``batchseg`` console script in a subprocess (embedded cluster with default
  sizing), including decode, preprocessing, argmax, confidence, statistics and compressed Zarr
  writes. Reported: (i) the wall time of the whole command (cluster start, header scan, store
  creation, model load per worker) and (ii) the execute phase only (``runs[-1]
  ["execute_seconds"]`` of the store). The headline ratio is execute-phase images/s over
  model-only images/s at the same batch size.

A per-stage profile (one process, one torch thread) shows where a worker spends its time per
image. Writes OUT/semantic.json and OUT/semantic.md and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

METHOD = "torchvision.lraspp_mobilenet_v3_large"
BUILDER = "lraspp_mobilenet_v3_large"
NUM_CLASSES = 11
CAMVID = "camvid/val"
TARGET = 0.85


def n_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------- contention


def _busy_jiffies() -> int:
    """Busy CPU time of the whole machine (all cores), in clock ticks, from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except OSError:  # pragma: no cover - not Linux
        return 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]) - idle


class Meter:
    """Wall time, and how much of the machine's CPU *other* processes used meanwhile.

    Our own CPU time is the children's rusage (subprocesses and multiprocessing workers, which
    are waited for, and their waited-for descendants such as dask workers); anything else busy
    on the machine during the interval is foreign load that slows both sides of the comparison.
    """

    def __enter__(self) -> Meter:
        self.t0 = time.perf_counter()
        self.busy0 = _busy_jiffies()
        t = os.times()
        self.own0 = t.children_user + t.children_system + t.user + t.system
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        busy = (_busy_jiffies() - self.busy0) / tick
        t = os.times()
        own = t.children_user + t.children_system + t.user + t.system - self.own0
        cap = max(1e-9, self.wall * n_cores())
        self.foreign_share = round(max(0.0, busy - own) / cap, 3)
        self.own_share = round(own / cap, 3)


# --------------------------------------------------------------------------- inputs


def make_weights(path: Path) -> str:
    """A seeded random LR-ASPP state_dict (11 classes)."""
    import torch
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    torch.manual_seed(0)
    model = lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=NUM_CLASSES
    ).eval()
    torch.save(model.state_dict(), path)
    return str(path)


def camvid_files(data: Path) -> list[Path]:
    files = sorted((data / CAMVID).glob("*.png"))
    if not files:
        raise SystemExit(f"no PNG images under {data / CAMVID}")
    return files


def build_folder(files: list[Path], root: Path, repeats: int) -> Path:
    """``root/rep<k>/<file>`` symlinks (distinct image ids), rebuilt each time."""
    if root.exists():
        shutil.rmtree(root)
    for k in range(repeats):
        sub = root / f"rep{k}"
        sub.mkdir(parents=True)
        for f in files:
            (sub / f.name).symlink_to(f.resolve())
    return root


# --------------------------------------------------------------------------- model-only


def _model_worker(
    rank: int,
    threads: int,
    weights: str,
    paths: list[str],
    n_images: int,
    batch_size: int,
    barrier: Any,
    queue: Any,
) -> None:
    """Pre-decode + normalise, load the model, warm up, barrier, timed forward passes."""
    import torch
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    from batchseg.io import read as readers
    from batchseg.methods import models

    torch.set_num_threads(threads)
    mean = torch.tensor(models.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(models.IMAGENET_STD).view(1, 3, 1, 1)
    imgs = [readers.read_image(p) for p in paths]
    # the process's share: n_images taken cyclically from its decoded images
    order = [imgs[i % len(imgs)] for i in range(n_images)]
    batches = []
    for s in range(0, n_images, batch_size):
        chunk = np.stack(order[s : s + batch_size])
        x = torch.from_numpy(chunk).permute(0, 3, 1, 2).float().div_(255.0)
        batches.append(((x - mean) / std).contiguous())
    model = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=NUM_CLASSES)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    with torch.inference_mode():
        model(batches[0])  # warm-up (not timed)
        barrier.wait()
        t0 = time.perf_counter()
        for x in batches:
            model(x)["out"]
        t1 = time.perf_counter()
    queue.put((rank, t0, t1, n_images))


def model_only(
    weights: str, files: list[Path], *, procs: int, threads: int, batch_size: int, images: int
) -> dict[str, Any]:
    """images/s of ``procs`` processes x ``threads`` torch threads over ``images`` images."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(procs)
    queue = ctx.Queue()
    per = [images // procs + (1 if r < images % procs else 0) for r in range(procs)]
    shares = [[str(f) for f in files[r::procs]] for r in range(procs)]
    ps = [
        ctx.Process(
            target=_model_worker,
            args=(r, threads, weights, shares[r], per[r], batch_size, barrier, queue),
        )
        for r in range(procs)
    ]
    with Meter() as meter:
        for p in ps:
            p.start()
        got = [queue.get(timeout=900) for _ in ps]
        for p in ps:
            p.join()
            if p.exitcode != 0:
                raise RuntimeError(f"model-only worker failed (exit {p.exitcode})")
    start = min(g[1] for g in got)
    end = max(g[2] for g in got)
    n = sum(g[3] for g in got)
    wall = end - start
    return {
        "procs": procs,
        "threads": threads,
        "batch_size": batch_size,
        "images": n,
        "seconds": round(wall, 3),
        "images_per_second": round(n / wall, 3),
        "per_process_seconds": [round(g[2] - g[1], 3) for g in sorted(got)],
        "foreign_cpu_share": meter.foreign_share,
    }


# --------------------------------------------------------------------------- batchseg


def batchseg_run(
    weights: str,
    folder: Path,
    store: Path,
    *,
    batch_size: int,
    shard_size: int | None,
) -> dict[str, Any]:
    """``batchseg run`` in a subprocess; wall time and the store's execute-phase time."""
    import zarr

    exe = Path(sys.executable).with_name("batchseg")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "batchseg.cli"]
    cmd += [
        "run",
        str(folder),
        "--method",
        METHOD,
        "--output",
        str(store),
        "--overwrite",
        "-p",
        f"weights={weights}",
        "-p",
        f"batch_size={batch_size}",
    ]
    if shard_size:
        cmd += ["--shard-size", str(shard_size)]
    with Meter() as meter:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = meter.wall
    if proc.returncode != 0:
        raise RuntimeError(
            f"batchseg run failed ({proc.returncode}): {proc.stderr[-2000:]}\n{proc.stdout[-500:]}"
        )
    attrs = dict(zarr.open_group(str(store), mode="r").attrs)["batchseg"]
    run = attrs["runs"][-1]
    n = int(run["processed"])
    ex = float(run["execute_seconds"])
    shutil.rmtree(store, ignore_errors=True)
    return {
        "batch_size": batch_size,
        "shard_size": int(attrs.get("shard_size") or shard_size or 0),
        "shard_size_arg": shard_size or "auto",
        "images": n,
        "done": int(run["done"]),
        "failed": int(run["failed"]),
        "wall_seconds": round(wall, 3),
        "execute_seconds": round(ex, 3),
        "wall_images_per_second": round(n / wall, 3),
        "execute_images_per_second": round(n / ex, 3),
        "own_cpu_share": meter.own_share,
        "foreign_cpu_share": meter.foreign_share,
    }


# --------------------------------------------------------------------------- stage profile


def stage_profile(weights: str, files: list[Path], *, batch_size: int, images: int) -> dict:
    """Per-image seconds of each stage of a worker, one process with one torch thread.

    Runs in a spawned process so the torch thread setting does not leak into this one.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(
        target=_stage_worker, args=(weights, [str(f) for f in files], batch_size, images, queue)
    )
    p.start()
    out = queue.get(timeout=900)
    p.join()
    return out


def _stage_worker(weights: str, paths: list[str], batch_size: int, images: int, queue) -> None:
    import numcodecs
    import torch

    from batchseg.io import read as readers
    from batchseg.measure.stats import class_stats
    from batchseg.methods import get_method

    torch.set_num_threads(1)
    method = get_method(METHOD)
    params = method.resolve_params({"weights": weights, "batch_size": batch_size, "threads": 1})
    t = time.perf_counter()
    runner = method.runner(params)
    load = time.perf_counter() - t
    codec = numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.BITSHUFFLE)
    sel = [paths[i % len(paths)] for i in range(images)]
    acc = dict.fromkeys(
        ("decode", "segment_batch", "forward", "stats_confidence", "compress_labels_conf"), 0.0
    )
    runner.segment_batch([readers.read_image(sel[0])])  # warm-up
    for s in range(0, images, batch_size):
        t = time.perf_counter()
        imgs = [readers.read_image(p) for p in sel[s : s + batch_size]]
        acc["decode"] += time.perf_counter() - t
        t = time.perf_counter()
        segs = runner.segment_batch(imgs)
        acc["segment_batch"] += time.perf_counter() - t
        # the bare forward on the same, already normalised batch
        x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(runner.preprocess.mean).view(1, 3, 1, 1)
        std = torch.tensor(runner.preprocess.std).view(1, 3, 1, 1)
        x = ((x - mean) / std).contiguous()
        with torch.inference_mode():
            t = time.perf_counter()
            runner.model(x)
            acc["forward"] += time.perf_counter() - t
        t = time.perf_counter()
        for seg in segs:
            class_stats(seg.labels, NUM_CLASSES)
            float(seg.confidence.mean())
        acc["stats_confidence"] += time.perf_counter() - t
        t = time.perf_counter()
        for seg in segs:
            codec.encode(np.ascontiguousarray(seg.labels))
            codec.encode(np.ascontiguousarray(seg.confidence))
        acc["compress_labels_conf"] += time.perf_counter() - t
    per = {k: v / images for k, v in acc.items()}
    per["pre_post_in_runner"] = per["segment_batch"] - per["forward"]
    queue.put(
        {
            "images": images,
            "batch_size": batch_size,
            "model_load_seconds": round(load, 3),
            "per_image_ms": {k: round(v * 1000, 2) for k, v in per.items()},
        }
    )


# --------------------------------------------------------------------------- report


def _fmt_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("bench-results"))
    ap.add_argument("--repeats", type=int, default=10, help="CamVid copies for the main runs")
    ap.add_argument("--sweep-repeats", type=int, default=3, help="CamVid copies for the sweep")
    ap.add_argument("--batch-size", type=int, default=8, help="batchseg's default batch_size")
    ap.add_argument(
        "--sweep",
        default="4:auto,16:auto,8:8,8:64",
        help="extra batch_size:shard_size configurations (shard 'auto' = batchseg's default)",
    )
    ap.add_argument("--model-images", type=int, default=240, help="images per model-only run")
    ap.add_argument("--profile-images", type=int, default=32)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats, args.sweep_repeats, args.model_images, args.profile_images = 1, 1, 32, 8
        args.sweep = "4:auto"

    cores = n_cores()
    files = camvid_files(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-semantic-"))
    started = time.perf_counter()
    try:
        weights = make_weights(work / "lraspp_11.pt")
        sweep: list[tuple[int, int | None]] = []
        for item in args.sweep.split(","):
            if item.strip():
                bs, _, sh = item.partition(":")
                sweep.append((int(bs), None if sh in ("", "auto") else int(sh)))
        batch_sizes = sorted({args.batch_size, *(bs for bs, _ in sweep)})

        def log(msg: str) -> None:
            print(f"[{time.perf_counter() - started:6.1f} s] {msg}", flush=True)

        # ---- model-only ceilings, one per batch size (same cores, batchseg's layout)
        model: dict[int, dict[str, Any]] = {}
        for bs in batch_sizes:
            model[bs] = model_only(
                weights, files, procs=cores, threads=1, batch_size=bs, images=args.model_images
            )
            log(f"model-only {cores}x1 bs={bs}: {model[bs]['images_per_second']} img/s")
        ref = model_only(
            weights,
            files,
            procs=1,
            threads=cores,
            batch_size=args.batch_size,
            images=max(8, args.model_images // 2),
        )
        log(f"model-only 1x{cores} bs={args.batch_size}: {ref['images_per_second']} img/s")

        prof = stage_profile(weights, files, batch_size=args.batch_size, images=args.profile_images)
        log(f"stage profile: {prof['per_image_ms']}")

        # ---- batchseg: default config (main), the sweep (shorter), then the best one (main)
        main_dir = build_folder(files, work / "main", args.repeats)
        runs: list[dict[str, Any]] = []

        def bs_run(folder: Path, bs: int, shard: int | None, label: str) -> dict[str, Any]:
            r = batchseg_run(weights, folder, work / "store.zarr", batch_size=bs, shard_size=shard)
            r["label"] = label
            m = model[bs]["images_per_second"]
            r["model_only_images_per_second"] = m
            r["ratio_execute"] = round(r["execute_images_per_second"] / m, 3)
            r["ratio_wall"] = round(r["wall_images_per_second"] / m, 3)
            runs.append(r)
            log(
                f"batchseg {label} bs={bs} shard={r['shard_size']}: {r['images']} images, "
                f"wall {r['wall_seconds']} s, execute {r['execute_seconds']} s, "
                f"ratio {r['ratio_execute']} (wall {r['ratio_wall']})"
            )
            return r

        default = bs_run(main_dir, args.batch_size, None, "default")
        # the ceiling again, right after: drift or foreign load shows as a difference
        again = model_only(
            weights,
            files,
            procs=cores,
            threads=1,
            batch_size=args.batch_size,
            images=args.model_images,
        )
        log(f"model-only {cores}x1 bs={args.batch_size} (again): {again['images_per_second']}")
        default["model_only_after_images_per_second"] = again["images_per_second"]
        default["ratio_execute_vs_after"] = round(
            default["execute_images_per_second"] / again["images_per_second"], 3
        )
        sweep_dir = build_folder(files, work / "sweep", args.sweep_repeats)
        sweep_runs = [bs_run(sweep_dir, args.batch_size, None, "sweep")]
        for bs, shard in sweep:
            sweep_runs.append(bs_run(sweep_dir, bs, shard, "sweep"))
        # best = highest execute-phase images/s (ratios have different denominators)
        best_sweep = max(sweep_runs, key=lambda r: r["execute_images_per_second"])
        best_cfg = (
            best_sweep["batch_size"],
            None if best_sweep["shard_size_arg"] == "auto" else best_sweep["shard_size_arg"],
        )
        if best_cfg == (args.batch_size, None):
            best = default
        else:
            best = bs_run(main_dir, best_cfg[0], best_cfg[1], "best")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    total = time.perf_counter() - started
    import torch

    result = {
        "machine": {
            "cores": cores,
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
        },
        "method": METHOD,
        "image_size": "480x360 (W x H)",
        "target_ratio": TARGET,
        "model_only": {str(k): v for k, v in model.items()},
        "model_only_reference_1proc": ref,
        "model_only_after_default": again,
        "stage_profile": prof,
        "batchseg_runs": runs,
        "default": default,
        "best": best,
        "passes": bool(default["ratio_execute"] >= TARGET),
        "benchmark_seconds": round(total, 1),
    }
    (args.out / "semantic.json").write_text(json.dumps(result, indent=2))

    mrows = [
        [
            f"{v['procs']} x {v['threads']}",
            v["batch_size"],
            v["images"],
            v["seconds"],
            v["images_per_second"],
            v["foreign_cpu_share"],
        ]
        for v in [*model.values(), ref, again]
    ]
    brows = [
        [
            r["label"],
            r["batch_size"],
            f"{r['shard_size']} ({r['shard_size_arg']})",
            r["images"],
            r["wall_seconds"],
            r["wall_images_per_second"],
            r["execute_seconds"],
            r["execute_images_per_second"],
            r["model_only_images_per_second"],
            r["ratio_execute"],
            r["ratio_wall"],
            r["foreign_cpu_share"],
        ]
        for r in runs
    ]
    srows = [[k, v] for k, v in prof["per_image_ms"].items()]
    md = "\n\n".join(
        [
            f"# Semantic segmentation on the CPU ({METHOD}, 11 classes, CamVid val 480x360)",
            f"{cores} cores, torch {torch.__version__}, Python {platform.python_version()}; "
            f"benchmark took {total:.0f} s. Target: execute-phase images/s >= {TARGET} x "
            f"model-only ({cores} processes x 1 torch thread, same batch size).",
            "## Model-only (pre-decoded, pre-normalised fp32 tensors, inference_mode)",
            _fmt_table(
                ["procs x threads", "batch", "images", "s", "images/s", "foreign CPU"], mrows
            ),
            "## batchseg run (embedded cluster, default sizing)",
            _fmt_table(
                [
                    "run",
                    "batch",
                    "shard",
                    "images",
                    "wall s",
                    "wall img/s",
                    "execute s",
                    "execute img/s",
                    "model-only img/s",
                    "ratio (execute)",
                    "ratio (wall)",
                    "foreign CPU",
                ],
                brows,
            ),
            f"Default: ratio {default['ratio_execute']} (execute phase), "
            f"{default['ratio_wall']} including cluster start and model load. "
            f"Best: batch {best['batch_size']}, shard {best['shard_size']} -> "
            f"{best['ratio_execute']} ({best['ratio_wall']}). "
            f"{'PASS' if result['passes'] else 'FAIL'} (default >= {TARGET}). "
            f"Against the model-only rate measured again right after the default run "
            f"({again['images_per_second']} images/s): {default['ratio_execute_vs_after']}.",
            "foreign CPU: share of the machine's CPU time used by processes outside this "
            "benchmark during the measurement (0 on an idle machine; above ~0.05 the figures "
            "are disturbed and the ratios unreliable).",
            f"## Worker stage profile (1 process x 1 thread, batch {prof['batch_size']}, "
            f"{prof['images']} images; model load {prof['model_load_seconds']} s)",
            _fmt_table(["stage", "ms / image"], srows),
        ]
    )
    (args.out / "semantic.md").write_text(md + "\n")
    print()
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
