"""batchseg: segment whole image collections with Dask into a queryable Zarr v3 store."""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchseg.api import StoreView, open


def __getattr__(name: str) -> Any:
    """``open`` and ``StoreView`` on first use: importing the package (and so starting the
    CLI) does not import zarr and pandas."""
    if name in ("open", "StoreView"):
        from batchseg import api

        return getattr(api, name)
    raise AttributeError(f"module 'batchseg' has no attribute {name!r}")


try:
    __version__ = metadata.version("batchseg")
except metadata.PackageNotFoundError:  # pragma: no cover - source tree without install
    __version__ = "0.0.0"

__all__ = ["StoreView", "__version__", "open"]
