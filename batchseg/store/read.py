"""Reading a store: open it, its attributes, the catalogue, and checked label reads.

Every read of an image's label data checks that its chunks exist (a missing chunk would read
as zeros) and turns a checksum or decoding failure into a :class:`StoreError` naming the image.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
from zarr.core.sync import sync

from batchseg.core.kinds import Kind
from batchseg.core.meta import StoreMeta
from batchseg.core.plan import Bucket, Plan, Shard
from batchseg.errors import StoreError
from batchseg.store.array_meta import META_KEY, problem
from batchseg.store.layout import (
    ATTRS_KEY,
    CATALOGUE,
    CHUNKS_WRITTEN_KEY,
    CLASSES,
    CONFIDENCE,
    DAMAGED,
    DONE,
    EMPTY,
    FAILED,
    KNOWN_STATUS,
    PENDING,
    SCHEMA_VERSION,
    STATS,
    STATUS_NAMES,
    catalogue_node,
    map_node,
    published_rows,
    pyramid_node,
)
from batchseg.store.paths import normalise_path


def array(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` under ``group``; StoreError when that node is a group."""
    node = group[name]
    if not isinstance(node, zarr.Array):
        raise StoreError(f"store node {name!r} is a group, expected an array")
    return node


def read_array(group: zarr.Group, name: str, selection: Any = ..., dtype: Any = None) -> np.ndarray:
    """``selection`` of the array ``name`` as a NumPy array (0-d for a single element)."""
    arr = array(group, name)
    _check_rows_array(group, arr)
    try:
        return np.asarray(arr[selection], dtype=dtype)
    except (ValueError, RuntimeError) as exc:  # checksum or decoding failure
        raise StoreError(f"store array {name!r} is damaged: {_short(exc)}") from None


def subgroup(group: zarr.Group, name: str) -> zarr.Group:
    """The group ``name`` under ``group``; StoreError when that node is an array."""
    node = group[name]
    if not isinstance(node, zarr.Group):
        raise StoreError(f"store node {name!r} is an array, expected a group")
    return node


def open_group(path: str, mode: str = "r") -> zarr.Group:
    """The store's root group; a clear error when ``path`` is not a batchseg store."""
    path = normalise_path(path)
    try:
        root = zarr.open_group(path, mode=mode)  # type: ignore[arg-type]
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise StoreError(f"no store at {path}") from None
    if ATTRS_KEY not in root.attrs:
        raise StoreError(f"{path} is a Zarr group but not a batchseg store")
    version = attributes(root).get("schema_version")
    if version != SCHEMA_VERSION:
        raise StoreError(f"{path} has store schema {version}; this batchseg reads {SCHEMA_VERSION}")
    return root


def attributes(root: zarr.Group) -> dict[str, Any]:
    """The store's batchseg attributes."""
    attrs = root.attrs[ATTRS_KEY]
    if not isinstance(attrs, Mapping):
        raise StoreError(f"malformed store attributes: {ATTRS_KEY!r} is not a mapping")
    return dict(attrs)


def read_meta(root: zarr.Group, path: str | None = None) -> StoreMeta:
    """The store's attributes parsed and checked once (:class:`StoreMeta`)."""
    return StoreMeta.parse(attributes(root), path or str(root.store_path))


def update_attributes(root: zarr.Group, **changes: Any) -> None:
    """Merge ``changes`` into the batchseg attributes (client only)."""
    attrs = attributes(root)
    attrs.update(changes)
    root.attrs[ATTRS_KEY] = attrs


def stat_names(root: zarr.Group) -> list[str]:
    """Names of the ``stats`` columns."""
    columns = array(root, STATS).attrs["columns"]
    if not isinstance(columns, list | tuple):
        raise StoreError("malformed store: stats columns are not a list")
    return [str(c) for c in columns]


def load_plan(root: zarr.Group) -> Plan:
    """Rebuild the stored plan from the catalogue (for resuming)."""
    attrs = attributes(root)
    S = int(attrs["shard_size"])
    buckets = tuple(
        Bucket(
            b["index"], b["height"], b["width"], b["shard_size"], b["n_shards"], b.get("tile", 0)
        )
        for b in attrs["buckets"]
    )
    cat = subgroup(root, CATALOGUE)
    ids = read_array(cat, "image_id", slice(None))
    uris = read_array(cat, "uri", slice(None))
    bucket = read_array(cat, "bucket", slice(None))
    bucket_row = read_array(cat, "bucket_row", slice(None))
    shards = []
    for k in range(int(attrs["n_shards"])):
        sl = slice(k * S, (k + 1) * S)
        used = bucket[sl] >= 0
        n = int(used.sum())
        b = int(bucket[sl][0])
        shards.append(
            Shard(
                index=k,
                bucket=b,
                bucket_shard=int(bucket_row[sl][0]) // buckets[b].shard_size,
                image_ids=tuple(str(x) for x in ids[sl][:n]),
                uris=tuple(str(x) for x in uris[sl][:n]),
            )
        )
    return Plan(S, buckets, tuple(shards))


