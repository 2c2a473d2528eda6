"""Cellpose and Segment Anything: batchseg's execute phase against the bare library loop.

    python -m tests.benchmarks.bench_libraries [--images 12] [--size 128] [--device cpu|cuda]

Models: a seeded random Cellpose 3 network (CPnet, cyto3's shape) and a seeded random SAM
checkpoint (by default the small test encoder; ``--sam-vit-b`` builds a full ViT-B), saved to
files (no download). Images: grey discs on noise (``tests.helpers.library_models``).

* **library**: one process, model loaded before the clock, ``CellposeModel.eval(image, ...)``
  / ``SamAutomaticMaskGenerator.generate(image)`` over the images; images/s.
* **batchseg**: ``batchseg.run`` on the same images (embedded cluster, one worker, one thread
  per worker on the CPU, ``gpus=1`` on CUDA); images/s of the execute phase
  (``runs[-1]["execute_seconds"]``: model load on the worker, inference, painting, statistics,
  objects, Zarr writes). The target: batchseg >= 0.9 of the library's rate.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import batchseg
from tests.helpers.library_jobs import write_images
from tests.helpers.library_models import blob_images, random_cellpose, random_sam


def _cellpose_loop(model_file: str, images: list[np.ndarray], params: dict[str, Any]) -> float:
    from cellpose import models as cp_models

    from batchseg.methods import cellpose as cp
    from batchseg.methods.registry import get_method

    kwargs = cp.eval_kwargs(get_method("cellpose.cyto3").resolve_params(params))
    model = cp_models.CellposeModel(gpu=params["device"] == "cuda", pretrained_model=model_file)
    model.eval(images[0], **kwargs)  # warm-up (numba, cuDNN)
    t0 = time.perf_counter()
    for image in images:
        model.eval(image, **kwargs)
    return len(images) / (time.perf_counter() - t0)


def _sam_loop(checkpoint: str, images: list[np.ndarray], params: dict[str, Any]) -> float:
    import torch
    from segment_anything import SamAutomaticMaskGenerator

    from batchseg.methods import sam_models

    net = sam_models.build_sam(checkpoint)[0].to(params["device"])
    opts = {k: params[k] for k in ("points_per_side", "pred_iou_thresh", "stability_score_thresh")}
    generator = SamAutomaticMaskGenerator(net, **opts)
    rgb = [np.stack([g] * 3, axis=-1) for g in images]
    with torch.inference_mode():
        generator.generate(rgb[0])
        t0 = time.perf_counter()
        for image in rgb:
            generator.generate(image)
    return len(images) / (time.perf_counter() - t0)


def _batchseg(tmp: Path, method: str, params: dict[str, Any], device: str) -> float:
    gpu = {"gpus": 1} if device == "cuda" else {"workers": 1, "threads_per_worker": 1}
    out = tmp / f"{method}.zarr"
    result = batchseg.run(tmp / "in", method=method, output=out, params=params, **gpu)
    assert result.failed == 0
    runs = batchseg.open(str(out)).attrs["runs"]
    return result.images / float(runs[-1]["execute_seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--only", choices=("cellpose", "sam"), default=None)
    args = ap.parse_args()
    images = blob_images(args.images, size=args.size, seed=0)
    report = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        write_images(tmp / "in", images)
        threads = {"threads": 1} if args.device == "cpu" else {}
        if args.only in (None, "cellpose"):
            model = random_cellpose(tmp / "cp_model", seed=0)
            params = {"model": model, "diameter": 30, "cellprob_threshold": -0.5,
                      "flow_threshold": 0.0, "device": args.device, **threads}  # fmt: skip
            if args.device == "cpu":
                import torch

                torch.set_num_threads(1)
            lib = _cellpose_loop(model, images, params)
            ours = _batchseg(tmp, "cellpose.cyto3", params, args.device)
            report["cellpose"] = {"library_ips": lib, "batchseg_ips": ours, "ratio": ours / lib}
        if args.only in (None, "sam"):
            ckpt = random_sam(tmp / "sam.pth", seed=0)
            params = {"checkpoint": ckpt, "points_per_side": 8, "pred_iou_thresh": 0.0,
                      "stability_score_thresh": 0.0, "device": args.device, **threads}  # fmt: skip
            lib = _sam_loop(ckpt, images, params)
            ours = _batchseg(tmp, "sam.automatic", params, args.device)
            report["sam"] = {"library_ips": lib, "batchseg_ips": ours, "ratio": ours / lib}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
