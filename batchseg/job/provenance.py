"""Package versions and host facts recorded in a store's attributes."""

from __future__ import annotations

import functools
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
    return dict(_versions())


@functools.lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    """Read once per process (about 0.1 s of package metadata parsing)."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
