"""A job's identity: inputs, method, parameters and tiling (resume refuses another job's store)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from batchseg.core.refcolumns import RefColumns, string_buffer
from batchseg.io.sources import ImageRef
from batchseg.job.spec import JobSpec
from batchseg.methods.base import Method
from batchseg.methods.origin import describe_change
from batchseg.words import plural

#: Images joined into one buffer at a time when a fingerprint reads columns.
PAIR_BATCH = 1 << 16


def file_identity(value: Any) -> Any:
    """A parameter naming a file (checkpoint, model, classes) is identified by its content."""
    if isinstance(value, str) and value and os.path.isfile(value):
        digest = hashlib.sha256()
        with open(value, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return {"file": value, "sha256": digest.hexdigest()}
    return value


def fingerprint(
    refs: Sequence[ImageRef],
    method: Method,
    params: dict[str, Any],
    tiling: tuple[int, int] | None = None,
    objects: bool | None = None,
    stacks: dict[str, Any] | None = None,
) -> str:
    """Identity of a job's inputs, method, parameters, tiling, object tables and stack options
    (``--planes``, ``--channels``...: resume refuses another). ``objects`` counts only where it
    differs from the method's default and ``stacks`` only where given, so stores written before
    they existed keep their identity."""
    if isinstance(refs, RefColumns):
        return fingerprint_pairs(column_pairs(refs), method, params, tiling, objects, stacks)
    pairs = ((ref.image_id, ref.uri) for ref in refs)
    return fingerprint_pairs(pairs, method, params, tiling, objects, stacks)


def column_pairs(refs: RefColumns) -> Iterator[bytes]:
    """The bytes :func:`fingerprint_pairs` hashes for ``refs`` (id NUL uri NUL per image), a
    batch of images at a time: the same digest as hashing the images one by one."""
    import pyarrow.compute as pc

    for start in range(0, len(refs), PAIR_BATCH):
        stop = min(len(refs), start + PAIR_BATCH)
        ids, uris = refs.ids[start:stop], refs.uri_array(start, stop)
        yield bytes(string_buffer(pc.binary_join_element_wise(ids, uris, "", "\0")))


def fingerprint_pairs(
    images: Iterable[tuple[str, str] | bytes],
    method: Method,
    params: dict[str, Any],
    tiling: tuple[int, int] | None = None,
    objects: bool | None = None,
    stacks: dict[str, Any] | None = None,
) -> str:
    """:func:`fingerprint` of ``(image_id, uri)`` pairs given in image id order (the order of
    :func:`~batchseg.io.sources.discover`), e.g. the rows a store holds."""
    h = hashlib.sha256()
    identity = {k: file_identity(v) for k, v in params.items() if k not in method.runtime_params}
    job: dict[str, Any] = {"method": method.id, "params": identity}
    code = method.origin.identity()  # a function: its module, name, version and source hash
    if code is not None:
        job["code"] = code
    if tiling is not None:
        job["tiling"] = list(tiling)
    if objects is not None and objects != method.objects_default:
        job["objects"] = objects
    if stacks:
        job["stacks"] = stacks
    h.update(json.dumps(job, sort_keys=True, default=str).encode())
    for item in images:
        if isinstance(item, bytes):  # a batch of images already joined (column_pairs)
            h.update(item)
            continue
        image_id, uri = item
        h.update(image_id.encode("utf-8", "surrogateescape") + b"\0")
        h.update(uri.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()


def tiling_identity(spec: JobSpec) -> tuple[int, int] | None:
    """Tiling settings for the fingerprint; None for the defaults, so stores written before
    tiling existed (whose plans hold no tiled images) still resume."""
    from batchseg.core.plan import DEFAULT_TILE_SIZE, DEFAULT_TILE_THRESHOLD

    settings = (spec.tile_threshold, spec.tile_size)
    return None if settings == (DEFAULT_TILE_THRESHOLD, DEFAULT_TILE_SIZE) else settings


def _shown(value: Any) -> str:
    """A parameter value as a refusal quotes it (short)."""
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def describe_difference(
    attrs: dict[str, Any],
    stored_images: list[tuple[str, str]],
    refs: Sequence[ImageRef],
    method: Method,
    params: dict[str, Any],
    tiling: tuple[int, int] | None,
    objects: bool = False,
    stacks: dict[str, Any] | None = None,
) -> str:
    """What differs between a stored job (its attributes and ``(image_id, uri)`` rows) and a new
    one, in a few words: the method, each changed parameter (old -> new), images added, removed
    or moved, the tiling. The fingerprint alone cannot say it."""
    parts: list[str] = []
    files: list[str] = []  # named only when nothing else differs
    stored_method = attrs.get("method") or {}
    old_id = stored_method.get("id")
    if old_id != method.id:
        parts.append(f"method {old_id} -> {method.id}")
    else:
        code = method.origin.identity()
        old_code = stored_method.get("origin")
        if code is not None and old_code != code:
            parts.append(f"function {method.id} changed ({describe_change(old_code or {}, code)})")
        old_params = stored_method.get("params") or {}
        skip = set(method.runtime_params)
        for key in sorted((set(old_params) | set(params)) - skip):
            old, new = old_params.get(key), params.get(key)
            same = json.dumps(old, sort_keys=True, default=str) == json.dumps(
                new, sort_keys=True, default=str
            )
            if not same:
                parts.append(f"{key} {_shown(old)} -> {_shown(new)}")
            elif isinstance(new, str) and os.path.isfile(new):
                files.append(f"the content of {key} {new!r} may have changed")
    old_ids = {i: u for i, u in stored_images}
    new_ids = {r.image_id: r.uri for r in refs}
    added = sum(1 for i in new_ids if i not in old_ids)
    removed = sum(1 for i in old_ids if i not in new_ids)
    moved = sum(1 for i, u in new_ids.items() if i in old_ids and old_ids[i] != u)
    for n, what in ((added, "added"), (removed, "removed"), (moved, "at another path")):
        if n:
            parts.append(f"{plural(n, 'image')} {what}")
    job = attrs.get("job") or {}
    from batchseg.core.plan import DEFAULT_TILE_SIZE, DEFAULT_TILE_THRESHOLD

    old_tiling = (job.get("tile_threshold"), job.get("tile_size"))
    new_tiling = (
        tuple(tiling) if tiling is not None else (DEFAULT_TILE_THRESHOLD, DEFAULT_TILE_SIZE)
    )
    if None not in old_tiling and new_tiling != old_tiling:
        parts.append(
            f"tile threshold, size {old_tiling[0]}, {old_tiling[1]} -> "
            f"{new_tiling[0]}, {new_tiling[1]}"
        )
    from batchseg.job.spec import STACK_KEYS

    for key in STACK_KEYS:
        old_value, new_value = job.get(key), (stacks or {}).get(key)
        if old_value != new_value:
            parts.append(f"{key} {_shown(old_value)} -> {_shown(new_value)}")
    old_objects = bool(attrs.get("objects", False))
    if old_objects != objects and old_id == method.id:
        parts.append(f"object tables {_on(old_objects)} -> {_on(objects)}")
    parts = parts or files
    return "; ".join(parts) if parts else "different inputs, method, parameters or tiling"
