"""Where a store lives: local paths and fsspec URLs (``s3://``, ``gs://``, ``file://``...)."""

from __future__ import annotations

import os
import shutil
from typing import Any


def is_url(path: str) -> bool:
    """Whether ``path`` is an fsspec URL (``s3://``, ``gs://``, ``file://``...)."""
    return "://" in path


def normalise_path(path: str) -> str:
    """``file://`` URLs as plain local paths (local stores keep their local behaviour)."""
    if path.startswith("file://"):
        return path[len("file://") :] or "/"
    return path


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path in it (options from the environment)."""
    import fsspec

    fs, inner = fsspec.core.url_to_fs(url)
    return fs, str(inner).rstrip("/")


def path_exists(path: str) -> bool:
    """Whether anything (a file, a folder or an object prefix) is at ``path``."""
    path = normalise_path(path)
    if not is_url(path):
        return os.path.exists(path)
    fs, inner = filesystem(path)
    fs.invalidate_cache(inner)  # another process (or zarr's own filesystem) may have written
    return bool(fs.exists(inner))


def remove(path: str) -> None:
    """Remove the store at ``path`` recursively (a local folder or every object under a prefix).

    For URLs only ``path`` itself and keys under ``path/`` are removed, never siblings that
    merely share the prefix (the lock ``STORE.lock`` sits beside the store).
    """
    path = normalise_path(path)
    if not is_url(path):
        shutil.rmtree(path)
        return
    fs, inner = filesystem(path)
    keys = [k for k in fs.find(inner) if k == inner or k.startswith(inner + "/")]
    if keys:
        fs.rm(keys)
    fs.invalidate_cache(inner)