def normalise_status(status: np.ndarray, real: np.ndarray | None = None) -> np.ndarray:
    """Status codes as readers count them: padding rows EMPTY, unknown codes DAMAGED.

    ``real`` marks table rows that hold an image (``bucket >= 0``); without it every row does.
    A real row whose stored code is not pending, done or failed (an edited or corrupted
    status, EMPTY included) is damage, never counted as done or pending.
    """
    status = np.asarray(status)
    known = np.isin(status, KNOWN_STATUS)
    out = np.where(known, status, DAMAGED).astype(np.int8)
    if real is not None:
        out[~np.asarray(real, dtype=bool)] = EMPTY
    return out


def shard_status(root: zarr.Group) -> np.ndarray:
    """Status per table row of the published plan (rows an unfinished append wrote are not
    seen): padding rows EMPTY, unknown codes DAMAGED."""
    rows = slice(0, published_rows(attributes(root)))
    status = read_array(root, catalogue_node("status"), rows)
    bucket = read_array(root, catalogue_node("bucket"), rows)
    return normalise_status(status, bucket >= 0)


def needs_work(status: np.ndarray, *, retry_failed: bool = False) -> np.ndarray:
    """Rows a run segments: pending and damaged ones (and failed ones with ``retry_failed``)."""
    wanted = (status == PENDING) | (status == DAMAGED)
    if retry_failed:
        wanted |= status == FAILED
    return np.asarray(wanted)


def find_row(root: zarr.Group, image_id: str) -> int:
    """Table row of ``image_id`` in the published plan; StoreError when absent."""
    rows = slice(0, published_rows(attributes(root)))
    ids = read_array(root, catalogue_node("image_id"), rows, dtype=object)
    hits = np.flatnonzero(ids == image_id)
    if hits.size == 0:
        from batchseg.words import did_you_mean

        raise StoreError(f"image {image_id!r} is not in the store{did_you_mean(image_id, ids)}")
    return int(hits[0])


@dataclass(frozen=True)
class ImageInfo:
    """Where one image's results are: its row, status and bucket."""

    image_id: str
    row: int
    status: int  # a stored code; DAMAGED for an unknown one
    error: str
    bucket: dict[str, Any] | None  # the bucket's attributes; None for an unreadable header
    bucket_row: int

    @property
    def tiled(self) -> bool:
        """Whether the image is stored tile by tile (a bucket with ``tile``)."""
        return bool(self.bucket and self.bucket.get("tile"))

    def require_done(self) -> None:
        """StoreError naming the image unless it is done."""
        if self.status == DONE:
            return
        detail = f": {self.error}" if self.error else ""
        raise StoreError(f"image {self.image_id!r} is {STATUS_NAMES[self.status]}{detail}")


def image_info(root: zarr.Group, image_id: str) -> ImageInfo:
    """Catalogue entry of ``image_id``; StoreError when absent."""
    row = find_row(root, image_id)
    cat = subgroup(root, CATALOGUE)
    code = int(read_array(cat, "status", row))
    status = code if code in KNOWN_STATUS else DAMAGED
    error = str(read_array(cat, "error", row, dtype=object).item() or "")
    if status == DAMAGED:
        error = f"unknown status code {code} in the store (run batchseg verify)"
    index = int(read_array(cat, "bucket", row))
    bucket = dict(attributes(root)["buckets"][index]) if index >= 0 else None
    return ImageInfo(image_id, row, status, error, bucket, int(read_array(cat, "bucket_row", row)))


def image_infos(root: zarr.Group) -> list[ImageInfo]:
    """The catalogue entry of every image (padding rows left out), in table order.

    One pass over the catalogue (no per-id scan, unlike :func:`image_info`): for jobs that
    visit many images by id. Images of one bucket share one bucket-attributes dict.
    """
    attrs = attributes(root)
    rows = slice(0, published_rows(attrs))
    cat = subgroup(root, CATALOGUE)
    bucket = read_array(cat, "bucket", rows)
    real = np.flatnonzero(bucket >= 0)
    codes = read_array(cat, "status", rows)
    ids = read_array(cat, "image_id", rows, dtype=object)
    errors = read_array(cat, "error", rows, dtype=object)
    bucket_row = read_array(cat, "bucket_row", rows)
    buckets = [dict(b) for b in attrs["buckets"]]
    out = []
    for r in real:
        code = int(codes[r])
        status = code if code in KNOWN_STATUS else DAMAGED
        error = str(errors[r] or "")
        if status == DAMAGED:
            error = f"unknown status code {code} in the store (run batchseg verify)"
        out.append(
            ImageInfo(
                str(ids[r]), int(r), status, error, buckets[int(bucket[r])], int(bucket_row[r])
            )
        )
    return out


