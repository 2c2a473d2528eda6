"""Planes benchmark: a 2,000-plane stack file with ``--planes z`` against the same planes as
separate PNGs.

Run: ``python -m tests.benchmarks.bench_planes --out bench-results [--planes 2000 --side 256]``.

Writes ``--planes`` synthetic grey planes (bright discs on noise, ``--side`` square, uint8)
once as one ImageJ z-stack TIFF and once as one PNG per plane, then segments both with the
same method (``skimage.otsu``, cheap, so reading dominates: the harshest comparison) on one
2-worker LocalCluster (one thread each) started here, so cluster start-up is outside both
timings. Each collection is run ``--repeats`` times, alternating, into a fresh store; the best
wall time of ``run_job`` (discovery, header reads, planning, store creation, segmentation,
finalisation) is kept. Reports images per second of each and the ratio stack / PNGs (target
>= 0.9). The stack's planes are read from one open file per task.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np


def write_inputs(work: Path, n: int, side: int) -> tuple[Path, Path]:
    """The stack (folder holding ``stack.tif``) and the PNG folder of the same planes."""
    import tifffile
    from PIL import Image

    from tests.helpers.images import make_image

    stack_dir, png_dir = work / "stack", work / "pngs"
    for d in (stack_dir, png_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    planes = np.stack([make_image(rng, side, side, colour=False) for _ in range(n)])
    tifffile.imwrite(stack_dir / "stack.tif", planes, imagej=True, metadata={"axes": "ZYX"})
    for i, plane in enumerate(planes):
        Image.fromarray(plane).save(png_dir / f"plane_{i:05d}.png")
    return stack_dir, png_dir


def run_once(source: Path, out: Path, address: str, **stack: str) -> dict[str, Any]:
    from batchseg.cluster.profiles import AddressProfile
    from batchseg.job.run import run_job
    from batchseg.job.spec import JobSpec

    spec = JobSpec(
        input=str(source),
        method="skimage.otsu",
        output=str(out),
        overwrite=True,
        profile=AddressProfile(address),
        **stack,  # type: ignore[arg-type]
    )
    start = time.perf_counter()
    result = run_job(spec)
    wall = time.perf_counter() - start
    assert result.failed == 0, result
    return {"images": result.done, "seconds": round(wall, 2), "per_second": result.done / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--planes", type=int, default=2000)
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default="bench-results")
    ap.add_argument("--work", default=None, help="folder for inputs and stores (default OUT)")
    args = ap.parse_args()
    out = Path(args.out)
    work = Path(args.work) if args.work else out / "planes-work"
    out.mkdir(parents=True, exist_ok=True)
    stack_dir, png_dir = write_inputs(work, args.planes, args.side)

    import dask
    from distributed import Client, LocalCluster

    from batchseg.cluster.local import WORKER_ENV

    env = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_ENV.items()}
    runs: dict[str, list[dict[str, Any]]] = {"stack": [], "pngs": []}
    with (
        dask.config.set(env),
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster),
    ):
        address = cluster.scheduler_address
        for _ in range(args.repeats):
            runs["pngs"].append(run_once(png_dir, work / "pngs.zarr", address))
            runs["stack"].append(run_once(stack_dir, work / "stack.zarr", address, planes="z"))
    best = {k: max(v, key=lambda r: r["per_second"]) for k, v in runs.items()}
    ratio = best["stack"]["per_second"] / best["pngs"]["per_second"]
    report = {
        "planes": args.planes,
        "side": args.side,
        "method": "skimage.otsu",
        "runs": runs,
        "stack_images_per_second": round(best["stack"]["per_second"], 1),
        "pngs_images_per_second": round(best["pngs"]["per_second"], 1),
        "ratio_stack_to_pngs": round(ratio, 3),
        "target": ">= 0.9",
    }
    (out / "planes.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
