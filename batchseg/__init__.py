"""batchseg: segment whole image collections with Dask into a queryable Zarr v3 store."""

from __future__ import annotations

from importlib import metadata

from batchseg.api import StoreView, open

try:
    __version__ = metadata.version("batchseg")
except metadata.PackageNotFoundError:  # pragma: no cover - source tree without install
    __version__ = "0.0.0"

__all__ = ["StoreView", "__version__", "open"]
