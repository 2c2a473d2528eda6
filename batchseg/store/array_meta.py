"""What each array's metadata must be, recorded in the store's attributes and compared.

An edited ``zarr.json`` (``"endian": "little"`` turned ``"big"``, another data type, chunk
grid or codec) decodes intact chunks into wrong values without any checksum failing. The store
therefore records, per array, a digest of the metadata that decides how its chunks decode
(data type, chunk grid and key encoding, fill value, codecs, dimension names) and its shape
(``digest/65536x3``). Arrays only grow (appends add rows): a first dimension smaller than the
record's (a catalogue cut short reads as fewer images) or another trailing dimension is a
problem. Label reads, catalogue and statistics reads (once per array per open store) and
``batchseg verify`` compare. Stores written before this record lack it, and records written
before shapes were recorded lack the shape: they read as before, and ``verify`` records what
is missing (the arrays as they are).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import zarr

__all__ = ["META_KEY", "digest", "entry", "problem", "record"]

META_KEY = "array_meta"
"""Key of the record in the store's batchseg attributes: ``{array path: digest/shape}``."""

_FIELDS = ("data_type", "chunk_grid", "chunk_key_encoding", "fill_value", "codecs")
_SKIPPED = ("scratch", "table", "objects")  # rebuilt or dropped by the job; Parquet parts


def digest(arr: zarr.Array) -> str:
    """16 hex digits of the metadata that decides how ``arr``'s chunks decode."""
    meta = arr.metadata.to_dict()
    picked = {name: meta.get(name) for name in _FIELDS}
    picked["dimension_names"] = meta.get("dimension_names")
    text = json.dumps(picked, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def entry(arr: zarr.Array) -> str:
    """What the record holds for ``arr``: its :func:`digest` and shape (``digest/65536x3``)."""
    return f"{digest(arr)}/{'x'.join(str(n) for n in arr.shape)}"


def problem(arr: zarr.Array, want: str) -> str | None:
    """How ``arr`` differs from its record entry ``want`` (None when it matches)."""
    recorded, _, shape_text = str(want).partition("/")
    if digest(arr) != recorded:
        kind = arr.metadata.to_dict().get("data_type")
        return f"data type {kind}, chunking or codecs edited"
    if not shape_text:  # recorded before shapes were
        return None
    try:
        shape = tuple(int(n) for n in shape_text.split("x"))
    except ValueError:
        return f"its record {want!r} is malformed"
    have = tuple(arr.shape)
    if len(have) != len(shape) or have[1:] != shape[1:] or (have and have[0] < shape[0]):
        return f"shape {have} where the store recorded {shape}"
    return None


def record(root: zarr.Group, known: dict[str, Any] | None = None) -> dict[str, str]:
    """The entry of every array in the store. A ``known`` entry the array still matches is
    brought up to date (an append grew the array; a shape added to an older record); one it
    does not match is kept as it is, so readers and ``verify`` go on refusing the array."""
    out = dict(known or {})
    groups: list[tuple[str, zarr.Group]] = [("", root)]
    while groups:
        prefix, group = groups.pop()
        for name, node in group.members():
            path = f"{prefix}{name}"
            if not prefix and name.startswith(_SKIPPED):
                continue
            if isinstance(node, zarr.Array):
                if path not in out or problem(node, out[path]) is None:
                    out[path] = entry(node)
            else:
                groups.append((f"{path}/", node))
    return out
