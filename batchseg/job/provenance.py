"""Package versions and host facts recorded in a store's attributes."""

from __future__ import annotations

import functools
import platform
from importlib import metadata
from typing import Any

from batchseg.methods.base import Method

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


def method_record(method: Method, params: dict[str, Any]) -> dict[str, Any]:
    """The method as a store's attributes record it; ``origin`` (package, version, and for a
    function its module, name and source hash) for methods batchseg does not ship."""
    record = {"id": method.id, "kind": method.kind, "family": method.family, "params": params}
    if not method.origin.builtin:
        record["origin"] = method.origin.record()
    return record


def check_workers(client: Any, method: Method, scan: Any = None) -> None:
    """Load ``method`` on one worker before any image (UsageError where it cannot be); the
    header ``scan`` under way is closed when it fails."""
    from batchseg.engine.preflight import check_method

    if method.origin.builtin:
        return
    resources = None
    if method.uses_gpu:
        from batchseg.cluster.connect import gpu_resources

        resources = gpu_resources(client)
    try:
        check_method(client, method, resources)
    except BaseException:
        if scan is not None:
            scan.close()
        raise
