"""Seeded multi-channel z-stacks and time-lapses: TIFF, OME-TIFF and OME-Zarr files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile

from tests.helpers.images import make_image


def make_stack(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: type = np.uint16
) -> np.ndarray:
    """An array of ``shape`` (last two: y, x) whose every plane has bright discs, each plane
    and channel different (so a wrong plane or channel gives other labels and intensities)."""
    *lead, h, w = shape
    planes = [make_image(rng, h, w, colour=False) for _ in range(int(np.prod(lead or [1])))]
    scale = np.arange(1, len(planes) + 1, dtype=np.float64)
    arr = np.stack([p.astype(np.float64) * s for p, s in zip(planes, scale, strict=True)])
    return arr.reshape(shape).astype(dtype)


def write_ome_tiff(path: Path, arr: np.ndarray, axes: str, names: Sequence[str] = ()) -> Path:
    """``arr`` as an OME-TIFF with ``axes`` (and channel ``names``)."""
    meta: dict[str, object] = {"axes": axes}
    if names:
        meta["Channel"] = {"Name": list(names)}
    tifffile.imwrite(path, arr, ome=True, metadata=meta, photometric="minisblack")
    return path


def write_ome_zarr(path: Path, arr: np.ndarray, axes: str, names: Sequence[str] = ()) -> Path:
    """``arr`` as a one-level OME-Zarr 0.5 image (a v3 group) with ``axes`` (lower-case)."""
    import zarr

    root = zarr.open_group(str(path), mode="w")
    root.create_array("0", data=arr, chunks=(1,) * (arr.ndim - 2) + arr.shape[-2:])
    kinds = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
    ome: dict[str, object] = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": [{"name": a, "type": kinds[a]} for a in axes],
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [{"type": "scale", "scale": [1.0] * arr.ndim}],
                    }
                ],
            }
        ],
    }
    if names:
        ome["omero"] = {"channels": [{"label": n} for n in names]}
    root.attrs["ome"] = ome
    return path
