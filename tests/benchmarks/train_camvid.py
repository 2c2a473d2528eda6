"""Train a small semantic model on CamVid train, from scratch, on the CPU (for the README's
Evaluation table).

    nice -n 19 .venv/bin/python -m tests.benchmarks.train_camvid --data ../shared/data \\
        --minutes 15 --out /tmp/camvid/lraspp_camvid.pth

Model: ``torchvision.models.segmentation.lraspp_mobilenet_v3_large(weights=None,
weights_backbone=None, num_classes=11)``: random initialisation, no pretrained weights (none can
be downloaded offline). Data: ``DATA/camvid/train`` + ``trainannot`` (367 images, 480x360, label
values 0..10 and 11 = void, ignored by the loss).

Preprocessing is what ``batchseg run -m torchvision.lraspp_mobilenet_v3_large --weights FILE
--resize 180,240`` applies to a state_dict: the uint8 RGB image is resized to 180x240 (H x W) with
``torchvision.transforms.functional.resize`` (bilinear, antialias), scaled to [0, 1] and
normalised with the ImageNet mean and std (``batchseg.methods.models.IMAGENET_MEAN/STD``). Label
maps are resized with nearest neighbour. Each training sample is that half-resolution image,
randomly rescaled (``--scale``), randomly cropped (``--crop``, padded with void where the scaled
image is smaller) and randomly flipped left-right.

Loss: cross-entropy with ``ignore_index=11``, class weights ``(median f / f_c) ** 0.5`` from the
training pixel frequencies (``--no-class-weights`` for plain cross-entropy). Optimiser: AdamW with
a linear warm-up and a polynomial (power 0.9) decay driven by *elapsed wall time* over the
``--minutes`` budget, so the schedule ends when the budget does. Seeded; ``torch.set_num_threads``
(``--threads``, default 1: on the shared 2-core machine, niced, one training step of 8 crops took
1.1-1.4 s with 1 thread and 4-14 s with 2, whose threads wait on each other when one is
descheduled).

Writes the state_dict to ``--out`` and the 11 class names (one per line) to ``--classes-out``
(default: ``classes.txt`` beside ``--out``). Prints the loss per epoch with timestamps.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

IGNORE = 11
NUM_CLASSES = 11


def _stamp(t0: float) -> str:
    return f"[{time.strftime('%H:%M:%S')} +{time.monotonic() - t0:7.1f}s]"


def read_class_names(camvid: Path) -> list[str]:
    with open(camvid / "classes.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    names = [row["name"] for row in sorted(rows, key=lambda r: int(r["id"])) if int(row["id"]) < 11]
    if len(names) != NUM_CLASSES:
        raise SystemExit(f"expected {NUM_CLASSES} classes in classes.csv, got {len(names)}")
    return names


def load_split(camvid: Path, split: str, size: tuple[int, int]) -> tuple[object, object]:
    """(images uint8 N x 3 x H x W, labels uint8 N x H x W) at ``size`` (H, W)."""
    import torch
    from PIL import Image
    from torchvision.transforms.functional import InterpolationMode, resize

    names = sorted(p.name for p in (camvid / split).glob("*.png"))
    images, labels = [], []
    for name in names:
        rgb = np.array(Image.open(camvid / split / name).convert("RGB"))
        lab = np.array(Image.open(camvid / f"{split}annot" / name))
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0).contiguous()
        y = torch.from_numpy(np.ascontiguousarray(lab)).unsqueeze(0).unsqueeze(0)
        if tuple(x.shape[-2:]) != tuple(size):
            # the same call batchseg's SemanticRunner makes for --resize H,W
            x = resize(x, list(size), interpolation=InterpolationMode.BILINEAR, antialias=True)
            y = resize(y, list(size), interpolation=InterpolationMode.NEAREST)
        images.append(x[0])
        labels.append(y[0, 0])
    return torch.stack(images), torch.stack(labels)


def class_weights(labels: object, power: float) -> object:
    import torch

    counts = torch.bincount(labels.flatten().long(), minlength=NUM_CLASSES + 1)[:NUM_CLASSES]
    freq = counts.double() / counts.sum()
    w = (freq.median() / freq.clamp_min(1e-12)) ** power
    return w.float()


def make_batch(
    images: object,
    labels: object,
    idx: list[int],
    crop: tuple[int, int],
    scale: tuple[float, float],
    rng: random.Random,
    mean: object,
    std: object,
) -> tuple[object, object]:
    """Augmented, normalised float batch N x 3 x ch x cw and int64 targets N x ch x cw."""
    import torch
    import torch.nn.functional as F

    ch, cw = crop
    xs = torch.zeros(len(idx), 3, ch, cw)
    ys = torch.full((len(idx), ch, cw), IGNORE, dtype=torch.int64)
    for k, i in enumerate(idx):
        x = images[i].float().div_(255.0).sub_(mean).div_(std)  # 3 x H x W
        y = labels[i]
        s = rng.uniform(*scale)
        h, w = int(round(x.shape[1] * s)), int(round(x.shape[2] * s))
        if (h, w) != tuple(x.shape[1:]):
            x = F.interpolate(x[None], size=(h, w), mode="bilinear", align_corners=False)[0]
            y = F.interpolate(y[None, None].float(), size=(h, w), mode="nearest")[0, 0].byte()
        top = rng.randint(0, max(h - ch, 0))
        left = rng.randint(0, max(w - cw, 0))
        x = x[:, top : top + ch, left : left + cw]
        y = y[top : top + ch, left : left + cw]
        if rng.random() < 0.5:
            x = x.flip(-1)
            y = y.flip(-1)
        xs[k, :, : x.shape[1], : x.shape[2]] = x
        ys[k, : y.shape[0], : y.shape[1]] = y.long()
    return xs, ys


def lr_at(frac: float, base: float, warmup: float) -> float:
    if frac < warmup:
        return base * max(frac / warmup, 0.02)
    return base * max(1.0 - frac, 0.0) ** 0.9


def parse_hw(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().replace("x", ",").split(","))
    return h, w


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data", help="folder holding camvid/")
    ap.add_argument("--minutes", type=float, default=15.0, help="training wall-clock budget")
    ap.add_argument("--out", required=True, help="state_dict file to write (.pth)")
    ap.add_argument("--classes-out", default="", help="class names file (default: beside --out)")
    ap.add_argument("--size", default="180,240", help="H,W the images are resized to")
    ap.add_argument("--crop", default="176,224", help="H,W of the random training crops")
    ap.add_argument("--scale", default="0.75,1.5", help="random rescale range of the image")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--warmup", type=float, default=0.03, help="warm-up share of the budget")
    ap.add_argument("--weight-power", type=float, default=0.5, help="class weight exponent")
    ap.add_argument("--no-class-weights", action="store_true")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: see the module docstring)"
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    from batchseg.methods.models import IMAGENET_MEAN, IMAGENET_STD

    t0 = time.monotonic()
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    camvid = Path(args.data) / "camvid"
    names = read_class_names(camvid)
    size, crop = parse_hw(args.size), parse_hw(args.crop)
    lo, hi = (float(v) for v in args.scale.split(","))
    images, labels = load_split(camvid, "train", size)
    n = int(images.shape[0])
    print(f"{_stamp(t0)} loaded {n} train images at {size[0]}x{size[1]}", flush=True)

    weight = None
    if not args.no_class_weights:
        weight = class_weights(labels, args.weight_power)
        print(f"{_stamp(t0)} class weights: {[round(float(v), 3) for v in weight]}", flush=True)
    criterion = torch.nn.CrossEntropyLoss(weight=weight, ignore_index=IGNORE)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    model = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=NUM_CLASSES)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)

    budget = args.minutes * 60.0
    start = time.monotonic()
    epoch = steps = 0
    done = False
    while not done:
        epoch += 1
        order = list(range(n))
        rng.shuffle(order)
        total = count = 0.0
        for b in range(0, n - args.batch_size + 1, args.batch_size):
            frac = (time.monotonic() - start) / budget
            if frac >= 1.0:
                done = True
                break
            lr = lr_at(frac, args.lr, args.warmup)
            for group in opt.param_groups:
                group["lr"] = lr
            x, y = make_batch(
                images, labels, order[b : b + args.batch_size], crop, (lo, hi), rng, mean, std
            )
            out = model(x)["out"]
            loss = criterion(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            total += float(loss.detach()) * len(x)
            count += len(x)
        if count:
            print(
                f"{_stamp(t0)} epoch {epoch:3d} loss {total / count:.4f} lr {lr:.2e} "
                f"steps {steps}{' (partial)' if done else ''}",
                flush=True,
            )
        if not math.isfinite(total):
            print("loss is not finite; stopping", file=sys.stderr)
            return 1

    train_s = time.monotonic() - start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    torch.save(model.state_dict(), out)
    classes_out = Path(args.classes_out) if args.classes_out else out.parent / "classes.txt"
    classes_out.write_text("\n".join(names) + "\n", encoding="utf-8")
    info = {
        "model": "lraspp_mobilenet_v3_large",
        "pretrained": False,
        "train_images": n,
        "size_hw": size,
        "crop_hw": crop,
        "scale": [lo, hi],
        "batch_size": args.batch_size,
        "lr": args.lr,
        "class_weights": None if weight is None else [float(v) for v in weight],
        "epochs": epoch,
        "last_epoch_partial": done,
        "steps": steps,
        "train_seconds": round(train_s, 1),
        "threads": args.threads,
        "seed": args.seed,
    }
    print(f"{_stamp(t0)} saved {out} and {classes_out}", flush=True)
    print(json.dumps(info), flush=True)
    with open(os.fspath(out) + ".json", "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
