"""Gigapixel benchmark: a synthetic 40k x 40k image segmented tile by tile, memory per worker.

Run: ``python -m tests.benchmarks.bench_tiled --side 40000 --out bench-results``; with
``--semantic``, tiled vs whole-image semantic inference of one scene instead
(:func:`semantic_main`).

Writes a seamless synthetic grey BigTIFF (tiled 512 x 512, generated tile by tile, so the image
never exists whole in memory), then runs a batchseg job on a 2-worker LocalCluster with a
2 GiB memory limit per worker and reports: wall time, pixels per second, each worker's peak RSS
(VmHWM from /proc, read in the worker after the job), the launcher's peak RSS, and the store
size. Method: ``skimage.objects`` (global Otsu threshold from tile histograms + connected
components stitched across tiles + relabelling + label pyramid), optionally ``skimage.otsu``
and ``skimage.slic`` (``--methods``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np


def synthetic_tile(y0: int, x0: int, h: int, w: int) -> np.ndarray:
    """Pixels [y0:y0+h, x0:x0+w] of a seamless pattern (blobs of several scales + noise)."""
    y = np.arange(y0, y0 + h, dtype=np.float32)[:, None]
    x = np.arange(x0, x0 + w, dtype=np.float32)[None, :]
    v = (
        np.sin(x / 97.0) * np.cos(y / 131.0) * 60
        + np.sin((x + 2 * y) / 613.0) * 45
        + np.cos((3 * x - y) / 2903.0) * 25
        + 128
    )
    rng = np.random.default_rng(y0 * 1_000_003 + x0)
    v += rng.normal(0, 3, (h, w)).astype(np.float32)
    return np.clip(v, 0, 255).astype(np.uint8)


def write_image(path: Path, side: int, tile: int = 512) -> float:
    import tifffile

    start = time.perf_counter()

    def tiles():
        for y0 in range(0, side, tile):
            for x0 in range(0, side, tile):
                t = np.zeros((tile, tile), np.uint8)
                h, w = min(tile, side - y0), min(tile, side - x0)
                t[:h, :w] = synthetic_tile(y0, x0, h, w)
                yield t

    tifffile.imwrite(
        path, tiles(), shape=(side, side), dtype=np.uint8, tile=(tile, tile), bigtiff=True
    )
    return time.perf_counter() - start


def _peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM), MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_method(
    image_dir: Path,
    out: Path,
    method: str,
    params: dict[str, Any],
    tile_threshold: int | None,
    tile_size: int | None = None,
) -> dict[str, Any]:
    import dask
    from distributed import Client, LocalCluster

    from batchseg.cluster.local import WORKER_ENV
    from batchseg.cluster.profiles import AddressProfile
    from batchseg.job.run import run_job
    from batchseg.job.spec import JobSpec

    env = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_ENV.items()}
    with (
        dask.config.set(env),  # the worker environment of batchseg's own LocalCluster
        LocalCluster(
            n_workers=2, threads_per_worker=1, memory_limit="2GiB", dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        spec = JobSpec(
            input=str(image_dir),
            method=method,
            output=str(out),
            params=params,
            profile=AddressProfile(cluster.scheduler_address),
            overwrite=True,
            **({"tile_threshold": tile_threshold} if tile_threshold else {}),
            **({"tile_size": tile_size} if tile_size else {}),
        )
        start = time.perf_counter()
        result = run_job(spec)
        wall = time.perf_counter() - start
        peaks = client.run(_peak_rss_mib)
    size = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
    return {
        "method": method,
        "params": params,
        "status": {"done": result.done, "failed": result.failed},
        "seconds": round(wall, 1),
        "megapixels_per_second": None,
        "worker_peak_rss_mib": sorted(round(v) for v in peaks.values()),
        "store_mib": round(size / 2**20, 1),
    }


def write_scene(path: Path, height: int, width: int) -> np.ndarray:
    """An RGB scene of the synthetic pattern (three phases of it), stored as a tiled TIFF."""
    import tifffile

    grey = synthetic_tile(0, 0, height, width)
    scene = np.stack([grey, np.roll(grey, 97, axis=1), np.roll(grey, 131, axis=0)], axis=-1)
    tifffile.imwrite(path, scene, tile=(256, 256), photometric="rgb")
    return scene


def make_weights(path: Path, classes: int) -> str:
    """A seeded random LR-ASPP state_dict (no download; time does not depend on the weights)."""
    import torch
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    torch.manual_seed(0)
    model = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=classes)
    torch.save(model.eval().state_dict(), path)
    return str(path)


def semantic_main(args: argparse.Namespace) -> None:
    """Tiled semantic inference vs whole-image inference of the same scene, side by side.

    One 2-worker LocalCluster runs, per round, the scene as an ordinary image (whole-image
    inference, one task) and tiled at each ``--semantic-tiles`` size (sliding windows of
    ``window``/``overlap``, logits blended); the first round warms the workers (model load)
    and is not counted. Prints wall and execute-phase seconds (median over the counted rounds),
    the ratio tiled / whole (target <= 1.2) and the share of pixels whose labels agree.
    """
    import statistics

    import batchseg

    work = Path(args.work or args.out) / "tiled-semantic"
    (work / "in").mkdir(parents=True, exist_ok=True)
    height, width = args.scene
    write_scene(work / "in" / "scene.tif", height, width)
    weights = make_weights(work / "lraspp.pt", 11)
    method = "torchvision.lraspp_mobilenet_v3_large"
    params = {"weights": weights, "device": "cpu", "window": 512, "overlap": 128}
    runs: dict[str, list[tuple[float, float]]] = {}
    masks: dict[str, np.ndarray] = {}
    names = ["whole", *(f"tile{t}" for t in args.semantic_tiles)]
    for round_ in range(args.rounds + 1):
        for name in names:
            tiled = name != "whole"
            out = work / f"{name}.zarr"
            run = run_method(
                work / "in",
                out,
                method,
                params,
                height * width - 1 if tiled else None,
                tile_size=int(name[4:]) if tiled else None,
            )
            view = batchseg.open(str(out))
            execute = float(view.attrs["runs"][-1]["execute_seconds"])
            masks[name] = view.mask("scene.tif")
            if round_ > 0:
                runs.setdefault(name, []).append((run["seconds"], execute))
    whole = [statistics.median(v[i] for v in runs["whole"]) for i in (0, 1)]
    report = {"scene": [height, width], "window": 512, "overlap": 128, "rounds": args.rounds}
    for name in names:
        wall, execute = (statistics.median(v[i] for v in runs[name]) for i in (0, 1))
        report[name] = {
            "wall_seconds": round(wall, 2),
            "execute_seconds": round(execute, 2),
            "wall_x_whole": round(wall / whole[0], 2),
            "execute_x_whole": round(execute / whole[1], 2),
            "labels_agree_with_whole": round(float((masks[name] == masks["whole"]).mean()), 5),
        }
    print(json.dumps(report, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--side", type=int, default=40000)
    ap.add_argument("--out", default="bench-results")
    ap.add_argument("--work", default=None, help="folder for the image and stores (default OUT)")
    ap.add_argument("--methods", default="skimage.objects,skimage.otsu")
    ap.add_argument("--tile-threshold", type=int, default=None, help="default: the job default")
    ap.add_argument(
        "--semantic",
        action="store_true",
        help="instead: tiled vs whole-image semantic inference of one --scene (LR-ASPP, CPU)",
    )
    ap.add_argument("--scene", type=int, nargs=2, default=(1024, 1280), metavar=("H", "W"))
    ap.add_argument("--semantic-tiles", type=int, nargs="+", default=(256, 512))
    ap.add_argument("--rounds", type=int, default=2, help="counted rounds (--semantic)")
    args = ap.parse_args()
    if args.semantic:
        semantic_main(args)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or out) / f"tiled-{args.side}"
    image_dir = work / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    image = image_dir / f"synthetic_{args.side}.tif"
    report: dict[str, Any] = {"side": args.side, "pixels": args.side**2, "runs": []}
    if not image.exists():
        report["write_seconds"] = round(write_image(image, args.side), 1)
    report["image_mib"] = round(image.stat().st_size / 2**20, 1)
    params = {
        "skimage.objects": {"min_area": 20},
        "skimage.otsu": {},
        "skimage.slic": {"n_segments": max(1, args.side**2 // 40000)},
    }
    for method in args.methods.split(","):
        run = run_method(
            image_dir, work / f"{method}.zarr", method, params.get(method, {}), args.tile_threshold
        )
        run["megapixels_per_second"] = round(args.side**2 / 1e6 / run["seconds"], 2)
        print(json.dumps(run), flush=True)
        report["runs"].append(run)
        shutil.rmtree(work / f"{method}.zarr", ignore_errors=True)
    report["launcher_peak_rss_mib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    report["cpu_count"] = os.cpu_count()
    (out / f"tiled-{args.side}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
