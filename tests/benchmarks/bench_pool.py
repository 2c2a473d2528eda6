"""batchseg against ``multiprocessing.Pool`` on the same images, alternating, median of rounds.

    python -m tests.benchmarks.bench_pool --data ../shared/data --out bench-results/pool
    python -m tests.benchmarks.bench_pool --otsu 2020 --slic 404 --rounds 3   # the defaults

The protocol of issue 15: CamVid val images (480x360 PNG) copied under distinct subfolders
(symlinks ``c00/``, ``c01/``, ...) until the count is reached; per workload (Otsu on 2,020
images, SLIC with 200 segments on 404) each round runs, each in a fresh process timed from
outside (interpreter start, imports, pool or cluster start included):

* ``pool``: ``multiprocessing.Pool(2)``, ``imap_unordered`` over chunks of 8 images: Pillow
  decode (``np.asarray(Image.open(path))``), the method's kernel
  (``get_method(id).segment``), one Zarr write per image into a Zarr v3 array of one chunk per
  image with batchseg's label codec (what a user writes in twenty lines);
* ``batchseg``: ``batchseg -q run DIR -m ID -o STORE --workers 2 --overwrite`` (the console
  script: embedded cluster, store, statistics, catalogue, consolidation);

in an order that changes every round (rotated, every other round reversed) so that drift in the
machine's speed hits every contender alike. ``--before FOLDER`` adds ``batchseg_before``: the
same command with ``PYTHONPATH=FOLDER`` (a worktree of an earlier commit), for before/after
figures from one run. ``single`` (the plain loop in one process, same work as a pool worker)
runs once per workload and gives the ideal, 2 x its rate. Prints one line per run and a table of
medians; the last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

CAMVID = "camvid/val"
WORKLOADS = {"otsu": ("skimage.otsu", {}), "slic": ("skimage.slic", {"n_segments": 200})}


def log(msg: str) -> None:
    print(msg, flush=True)


def build(data: Path, root: Path, count: int) -> list[str]:
    """``count`` CamVid val images as symlinks in subfolders of ``root``; sorted paths."""
    files = sorted((data / CAMVID).glob("*.png"))
    if not files:
        raise SystemExit(f"no images under {data / CAMVID}")
    shutil.rmtree(root, ignore_errors=True)
    paths: list[str] = []
    k = 0
    while len(paths) < count:
        sub = root / f"c{k:02d}"
        sub.mkdir(parents=True)
        for f in files[: count - len(paths)]:
            (sub / f.name).symlink_to(f.resolve())
            paths.append(str(sub / f.name))
        k += 1
    return sorted(paths)


# --------------------------------------------------------------------------- pool / single

_STATE: dict[str, Any] = {}


def _setup(method_id: str, params_json: str, array: str) -> None:
    import zarr

    from batchseg.methods import get_method

    method = get_method(method_id)
    _STATE.update(
        method=method,
        params=method.resolve_params(json.loads(params_json)),
        array=zarr.open_array(array, mode="r+"),
    )


def _one(item: tuple[int, str]) -> None:
    from PIL import Image

    index, path = item
    with Image.open(path) as im:
        image = np.asarray(im)
    method, params = _STATE["method"], _STATE["params"]
    labels = method.segment(image, params)
    _STATE["array"][index] = labels.astype(_STATE["array"].dtype, copy=False)


def _chunk(items: list[tuple[int, str]]) -> int:
    for item in items:
        _one(item)
    return len(items)


def _create_array(target: str, method_id: str, params_json: str, n: int) -> None:
    import zarr

    from batchseg.methods import get_method
    from batchseg.store import label_codec

    method = get_method(method_id)
    params = method.resolve_params(json.loads(params_json))
    dtype = method.label_dtype(params, 360, 480)
    zarr.create_array(
        target,
        shape=(n, 360, 480),
        chunks=(1, 360, 480),
        dtype=dtype,
        compressors=[label_codec(dtype)],
        overwrite=True,
    )


def contender(name: str, method_id: str, params_json: str, listing: str, out: str) -> None:
    """``single`` or ``pool`` in this process (called as ``--contender``)."""
    import multiprocessing

    paths = Path(listing).read_text().split()
    items = list(enumerate(paths))
    _create_array(out, method_id, params_json, len(items))
    t0 = time.perf_counter()
    if name == "single":
        _setup(method_id, params_json, out)
        for item in items:
            _one(item)
    else:
        chunks = [items[i : i + 8] for i in range(0, len(items), 8)]
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(2, initializer=_setup, initargs=(method_id, params_json, out)) as pool:
            assert sum(pool.imap_unordered(_chunk, chunks)) == len(items)
    print(json.dumps({"compute_s": time.perf_counter() - t0}))


# --------------------------------------------------------------------------- runner


def _timed(cmd: list[str], logf: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - t0
    with open(logf, "a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} exited {proc.returncode}; see {logf}")
    return wall, proc.stdout


def run_one(
    name: str, workload: str, images: Path, listing: Path, out: Path, before: str | None = None
) -> dict[str, Any]:
    method_id, params = WORKLOADS[workload]
    params_json = json.dumps(params)
    target = out / f"{workload}-{name}.zarr"
    shutil.rmtree(target, ignore_errors=True)
    logf = out / "run.log"
    if name.startswith("batchseg"):
        exe = str(Path(sys.executable).with_name("batchseg"))
        cmd = [exe, "-q", "run", str(images), "-m", method_id, "-o", str(target)]
        for key, value in params.items():
            cmd += ["-p", f"{key}={value}"]
        cmd += ["--workers", "2", "--overwrite"]
        env = {**os.environ, "PYTHONPATH": before} if name == "batchseg_before" and before else None
        wall, _ = _timed(cmd, logf, env)
        extra = _batchseg_run(target)
    else:
        cmd = [sys.executable, "-m", "tests.benchmarks.bench_pool", "--contender", name]
        cmd += ["--method", method_id, "--params", params_json]
        cmd += ["--listing", str(listing), "--target", str(target)]
        wall, stdout = _timed(cmd, logf)
        extra = json.loads(stdout.strip().splitlines()[-1])
    shutil.rmtree(target, ignore_errors=True)
    return {"name": name, "wall_s": wall, "load": os.getloadavg()[0], **extra}


def _batchseg_run(target: Path) -> dict[str, Any]:
    import zarr

    attrs = dict(zarr.open_group(str(target), mode="r").attrs["batchseg"])
    run = attrs["runs"][-1]
    assert run["failed"] == 0, run
    return {
        "images": run["processed"],
        "compute_s": run["execute_seconds"],
        "run_seconds": run["seconds"],
        "shard_size": attrs["shard_size"],
    }


def workload_rounds(
    workload: str, count: int, rounds: int, data: Path, out: Path, before: str | None = None
) -> dict[str, Any]:
    images = build(data, out / f"images-{workload}", count)
    listing = out / f"images-{workload}.txt"
    listing.write_text("\n".join(images) + "\n")
    log(f"\n== {workload}: {count} CamVid val images, {rounds} rounds")
    names = ["pool", "batchseg", *(["batchseg_before"] if before else [])]
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in (*names, "single")}
    # each round in another order (rotated, then reversed) so drift hits every contender alike
    order = [n for k in range(rounds) for n in _rotated(names, k)]
    single = run_one("single", workload, out / f"images-{workload}", listing, out)
    runs["single"].append(single)
    log(f"  single: {single['wall_s']:.1f} s ({count / single['compute_s']:.1f} images/s loop)")
    for name in order:
        r = run_one(name, workload, out / f"images-{workload}", listing, out, before)
        runs[name].append(r)
        log(
            f"  {name}: {r['wall_s']:.2f} s, {count / r['wall_s']:.1f} images/s (load {r['load']:.2f})"
        )
    return summary(workload, count, runs)


def _rotated(names: list[str], k: int) -> list[str]:
    turned = names[k % len(names) :] + names[: k % len(names)]
    return turned if k % 2 == 0 else turned[::-1]


def summary(workload: str, count: int, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    pool = statistics.median(r["wall_s"] for r in runs["pool"])
    bs = statistics.median(r["wall_s"] for r in runs["batchseg"])
    r1 = count / runs["single"][0]["compute_s"]
    pairs = [p["wall_s"] / b["wall_s"] for p, b in zip(runs["pool"], runs["batchseg"], strict=True)]
    extra = {}
    if runs.get("batchseg_before"):
        old = statistics.median(r["wall_s"] for r in runs["batchseg_before"])
        extra = {"before_median_s": old, "before_vs_pool": pool / old}
    return {
        **extra,
        "workload": workload,
        "images": count,
        "single_images_per_s": r1,
        "ideal_images_per_s": 2 * r1,
        "pool_median_s": pool,
        "batchseg_median_s": bs,
        "batchseg_vs_pool": pool / bs,
        "per_round_ratios": pairs,
        "batchseg_x_ideal": count / bs / (2 * r1),
        "pool_x_ideal": count / pool / (2 * r1),
        "runs": runs,
    }


def table(results: list[dict[str, Any]]) -> str:
    before = any("before_median_s" in r for r in results)
    lines = [
        "| workload | images | ideal images/s | Pool(2) images/s | batchseg images/s "
        "| batchseg / Pool | per round | batchseg x ideal | Pool x ideal |"
        + (" before / Pool |" if before else ""),
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"
        + (" ---: |" if before else ""),
    ]
    for r in results:
        n = r["images"]
        rounds = ", ".join(f"{x:.2f}" for x in r["per_round_ratios"])
        lines.append(
            f"| {r['workload']} | {n} | {r['ideal_images_per_s']:.1f} "
            f"| {n / r['pool_median_s']:.1f} | {n / r['batchseg_median_s']:.1f} "
            f"| **{r['batchseg_vs_pool']:.2f}** | {rounds} | {r['batchseg_x_ideal']:.2f} "
            f"| {r['pool_x_ideal']:.2f} |"
            + (
                f" {r['before_vs_pool']:.2f} |"
                if "before_vs_pool" in r
                else (" |" if before else "")
            )
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", default="bench-results/pool")
    ap.add_argument("--otsu", type=int, default=2020, help="images for Otsu (0: skip)")
    ap.add_argument("--slic", type=int, default=404, help="images for SLIC (0: skip)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--before",
        help="source folder of another batchseg version (e.g. a git worktree of the previous "
        "commit), run as the contender batchseg_before with PYTHONPATH=FOLDER",
    )
    ap.add_argument("--contender", choices=("single", "pool"))
    ap.add_argument("--method")
    ap.add_argument("--params", default="{}")
    ap.add_argument("--listing")
    ap.add_argument("--target")
    args = ap.parse_args(argv)
    if args.contender:
        contender(args.contender, args.method, args.params, args.listing, args.target)
        return 0
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.log").write_text("")
    results = [
        workload_rounds(w, n, args.rounds, Path(args.data).absolute(), out, args.before)
        for w, n in (("otsu", args.otsu), ("slic", args.slic))
        if n > 0
    ]
    log("\n" + table(results))
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps([{k: v for k, v in r.items() if k != "runs"} for r in results]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
