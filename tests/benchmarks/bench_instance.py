"""Instance segmentation (Mask R-CNN): ``batchseg run`` end to end vs the bare model, side by side.

    python -m tests.benchmarks.bench_instance --data ../shared/data [--images 40] [--device cpu]

Model: ``torchvision.maskrcnn_resnet50_fpn`` with seeded random weights saved as a state_dict
(no download), run at the images' own size (``min_size=360, max_size=480`` for CamVid's
480x360), ``score_threshold`` 0.05 so that every image has detections to paint and measure.

* **model-only**: ``P`` processes (one per core on the CPU, one on a GPU) with one torch thread
  each; every process decodes its share of CamVid val into tensors and loads the model before
  the clock, then runs ``model(batch)`` under ``torch.inference_mode``; images/s = all images /
  (last end - first start).
* **batchseg**: ``batchseg run`` in a subprocess on the same images (embedded cluster, one
  single-threaded worker per core, or ``--gpus 1``): decode, inference, instance painting,
  class and confidence maps, statistics, the object table and compressed Zarr writes. Reported:
  the whole command's wall time and the execute phase (``runs[-1]["execute_seconds"]``).

``--device cuda`` runs the same comparison on a GPU (the script the GPU check uses).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

METHOD = "torchvision.maskrcnn_resnet50_fpn"
PARAMS = {"min_size": 360, "max_size": 480, "score_threshold": 0.05, "max_detections": 100}


def _weights(path: Path) -> str:
    import torch
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=12)
    torch.save(model.state_dict(), path)
    return str(path)


def _model_only(args: tuple[list[str], str, str, int, Any]) -> tuple[float, float]:
    files, weights, device, batch, barrier = args
    import numpy as np
    import torch
    from PIL import Image
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.set_num_threads(1)
    model = maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=12,
        min_size=PARAMS["min_size"], max_size=PARAMS["max_size"],
        box_score_thresh=PARAMS["score_threshold"],
    )  # fmt: skip
    model.load_state_dict(torch.load(weights, weights_only=True))
    model.eval().to(device)
    tensors = [
        torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1).float() / 255
        for f in files
    ]
    with torch.inference_mode():
        model([t.to(device) for t in tensors[:1]])  # warm-up
        barrier.wait()
        start = time.time()
        for k in range(0, len(tensors), batch):
            out = model([t.to(device) for t in tensors[k : k + batch]])
            for det in out:
                (det["masks"][:, 0] > 0.5).sum()
        if device == "cuda":
            torch.cuda.synchronize()
    return start, time.time()


def compare(files: list[Path], device: str, batch_size: int) -> dict[str, Any]:
    """Model-only vs ``batchseg run`` (execute phase and end to end) on ``files``."""
    procs = 1 if device == "cuda" else 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        weights = _weights(work / "maskrcnn.pth")
        folder = work / "images"
        folder.mkdir()
        for f in files:
            (folder / f.name).symlink_to(f.resolve())
        ctx = mp.get_context("spawn")
        barrier = ctx.Manager().Barrier(procs)
        shares = [[str(f) for f in files[r::procs]] for r in range(procs)]
        with ctx.Pool(procs) as pool:
            spans = pool.map(
                _model_only, [(s, weights, device, batch_size, barrier) for s in shares]
            )
        model_rate = len(files) / (max(e for _, e in spans) - min(s for s, _ in spans))
        out = work / "inst.zarr"
        cmd = [
            str(Path(sys.executable).with_name("batchseg")), "run", str(folder), "-m", METHOD,
            "-o", str(out), "--weights", weights, "--device", device,
            "--batch-size", str(batch_size),
            *(["--gpus", "1"] if device == "cuda" else ["--workers", str(procs)]),
            *[a for k, v in PARAMS.items() for a in ("-p", f"{k}={v}")],
        ]  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        import batchseg

        view = batchseg.open(str(out))
        execute = view.attrs["runs"][-1]["execute_seconds"]
        n_objects = len(view.objects(columns=["label"]))
    return {
        "model": METHOD,
        "images": len(files),
        "device": device,
        "processes": procs,
        "model_only_images_per_s": round(model_rate, 3),
        "batchseg_execute_images_per_s": round(len(files) / execute, 3),
        "batchseg_end_to_end_images_per_s": round(len(files) / wall, 3),
        "execute_over_model_only": round(len(files) / execute / model_rate, 3),
        "objects": n_objects,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=2)
    args = parser.parse_args()
    files = sorted((args.data / "camvid/val").glob("*.png"))[: args.images]
    print(json.dumps(compare(files, args.device, args.batch_size), indent=2))


if __name__ == "__main__":
    main()
