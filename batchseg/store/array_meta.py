"""What each array's metadata must be, recorded in the store's attributes and compared.

An edited ``zarr.json`` (``"endian": "little"`` turned ``"big"``, another data type, chunk
grid or codec) decodes intact chunks into wrong values without any checksum failing. The store
therefore records, per array, a digest of the metadata that decides how its chunks decode
(data type, chunk grid and key encoding, fill value, codecs, dimension names); shapes are
checked against the plan where they are read. Readers and ``batchseg verify`` compare.
Stores written before this record lack it: ``verify`` records it (the arrays as they are).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import zarr

__all__ = ["META_KEY", "digest", "record"]

META_KEY = "array_meta"
"""Key of the record in the store's batchseg attributes: ``{array path: digest}``."""

_FIELDS = ("data_type", "chunk_grid", "chunk_key_encoding", "fill_value", "codecs")
_SKIPPED = ("scratch", "table", "objects")  # rebuilt or dropped by the job; Parquet parts


def digest(arr: zarr.Array) -> str:
    """16 hex digits of the metadata that decides how ``arr``'s chunks decode."""
    meta = arr.metadata.to_dict()
    picked = {name: meta.get(name) for name in _FIELDS}
    picked["dimension_names"] = meta.get("dimension_names")
    text = json.dumps(picked, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record(root: zarr.Group, known: dict[str, Any] | None = None) -> dict[str, str]:
    """The digest of every array in the store (``known`` entries kept as they are)."""
    out = dict(known or {})
    groups: list[tuple[str, zarr.Group]] = [("", root)]
    while groups:
        prefix, group = groups.pop()
        for name, node in group.members():
            path = f"{prefix}{name}"
            if not prefix and name.startswith(_SKIPPED):
                continue
            if isinstance(node, zarr.Array):
                out.setdefault(path, digest(node))
            else:
                groups.append((f"{path}/", node))
    return out