def image_uri(root: zarr.Group, image_id: str) -> str:
    """The source URI of ``image_id``; StoreError when absent."""
    return str(read_array(root, catalogue_node("uri"), find_row(root, image_id)))


# ------------------------------------------------------------------ checked label reads


def chunk_coords(arr: zarr.Array, region: tuple[slice, ...]) -> list[tuple[int, ...]]:
    """Grid coordinates of the stored objects (shards, or chunks) that ``region`` touches."""
    grid = arr.shards or arr.chunks
    ranges = []
    for sl, side, size in zip(region, grid, arr.shape, strict=True):
        start, stop, _ = sl.indices(size)
        ranges.append(range(start // side, -(-stop // side)) if stop > start else range(0))
    return list(itertools.product(*ranges))


def missing_chunks(arr: zarr.Array, coords: Iterable[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """Which of the stored objects at ``coords`` are absent from the store."""
    coords = list(coords)
    if not coords:
        return []
    store_path = arr.store_path
    prefix = f"{store_path.path}/" if store_path.path else ""
    keys = [prefix + arr.metadata.encode_chunk_key(c) for c in coords]

    async def check() -> list[bool]:
        return list(await asyncio.gather(*(store_path.store.exists(k) for k in keys)))

    found = sync(check())
    return [c for c, ok in zip(coords, found, strict=True) if not ok]


def chunks_always_written(root: zarr.Group) -> bool:
    """Whether the store writes all-fill chunks too (then a missing chunk is damage)."""
    return bool(attributes(root).get(CHUNKS_WRITTEN_KEY))


def expect_zero_map(root: zarr.Group, info: ImageInfo) -> bool:
    """Whether the image's statistics say its label map is all zeros (no data needed).

    Stores without :data:`CHUNKS_WRITTEN_KEY` skipped all-zero chunks; only such an image may
    have no stored label chunks. Region maps: ``n_regions == 0``; class maps: every pixel is
    the first class.
    """
    if chunks_always_written(root) or info.bucket is None:
        return False
    row = read_array(root, STATS, (info.row, slice(None)))
    kind = attributes(root).get("method", {}).get("kind")
    if not row.size or not np.isfinite(row[0]):
        return False
    if Kind(kind).class_map:
        return bool(row[0] == int(info.bucket["height"]) * int(info.bucket["width"]))
    return bool(row[0] == 0)


def missing_allowed(root: zarr.Group, info: ImageInfo, *, confidence: bool = False) -> bool:
    """Whether absent label chunks of ``info`` may read as zeros (only in older stores).

    Stores with :data:`CHUNKS_WRITTEN_KEY` store every chunk: absent is always damage. Older
    stores skipped all-zero chunks: a tile of a tiled image may be absent, and an ordinary
    image's map when its statistics say it is all zeros.
    """
    if confidence or chunks_always_written(root):  # (class maps exist only in new stores)
        return False
    return info.tiled or expect_zero_map(root, info)


def read_checked(
    root: zarr.Group,
    arr: zarr.Array,
    selection: tuple[Any, ...],
    info: ImageInfo,
    what: str = "label data",
    *,
    allow_missing: bool | None = None,
) -> np.ndarray:
    """``arr[selection]`` of one image: StoreError naming it when data is missing or damaged.

    ``selection`` is an int or slices per axis. ``allow_missing`` accepts absent chunks (they
    read as the fill value); by default :func:`missing_allowed` decides.
    """
    if allow_missing is None:
        allow_missing = missing_allowed(root, info, confidence=what.startswith("confidence"))
    region = tuple(slice(s, s + 1) if isinstance(s, int | np.integer) else s for s in selection)
    if not allow_missing:
        lost = missing_chunks(arr, chunk_coords(arr, region))
        if lost:
            raise StoreError(
                f"image {info.image_id!r}: {what} missing from the store "
                f"({len(lost)} stored object(s) absent); run batchseg verify to mark it for "
                "re-segmentation"
            )
    try:
        return np.asarray(arr[selection])
    except (ValueError, RuntimeError) as exc:  # crc32c mismatch, undecodable chunk
        raise StoreError(
            f"image {info.image_id!r}: {what} is damaged ({_short(exc)}); run batchseg verify "
            "to mark it for re-segmentation"
        ) from None


def read_labels(
    root: zarr.Group,
    image_id: str,
    *,
    confidence: bool = False,
    level: int = 0,
    classes: bool = False,
) -> np.ndarray:
    """The stored label map (or confidence map, or an instance method's class map) of one
    image, at its original size.

    ``level`` > 0 reads a tiled image's label pyramid (``labels[::2^level, ::2^level]``).
    StoreError when the image is not done, or its data is missing or fails its checksum.
    """
    info = image_info(root, image_id)
    info.require_done()
    assert info.bucket is not None  # a done image has a bucket
    b = info.bucket
    what = "confidence data" if confidence else "class map data" if classes else "label data"
    if confidence and CONFIDENCE not in root:
        raise StoreError("this store has no confidence maps (not a semantic method)")
    if classes and CLASSES not in root:
        raise StoreError("this store has no class maps beside its labels (not an instance method)")
    if level:
        levels = b.get("levels") or []
        if confidence or classes or level not in levels:
            have = ", ".join(map(str, levels)) or "none (not a tiled image)"
            raise StoreError(
                f"image {image_id!r} has no stored label level {level}; levels: {have}"
            )
        arr = recorded_array(root, pyramid_node(b["name"], level))
        return read_checked(root, arr, (0, slice(None), slice(None)), info, what)
    return read_map(root, info, confidence=confidence, classes=classes)


def read_map(
    root: zarr.Group, info: ImageInfo, *, confidence: bool = False, classes: bool = False
) -> np.ndarray:
    """:func:`read_labels` at level 0 for an image whose :class:`ImageInfo` is known (from
    :func:`image_infos`): the label map, or its confidence or class map, checked."""
    info.require_done()
    assert info.bucket is not None  # a done image has a bucket
    what = "confidence data" if confidence else "class map data" if classes else "label data"
    if (confidence and CONFIDENCE not in root) or (classes and CLASSES not in root):
        raise StoreError(f"this store has no {'confidence' if confidence else 'class'} maps")
    arr = recorded_array(
        root, map_node(info.bucket["name"], confidence=confidence, classes=classes)
    )
    row = 0 if info.tiled else info.bucket_row
    return read_checked(root, arr, (row, slice(None), slice(None)), info, what)


def label_array(
    root: zarr.Group, bucket_name: str, *, confidence: bool = False, classes: bool = False
) -> zarr.Array:
    """A bucket's label (or confidence, or class map) array, its metadata checked."""
    return recorded_array(root, map_node(bucket_name, confidence=confidence, classes=classes))


def pyramid_array(root: zarr.Group, bucket_name: str, level: int) -> zarr.Array | None:
    """Level ``level`` of a tiled image's stored label pyramid, None when not stored."""
    node = pyramid_node(bucket_name, level)
    return recorded_array(root, node) if node in root else None


def metadata_problem(root: zarr.Group, arr: zarr.Array) -> str | None:
    """How ``arr``'s metadata differs from the store's record, None when it matches (or the
    store records none for it: older stores, see :mod:`batchseg.store.array_meta`)."""
    known = attributes(root).get(META_KEY)
    return _problem(arr, known.get(arr.path) if isinstance(known, Mapping) else None)


def _problem(arr: zarr.Array, want: Any) -> str | None:
    found = None if want is None else problem(arr, want)
    if found is None:
        return None
    return f"the metadata (zarr.json) of store array {arr.path!r} is not what the store recorded ({found})"


#: Catalogue and statistics arrays compared with the record, per open store object:
#: ``id(store) -> (the record, paths compared)``; an entry goes when its store does.
_COMPARED: dict[int, tuple[Mapping[str, Any], set[str]]] = {}


def _check_rows_array(group: zarr.Group, arr: zarr.Array) -> None:
    """Compare a catalogue or statistics array with the record, once per array per open store
    (a catalogue whose ``zarr.json`` was cut short would read as fewer images)."""
    if arr.path != STATS and not arr.path.startswith(f"{CATALOGUE}/"):
        return
    key = id(arr.store)
    cached = _COMPARED.get(key)
    if cached is None:
        root = group if not group.path else zarr.open_group(store=arr.store, mode="r")
        attrs = root.attrs.get(ATTRS_KEY)
        known = attrs.get(META_KEY) if isinstance(attrs, Mapping) else None
        cached = (known if isinstance(known, Mapping) else {}, set())
        with contextlib.suppress(TypeError):  # a store that cannot be watched: not cached
            weakref.finalize(arr.store, _COMPARED.pop, key, None)
            _COMPARED[key] = cached
    known, compared = cached
    if arr.path in compared:
        return
    found = _problem(arr, known.get(arr.path))
    if found is not None:
        raise StoreError(f"{found}; it would read wrong (batchseg verify lists every such array)")
    compared.add(arr.path)


def recorded_array(root: zarr.Group, node: str) -> zarr.Array:
    """:func:`array` at ``node`` under the root, after :func:`metadata_problem` (StoreError)."""
    arr = array(root, node)
    problem = metadata_problem(root, arr)
    if problem is not None:
        raise StoreError(
            f"{problem}; its chunks would decode wrong (batchseg verify lists every such array)"
        )
    return arr


def _short(exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= 200 else text[:197] + "..."
