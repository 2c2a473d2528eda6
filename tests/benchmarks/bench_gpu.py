"""Semantic and instance segmentation on one GPU: ``batchseg run`` execute phase vs the bare model, side by side.

    python -m tests.benchmarks.bench_gpu --out bench-results/gpu          # on a CUDA machine
    .venv/bin/python -m tests.benchmarks.bench_gpu --cpu-smoke --out /tmp/gpu-smoke   # no GPU

For each model (``torchvision.<builder>``, 21 classes, seeded random weights saved as a
state_dict; no download, throughput does not depend on weight values):

* **images**: N synthetic, seeded RGB PNGs of SIZE x SIZE on local disk (smooth random colour
  fields plus a little noise, so PNG decoding costs about what a photo costs), made once for the
  largest N and shared (a folder of symlinks for smaller N).
* **model-only** (the ceiling): a pool of decoded images, normalised to float32 NCHW batches in
  pinned host memory before the clock starts; per batch a ``non_blocking`` copy to the GPU,
  channels-last, forward under ``torch.inference_mode`` + autocast (bf16 by default), argmax on
  the GPU; warm-up batches first, then N images timed with ``torch.cuda.synchronize`` around.
* **batchseg**: ``batchseg run IMAGES -m torchvision.<builder> --weights W --precision P
  --batch-size B --device cuda --gpus 1 -o STORE --overwrite`` as a subprocess (the console
  script next to ``sys.executable``); images/s from the store's ``runs[-1]`` (``execute_seconds``
  and ``seconds``). The execute phase includes model load and CUDA start in the worker.
* **GPU busy %**: ``utilization.gpu`` sampled every 100 ms in a background thread (pynvml when
  importable, else ``nvidia-smi``). For model-only: the mean over the timed loop. For batchseg:
  the mean over the execute phase, taken as the ``execute_seconds`` window that ends at the last
  sample with the GPU busy (after it only the cluster's shutdown and the store's finalisation
  run); the mean from the first to the last busy sample is reported too.
* **peak memory** (MiB): model-only, the most memory torch allocated on the GPU (on the CPU, the
  benchmark process's peak RSS); batchseg, the most device memory in use while it ran, sampled
  with the busy % (on the CPU, the largest RSS among the processes it started).

* **instances**: then Mask R-CNN (``torchvision.maskrcnn_resnet50_fpn``, seeded random weights)
  on the first ``--instances`` of the same images (default 64; 2 with ``--cpu-smoke``; 0 skips
  it) through :func:`tests.benchmarks.bench_instance.compare`: the bare model against
  ``batchseg run ... --gpus 1`` (execute phase and end to end).

Targets (reported, not asserted): batchseg execute / model-only >= 0.85, GPU busy >= 90 %.
Writes OUT/gpu.json and OUT/gpu.md and prints the table. Without a CUDA device it stops at once,
except with ``--cpu-smoke`` (8 tiny images, device cpu, fp32, no GPU sampling), which checks the
script itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

NUM_CLASSES = 21
DEFAULT_MODELS = "lraspp_mobilenet_v3_large,deeplabv3_resnet50"
# images per model sized for ~20-40 s per measurement on an H100 at 512x512, bf16
DEFAULT_IMAGES = {"lraspp_mobilenet_v3_large": 2000, "deeplabv3_resnet50": 800}
FALLBACK_IMAGES = 800
QUICK_IMAGES = 64
SMOKE_IMAGES = 8
SMOKE_SIZE = 64
RATIO_TARGET = 0.85
BUSY_TARGET = 90.0
MEAN = (0.485, 0.456, 0.406)  # ImageNet, what batchseg uses for a state_dict
STD = (0.229, 0.224, 0.225)


_T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f} s] {msg}", flush=True)


# --------------------------------------------------------------------------- inputs


def make_weights(builder: str, path: Path) -> str:
    """A seeded random state_dict of ``torchvision.models.segmentation.<builder>``."""
    import torch
    from torchvision.models import segmentation

    torch.manual_seed(0)
    model = getattr(segmentation, builder)(
        weights=None, weights_backbone=None, num_classes=NUM_CLASSES
    ).eval()
    torch.save(model.state_dict(), path)
    return str(path)


def _make_png(args: tuple[str, int, int]) -> None:
    from PIL import Image

    path, size, seed = args
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, size=(12, 12, 3), dtype=np.uint8)
    smooth = np.asarray(
        Image.fromarray(low).resize((size, size), Image.Resampling.BICUBIC), dtype=np.int16
    )
    noise = rng.integers(-6, 7, size=smooth.shape, dtype=np.int16)
    img = np.clip(smooth + noise, 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path, format="PNG")


def make_images(root: Path, n: int, size: int, workers: int) -> Path:
    """``root/img_000000.png`` ... (seeded per index); kept if already complete."""
    root.mkdir(parents=True, exist_ok=True)
    jobs = [
        (str(root / f"img_{i:06d}.png"), size, 1000 + i)
        for i in range(n)
        if not (root / f"img_{i:06d}.png").exists()
    ]
    if jobs:
        if workers > 1 and len(jobs) > 16:
            with ProcessPoolExecutor(workers) as pool:
                list(pool.map(_make_png, jobs, chunksize=16))
        else:
            for job in jobs:
                _make_png(job)
    return root


def subset(images: Path, root: Path, n: int) -> Path:
    """A folder with symlinks to the first ``n`` images (``images`` itself when it has n)."""
    files = sorted(images.glob("*.png"))
    if len(files) == n:
        return images
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for f in files[:n]:
        (root / f.name).symlink_to(f.resolve())
    return root


# --------------------------------------------------------------------------- GPU sampling


class GpuSampler:
    """``utilization.gpu`` (percent) and memory used (MiB) every ``interval`` s in a daemon
    thread: ``samples`` (time, percent) and ``memory`` (time, MiB)."""

    def __init__(self, interval: float = 0.1, index: int = 0) -> None:
        self.interval = interval
        self.index = index
        self.samples: list[tuple[float, float]] = []
        self.memory: list[tuple[float, float]] = []
        self.source = "none"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._read = self._pick()

    def _pick(self) -> Any:
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)
            pynvml.nvmlDeviceGetUtilizationRates(handle)
            self.source = "pynvml"
            return lambda: (
                float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
                pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20,
            )
        except Exception:  # noqa: BLE001 - not importable / no driver: try nvidia-smi
            pass
        smi = shutil.which("nvidia-smi")
        if smi is None:
            return None
        cmd = [
            smi,
            f"--id={self.index}",
            "--query-gpu=utilization.gpu,memory.used",
            "--format=csv,noheader,nounits",
        ]

        def read() -> tuple[float, float]:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
            busy, used = out.stdout.strip().splitlines()[0].split(",")
            return float(busy), float(used)

        try:
            read()
        except Exception:  # noqa: BLE001
            return None
        self.source = "nvidia-smi"
        return read

    def _loop(self) -> None:
        while not self._stop.is_set():
            t = time.perf_counter()
            try:
                busy, used = self._read()
                self.samples.append((t, busy))
                self.memory.append((t, used))
            except Exception:  # noqa: BLE001 - a missed sample is not fatal
                pass
            self._stop.wait(max(0.0, self.interval - (time.perf_counter() - t)))

    def __enter__(self) -> GpuSampler:
        if self._read is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def mean(self, t0: float, t1: float) -> float | None:
        vals = [v for t, v in self.samples if t0 <= t <= t1]
        return round(sum(vals) / len(vals), 1) if vals else None

    def peak_memory(self, t0: float, t1: float) -> float | None:
        """Most device memory used (MiB, every process on the GPU) between t0 and t1."""
        vals = [v for t, v in self.memory if t0 <= t <= t1]
        return round(max(vals)) if vals else None

    def busy_span(self) -> tuple[float, float] | None:
        busy = [t for t, v in self.samples if v > 0]
        return (busy[0], busy[-1]) if busy else None


def gpu_index() -> int:
    first = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip()
    return int(first) if first.isdigit() else 0


# --------------------------------------------------------------------------- model-only


def model_only(
    builder: str,
    weights: str,
    files: list[Path],
    *,
    images: int,
    batch_size: int,
    device: str,
    precision: str,
    sampler: GpuSampler | None,
    warmup: int = 3,
    pool_images: int = 256,
) -> dict[str, Any]:
    """images/s of the bare network over ``images`` images already normalised in host memory."""
    import torch
    from PIL import Image
    from torchvision.models import segmentation

    cuda = device.startswith("cuda")
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    decoded = [np.asarray(Image.open(f).convert("RGB")) for f in files[:pool_images]]
    # distinct pinned batches cycled over (holding all N as float32 would take N x 3 MB)
    n_pool = max(1, min(len(decoded) // batch_size, 16)) if len(decoded) >= batch_size else 1
    host = []
    for b in range(n_pool):
        chunk = np.stack([decoded[(b * batch_size + k) % len(decoded)] for k in range(batch_size)])
        x = torch.from_numpy(chunk).permute(0, 3, 1, 2).float().div_(255.0)
        x = ((x - mean) / std).contiguous()
        host.append(x.pin_memory() if cuda else x)
    sizes = [min(batch_size, images - s) for s in range(0, images, batch_size)]

    model = getattr(segmentation, builder)(
        weights=None, weights_backbone=None, num_classes=NUM_CLASSES
    )
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval().to(device)
    fmt = torch.channels_last if cuda else torch.contiguous_format
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    autocast = (
        torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16)
        if precision == "bf16"
        else torch.autocast(device_type="cuda", dtype=torch.float16)
        if precision == "fp16"
        else contextlib.nullcontext()
    )

    def step(i: int, n: int) -> Any:
        x = host[i % n_pool][:n].to(device, non_blocking=True)
        x = x.contiguous(memory_format=fmt)
        with autocast:
            out = model(x)["out"]
        return out.argmax(1)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        for i in range(warmup):
            step(i, batch_size)
        sync()
        t0 = time.perf_counter()
        for i, n in enumerate(sizes):
            labels = step(i, n)
        sync()
        t1 = time.perf_counter()
    del labels
    wall = t1 - t0
    return {
        "images": images,
        "batch_size": batch_size,
        "distinct_batches": n_pool,
        "seconds": round(wall, 3),
        "images_per_second": round(images / wall, 2),
        "gpu_busy_pct": sampler.mean(t0, t1) if sampler else None,
        # CUDA: the most memory torch allocated on the device; CPU: this process's peak RSS
        "peak_memory_mib": round(torch.cuda.max_memory_allocated() / 2**20)
        if cuda
        else peak_rss_mib(resource.RUSAGE_SELF),
    }


def peak_rss_mib(who: int) -> int:
    """Peak resident set of this process (``RUSAGE_SELF``) or of the largest of its finished
    descendants (``RUSAGE_CHILDREN``), MiB (Linux reports KiB)."""
    return round(resource.getrusage(who).ru_maxrss / 1024)


# --------------------------------------------------------------------------- batchseg


def batchseg_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("batchseg")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "batchseg.cli"]


def batchseg_run(
    builder: str,
    weights: str,
    folder: Path,
    store: Path,
    *,
    batch_size: int,
    device: str,
    precision: str,
    sampler: GpuSampler | None,
    timeout: float,
) -> dict[str, Any]:
    """``batchseg run`` in a subprocess; the store's execute-phase and whole-run images/s."""
    import zarr

    cmd = batchseg_cmd() + [
        "run",
        str(folder),
        "-m",
        f"torchvision.{builder}",
        "--weights",
        weights,
        "--precision",
        precision,
        "--batch-size",
        str(batch_size),
        "--device",
        device,
        "-o",
        str(store),
        "--overwrite",
    ]
    cmd += ["--gpus", "1"] if device.startswith("cuda") else ["--workers", "1"]
    log("  $ " + " ".join(cmd))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    t1 = time.perf_counter()
    if proc.returncode != 0:
        raise RuntimeError(
            f"batchseg run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}\n"
            f"{proc.stdout[-1000:]}"
        )
    attrs = dict(zarr.open_group(str(store), mode="r").attrs)["batchseg"]
    run = attrs["runs"][-1]
    n = int(run["processed"])
    ex = float(run["execute_seconds"])
    total = float(run["seconds"])
    busy = active = None
    if sampler is not None:
        span = sampler.busy_span()
        if span is not None and t0 <= span[1] <= t1:
            busy = sampler.mean(max(t0, span[1] - ex), span[1])
            active = sampler.mean(span[0], span[1])
        else:
            busy = sampler.mean(t0, t1)
    shutil.rmtree(store, ignore_errors=True)
    return {
        "images": n,
        "done": int(run["done"]),
        "failed": int(run["failed"]),
        "batch_size": batch_size,
        "shard_size": attrs.get("shard_size"),
        "process_seconds": round(t1 - t0, 3),
        "run_seconds": round(total, 3),
        "execute_seconds": round(ex, 3),
        "run_images_per_second": round(n / total, 2) if total > 0 else None,
        "execute_images_per_second": round(n / ex, 2) if ex > 0 else None,
        "gpu_busy_pct": busy,
        "gpu_busy_pct_active_span": active,
        # CUDA: the most device memory used during the run (sampled); CPU: the largest RSS of
        # the processes it started (launcher, workers)
        "peak_memory_mib": sampler.peak_memory(t0, t1)
        if sampler is not None
        else peak_rss_mib(resource.RUSAGE_CHILDREN),
    }


