"""Package versions and host facts recorded in a store's attributes."""

from __future__ import annotations

import platform
from importlib import metadata

_PACKAGES = (
    "batchseg",
    "dask",
    "distributed",
    "zarr",
    "numpy",
    "scipy",
    "scikit-image",
    "scikit-learn",
    "pillow",
    "tifffile",
    "torch",
    "torchvision",
)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape results (absent ones skipped)."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
