"""A copy of a finished class-map store with a stored evaluation against generated truth."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import zarr
from PIL import Image

import batchseg
from batchseg.store.evaluations import write_evaluation


def evaluated_copy(source: Path, tmp_path: Path, *, skip: str = "") -> tuple[Path, Path]:
    """``source`` copied, and a truth folder of 0/255 PNGs (the inverse of each stored class
    map: class 0 where the prediction says 1), recorded as evaluation ``gt`` with a
    ``value,class`` map (0 -> background, 255 -> foreground) that plain class indices would
    not match; ``skip`` is an image left without truth. Returns (store, truth folder)."""
    copy = tmp_path / "evaluated.zarr"
    shutil.copytree(source, copy)
    view = batchseg.open(str(copy))
    done = view.table(["status"])
    ids = [str(i) for i, s in zip(done["image_id"], done["status"], strict=True) if s == "done"]
    truth = tmp_path / "truth"
    for image_id in ids:
        if image_id == skip:
            continue
        target = (truth / image_id).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        inverse = np.where(view.mask(image_id) == 0, 255, 0).astype(np.uint8)
        Image.fromarray(inverse).save(target)
    mapping = tmp_path / "truth_classes.csv"
    mapping.write_text("value,class\n0,background\n255,foreground\n")
    result = {
        "truth": str(truth),
        "truth_pattern": None,
        "truth_classes": str(mapping),
        "ignore": [],
        "kind": "classes",
        "created": "2025-01-01T00:00:00+00:00",
        "miou": 0.0,
        "classes": list(view.classes or []),
    }
    root = zarr.open_group(str(copy), mode="r+")
    values = np.zeros((len(ids), 1))
    write_evaluation(root, "gt", ids, ["gt_miou"], values, result)
    return copy, truth