# --------------------------------------------------------------------------- report


def _fmt(v: Any) -> str:
    return "-" if v is None else str(v)


def table(rows: list[dict[str, Any]]) -> str:
    head = [
        "model",
        "images",
        "model-only images/s",
        "batchseg execute images/s",
        "ratio (>= 0.85)",
        "batchseg run images/s",
        "GPU busy % model-only",
        "GPU busy % batchseg (>= 90)",
        "peak memory MiB model-only",
        "peak memory MiB batchseg",
    ]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for r in rows:
        mo, bs = r["model_only"], r["batchseg"]
        cells = [
            r["model"],
            r["images"],
            mo["images_per_second"],
            bs["execute_images_per_second"],
            r["ratio"],
            bs["run_images_per_second"],
            mo["gpu_busy_pct"],
            bs["gpu_busy_pct"],
            mo.get("peak_memory_mib"),
            bs.get("peak_memory_mib"),
        ]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("bench-results/gpu"))
    ap.add_argument("--images", type=int, default=0, help="images per model (0 = per-model)")
    ap.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated builders")
    ap.add_argument("--size", type=int, default=512, help="image height = width")
    ap.add_argument("--precision", default="bf16", choices=("fp32", "fp16", "bf16"))
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a tmp dir)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per batchseg run")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_IMAGES} images per model")
    ap.add_argument(
        "--cpu-smoke",
        action="store_true",
        help=f"check the script on the CPU: {SMOKE_IMAGES} images of {SMOKE_SIZE}px, fp32",
    )
    ap.add_argument(
        "--instances",
        type=int,
        default=None,
        help="images for the Mask R-CNN comparison (bench_instance.compare on the same "
        "generated images; default 64 on a GPU, 2 with --cpu-smoke; 0 skips it)",
    )
    args = ap.parse_args(argv)

    import torch

    if args.cpu_smoke:
        device, precision, size, batch_size = "cpu", "fp32", SMOKE_SIZE, 4
    else:
        if not torch.cuda.is_available():
            print(
                "bench_gpu: torch sees no CUDA device (torch "
                f"{torch.__version__}, CUDA build {torch.version.cuda}); this benchmark needs "
                "a GPU. Use --cpu-smoke to check the script on the CPU.",
                file=sys.stderr,
            )
            return 2
        device, precision, size, batch_size = "cuda", args.precision, args.size, args.batch_size
    if shutil.which(batchseg_cmd()[0]) is None and not Path(batchseg_cmd()[0]).exists():
        print("bench_gpu: no batchseg console script next to python", file=sys.stderr)
        return 2
    builders = [m.strip() for m in args.models.split(",") if m.strip()]
    counts = {
        b: SMOKE_IMAGES
        if args.cpu_smoke
        else QUICK_IMAGES
        if args.quick
        else args.images or DEFAULT_IMAGES.get(b, FALLBACK_IMAGES)
        for b in builders
    }

    card = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    log(f"device {device} ({card}), torch {torch.__version__}, {cores} cores, models {builders}")
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    rows_instances: list[dict[str, Any]] = []
    try:
        images = make_images(work / "images", max(counts.values()), size, cores or 1)
        all_files = sorted(images.glob("*.png"))
        log(f"{len(all_files)} images of {size}x{size} in {images}")
        sampler_cm = GpuSampler(0.1, gpu_index()) if device == "cuda" else None
        with sampler_cm if sampler_cm else contextlib.nullcontext():
            if sampler_cm is not None:
                log(f"GPU utilisation source: {sampler_cm.source}")
            for builder in builders:
                n = counts[builder]
                weights = make_weights(builder, work / f"{builder}_{NUM_CLASSES}.pt")
                folder = subset(images, work / f"images_{n}", n)
                log(f"{builder}: model-only, {n} images, batch {batch_size}, {precision}")
                mo = model_only(
                    builder,
                    weights,
                    all_files[:n],
                    images=n,
                    batch_size=batch_size,
                    device=device,
                    precision=precision,
                    sampler=sampler_cm,
                )
                log(f"  {mo['images_per_second']} images/s, GPU busy {mo['gpu_busy_pct']} %")
                if device == "cuda":
                    torch.cuda.empty_cache()  # leave the GPU's memory to the batchseg worker
                log(f"{builder}: batchseg run")
                bs = batchseg_run(
                    builder,
                    weights,
                    folder,
                    work / f"{builder}.zarr",
                    batch_size=batch_size,
                    device=device,
                    precision=precision,
                    sampler=sampler_cm,
                    timeout=args.timeout,
                )
                log(
                    f"  execute {bs['execute_images_per_second']} images/s "
                    f"({bs['execute_seconds']} s), run {bs['run_images_per_second']} images/s, "
                    f"GPU busy {bs['gpu_busy_pct']} %"
                )
                if bs["failed"] or bs["done"] != n:
                    raise RuntimeError(f"batchseg: {bs['done']} done, {bs['failed']} failed of {n}")
                ex = bs["execute_images_per_second"]
                ratio = round(ex / mo["images_per_second"], 3) if ex else None
                rows.append(
                    {
                        "model": f"torchvision.{builder}",
                        "images": n,
                        "ratio": ratio,
                        "ratio_target_met": ratio is not None and ratio >= RATIO_TARGET,
                        "gpu_busy_target_met": (bs["gpu_busy_pct"] or 0) >= BUSY_TARGET,
                        "model_only": mo,
                        "batchseg": bs,
                    }
                )
        sampler_source = sampler_cm.source if sampler_cm else "none"
        n_inst = args.instances if args.instances is not None else 2 if args.cpu_smoke else 64
        if n_inst > 0:
            from tests.benchmarks.bench_instance import compare

            log(f"maskrcnn_resnet50_fpn: model-only vs batchseg, {n_inst} images, {device}")
            instance_row = compare(all_files[:n_inst], device, 4 if device == "cuda" else 2)
            log(f"  {instance_row}")
            rows_instances.append(instance_row)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    import batchseg

    meta = {
        "device": device,
        "card": card,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "batchseg": getattr(batchseg, "__version__", "?"),
        "python": platform.python_version(),
        "cores": cores,
        "size": size,
        "precision": precision,
        "batch_size": batch_size,
        "gpu_util_source": sampler_source,
        "targets": {"ratio": RATIO_TARGET, "gpu_busy_pct": BUSY_TARGET},
        "cpu_smoke": args.cpu_smoke,
    }
    md = (
        f"Card: {card}; torch {torch.__version__}; {size}x{size} PNG, {precision}, "
        f"batch {batch_size}, {cores} CPU cores; GPU utilisation via {sampler_source}.\n\n"
        + table(rows)
        + "\n"
    )
    for r in rows_instances:
        md += (
            f"\nMask R-CNN ({r['images']} images, {r['device']}): model-only "
            f"{r['model_only_images_per_s']} images/s, batchseg execute "
            f"{r['batchseg_execute_images_per_s']} images/s "
            f"(ratio {r['execute_over_model_only']}), end to end "
            f"{r['batchseg_end_to_end_images_per_s']} images/s, {r['objects']} objects.\n"
        )
    payload = {"meta": meta, "results": rows, "instances": rows_instances}
    (args.out / "gpu.json").write_text(json.dumps(payload, indent=2))
    (args.out / "gpu.md").write_text(md)
    print()
    print(md)
    log(f"wrote {args.out / 'gpu.json'} and {args.out / 'gpu.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
