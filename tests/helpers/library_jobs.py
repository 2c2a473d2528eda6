"""Run a library method through a real job and compare its store with the library's output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import batchseg
from batchseg.cluster.profiles import AddressProfile
from batchseg.job.run import run_job
from batchseg.job.spec import JobSpec


def write_images(folder: Path, images: list[np.ndarray]) -> list[str]:
    """PNG files ``img_<i>.png`` of ``images``; their image ids."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"img_{i}.png")
        names.append(f"img_{i}.png")
    return names


def run_store(tmp: Path, images: list[np.ndarray], method: str, params: dict[str, Any],
              address: str) -> tuple[Any, list[str]]:  # fmt: skip
    """(store view, image ids) of ``method`` run on ``images`` by the cluster at ``address``."""
    names = write_images(tmp / "in", images)
    spec = JobSpec(input=str(tmp / "in"), method=method, output=str(tmp / "out.zarr"),
                   params=params, profile=AddressProfile(address))  # fmt: skip
    assert run_job(spec).exit_code == 0
    return batchseg.open(spec.output), names


def agreement(stored: np.ndarray, reference: np.ndarray) -> tuple[int, int, float]:
    """(stored count, reference count, share of instance pixels whose ids agree)."""
    union = (stored > 0) | (reference > 0)
    same = float((stored[union] == reference[union]).mean()) if union.any() else 1.0
    return (
        int(len(np.unique(stored[stored > 0]))),
        int(len(np.unique(reference[reference > 0]))),
        same,
    )
