"""The one rule for replacing output (``--overwrite``): only what batchseg recognisably wrote.

A path may be replaced when nothing is there, when it is an empty folder, or when it is a
batchseg store (or, for ``export``, a batchseg OME-Zarr export), recognised by the attributes
in its root ``zarr.json``. Never a file, a symbolic link, a non-empty folder that is not one,
the working directory or one of its ancestors, an input or an ancestor of an input. On an
object store only a prefix whose ``zarr.json`` holds those attributes (or an empty prefix).
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from batchseg.errors import UsageError
from batchseg.store.paths import filesystem, is_url, normalise_path

Kind = Literal["store", "export"]
_WHAT: dict[str, str] = {"store": "a batchseg store", "export": "a batchseg OME-Zarr export"}
_MAX_ATTRS_BYTES = 64 << 20  # a root zarr.json is small; do not read a huge one


def check_replaceable(
    path: str, *, inputs: Sequence[str] = (), kind: Kind = "store", flag: str = "--overwrite"
) -> None:
    """Return if ``path`` may be replaced by a new ``kind``, else raise a one-line UsageError.

    ``inputs`` are the paths (folders, files, globs) the command reads: the output may be
    neither one of them nor an ancestor of one.
    """
    path = normalise_path(path)
    if is_url(path):
        _check_url(path, kind, flag)
    else:
        _check_local(path, inputs, kind, flag)


def recognised(attrs: Mapping[str, Any], kind: Kind = "store") -> bool:
    """Whether root attributes ``attrs`` are those of a batchseg ``kind``."""
    from batchseg.store import ATTRS_KEY, CREATING_KEY

    if kind == "export":
        return "ome" in attrs and ATTRS_KEY in attrs
    return CREATING_KEY in attrs or (ATTRS_KEY in attrs and "ome" not in attrs)


def is_store_folder(path: str) -> bool:
    """Whether local folder ``path`` holds a batchseg store (its root ``zarr.json`` says so,
    also while the store is being created)."""
    attrs = _local_attributes(os.path.join(path, "zarr.json"))
    return attrs is not None and recognised(attrs, "store")


def _refuse(path: str, why: str, flag: str) -> UsageError:
    return UsageError(f"{flag} refuses to replace {path}: {why}")


def _contains(folder: str, path: str) -> bool:
    """Whether real path ``folder`` is ``path`` or one of its ancestors."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _fixed_part(pattern: str) -> str:
    """The leading components of a glob pattern that hold no wildcard."""
    parts = pattern.split(os.sep)
    for i, part in enumerate(parts):
        if glob.has_magic(part):
            return os.sep.join(parts[:i]) or (os.sep if pattern.startswith(os.sep) else ".")
    return pattern


def _check_local(path: str, inputs: Sequence[str], kind: Kind, flag: str) -> None:
    if not os.path.lexists(path):
        return
    if os.path.islink(path):
        raise _refuse(path, "it is a symbolic link (give the path it points to)", flag)
    real = os.path.realpath(path)
    if _contains(real, os.path.realpath(os.getcwd())):
        raise _refuse(path, "it is the working directory or one of its ancestors", flag)
    for item in inputs:
        item = normalise_path(item)
        if not item or is_url(item):
            continue
        if _contains(real, os.path.realpath(_fixed_part(item))):
            raise _refuse(path, f"it is the input {item} or one of its ancestors", flag)
    if not os.path.isdir(real):
        raise _refuse(path, f"it is a file, not {_WHAT[kind]}", flag)
    with os.scandir(real) as entries:
        if next(entries, None) is None:
            return  # an empty folder
    attrs = _local_attributes(os.path.join(real, "zarr.json"))
    if attrs is None or not recognised(attrs, kind):
        raise _refuse(path, f"it is a non-empty folder but not {_WHAT[kind]}", flag)


def _local_attributes(zarr_json: str) -> Mapping[str, Any] | None:
    try:
        if os.path.getsize(zarr_json) > _MAX_ATTRS_BYTES:
            return None
        with open(zarr_json, "rb") as fh:
            return _attributes(fh.read())
    except OSError:
        return None


def _attributes(raw: bytes) -> Mapping[str, Any] | None:
    """The attributes of a Zarr v3 group's ``zarr.json`` content; None for anything else."""
    try:
        meta = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(meta, dict) or meta.get("node_type") != "group":
        return None
    attrs = meta.get("attributes")
    return attrs if isinstance(attrs, dict) else None


def _check_url(url: str, kind: Kind, flag: str) -> None:
    fs, inner = filesystem(url)
    fs.invalidate_cache(inner)
    try:
        raw = fs.cat_file(inner + "/zarr.json")
    except (OSError, ValueError):
        raw = None
    if raw is not None:
        attrs = _attributes(raw) if len(raw) <= _MAX_ATTRS_BYTES else None
        if attrs is not None and recognised(attrs, kind):
            return
        raise _refuse(url, f"its zarr.json is not that of {_WHAT[kind]}", flag)
    try:
        keys = [k for k in fs.find(inner) if k == inner or k.startswith(inner + "/")]
    except (OSError, ValueError):
        keys = []
    if keys:
        raise _refuse(url, f"the prefix holds objects but not {_WHAT[kind]}", flag)
