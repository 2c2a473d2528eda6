"""The store's layout: node names, status codes, codecs, and creating a new store.

Only :mod:`batchseg.store` spells node paths; other packages use the functions here and in
:mod:`batchseg.store.read`, :mod:`batchseg.store.write` and :mod:`batchseg.store.table`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

from batchseg.core.faults import fault
from batchseg.core.meta import SCHEMA_VERSION
from batchseg.core.plan import Bucket, Plan
from batchseg.errors import StoreError
from batchseg.store.array_meta import META_KEY, record
from batchseg.store.catalogue import COLUMN_DTYPES, catalogue_blocks, header_failures
from batchseg.store.objects import OBJECTS
from batchseg.store.paths import normalise_path, path_exists, remove

ATTRS_KEY = "batchseg"
CREATING_KEY = "batchseg_creating"
#: Stored status codes; a real row holding anything but PENDING, DONE or FAILED is damaged.
EMPTY, PENDING, DONE, FAILED = 0, 1, 2, 3
#: Read-side code of a damaged row (an unknown stored code); never written to a store.
DAMAGED = 4
STATUS_NAMES = {
    EMPTY: "empty",
    PENDING: "pending",
    DONE: "done",
    FAILED: "failed",
    DAMAGED: "damaged",
}
KNOWN_STATUS = (PENDING, DONE, FAILED)
#: Attribute of stores whose task-written arrays store every chunk, all-fill ones included
#: (so a missing chunk is damage, never "all zeros"). Older stores lack it and keep reading.
CHUNKS_WRITTEN_KEY = "empty_chunks_written"
CATALOGUE_CHUNK = 1 << 16
#: Smallest chunk side of a tiled image's pyramid level.
MIN_LEVEL_CHUNK = 64

CATALOGUE, STATS, LABELS, CONFIDENCE, PYRAMID, SCRATCH, CLASSES = (
    "catalogue",
    "stats",
    "labels",
    "confidence",
    "pyramid",
    "scratch",
    "classes",
)


#: Attributes of the ``objects`` group: what its files are, for readers that do not know batchseg.
OBJECTS_ATTRS = {
    "batchseg_objects": {
        "format": "parquet",
        "parts": "part-*.parquet",
        "rows": "one per object per image (non-zero labels), skimage.measure.regionprops_table",
    }
}


def catalogue_node(name: str) -> str:
    """Path of the per-row catalogue array ``name`` (``status``, ``error``, ``uri``...)."""
    return f"{CATALOGUE}/{name}"


def map_node(bucket_name: str, *, confidence: bool = False, classes: bool = False) -> str:
    """Path of a bucket's label array (or its confidence, or an instance method's class map)."""
    group = CONFIDENCE if confidence else CLASSES if classes else LABELS
    return f"{group}/{bucket_name}"


def pyramid_node(bucket_name: str, level: int) -> str:
    """Path of level ``level`` of a tiled image's label pyramid."""
    return f"{PYRAMID}/{bucket_name}/{int(level)}"


def scratch_node(bucket_name: str) -> str:
    """Path of a tiled image's unstitched local labels."""
    return f"{SCRATCH}/{bucket_name}"


def label_codec(dtype: np.dtype) -> BloscCodec:
    """Compressor for label maps: zstd 5, bit-shuffled for uint8, byte-shuffled for wider.

    Measured on CamVid + BSDS500 (README storage table): byte shuffling made uint16/uint32 region
    labels 2.2x smaller than bit shuffling; for uint8 class maps bit shuffling is as good or better.
    """
    shuffle: Literal["bitshuffle", "shuffle"] = (
        "bitshuffle" if np.dtype(dtype).itemsize == 1 else "shuffle"
    )
    return BloscCodec(cname="zstd", clevel=5, shuffle=shuffle)


def table_codec() -> BloscCodec:
    """Compressor of numeric per-row arrays."""
    return BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")


def label_codecs(dtype: np.dtype) -> tuple[BloscCodec, Crc32cCodec]:
    """Bytes-to-bytes codecs of label maps in new stores: :func:`label_codec`, then a crc32c."""
    return label_codec(dtype), Crc32cCodec()


def table_codecs() -> tuple[BloscCodec, Crc32cCodec]:
    """Bytes-to-bytes codecs of numeric table arrays in new stores: compressor, crc32c."""
    return table_codec(), Crc32cCodec()


def text_codecs() -> tuple[ZstdCodec, Crc32cCodec]:
    """Bytes-to-bytes codecs of string arrays: zarr's default zstd, then a crc32c."""
    return ZstdCodec(level=0, checksum=False), Crc32cCodec()


def exists(path: str) -> bool:
    """Whether a batchseg store is at ``path``."""
    path = normalise_path(path)
    try:
        group = zarr.open_group(path, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError):
        return False
    return ATTRS_KEY in group.attrs


def incomplete_fingerprint(path: str) -> str | None:
    """Fingerprint of a store whose creation was interrupted, None for anything else."""
    path = normalise_path(path)
    try:
        group = zarr.open_group(path, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError):
        return None
    if ATTRS_KEY in group.attrs:
        return None
    marker = group.attrs.get(CREATING_KEY)
    return marker.get("fingerprint") if isinstance(marker, dict) else None


def pyramid_levels(height: int, width: int, tile: int) -> list[int]:
    """Levels 1..L of a tiled image's label pyramid: halve until it fits in one tile."""
    levels: list[int] = []
    level = 1
    while (
        (tile >> level) >= MIN_LEVEL_CHUNK
        and tile % (1 << level) == 0
        and max(height, width) > tile << (level - 1)
    ):
        levels.append(level)
        level += 1
    return levels


def create(
    path: str,
    plan: Plan,
    *,
    meta: Mapping[str, Any],
    header_errors: Mapping[str, str],
    label_dtypes: Sequence[np.dtype],
    stats_columns: Sequence[str],
    confidence: bool,
    overwrite: bool = False,
    objects: bool = False,
    class_map_dtype: np.dtype | None = None,
) -> zarr.Group:
    """Write the catalogue and empty arrays for ``plan``; the store is then all pending.

    ``header_errors`` maps image ids whose header failed to their error (marked failed).
    """
    path = normalise_path(path)
    if overwrite and path_exists(path):
        remove(path)
    try:
        root = zarr.open_group(path, mode="w-")
    except (FileExistsError, zarr.errors.ContainsGroupError, zarr.errors.ContainsArrayError):
        raise StoreError(f"{path} already exists; use --overwrite to replace it") from None
    except OSError as exc:
        raise StoreError(f"cannot create store {path}: {exc.strerror or exc}") from None
    # marks a store being created: a launcher killed before the end leaves it recognisable
    root.attrs[CREATING_KEY] = {"fingerprint": meta.get("fingerprint")}
    _catalogue(root, plan, header_errors)
    fault("creating")
    S = plan.shard_size
    st = root.create_array(
        STATS,
        shape=(plan.n_rows, len(stats_columns)),
        chunks=(S, len(stats_columns)),
        dtype=np.float64,
        fill_value=np.nan,
        compressors=table_codecs(),
    )
    st.attrs["columns"] = list(stats_columns)
    labels = root.create_group(LABELS)
    conf = root.create_group(CONFIDENCE) if confidence else None
    class_maps = root.create_group(CLASSES) if class_map_dtype is not None else None
    if objects:  # a group, so that zarr lists it; its parts are Parquet files, not arrays
        root.create_group(OBJECTS, attributes=OBJECTS_ATTRS)
    for b, dtype in zip(plan.buckets, label_dtypes, strict=True):
        if (b.height, b.width) == (0, 0):
            continue
        bucket_array(labels, b, dtype)
        if conf is not None:
            bucket_array(conf, b, np.dtype(np.uint8))
        if class_maps is not None and class_map_dtype is not None:
            bucket_array(class_maps, b, class_map_dtype)
        if b.tile:
            pyramid_arrays(root.require_group(PYRAMID).create_group(b.name), b, dtype)
    attrs = dict(meta)
    attrs.update(
        store_id=uuid.uuid4().hex,
        schema_version=SCHEMA_VERSION,
        shard_size=S,
        stats_columns=list(stats_columns),
        buckets=[bucket_attrs(b, dt) for b, dt in zip(plan.buckets, label_dtypes, strict=True)],
        n_images=plan.n_images,
        n_shards=len(plan.shards),
        runs=[],
        **{CHUNKS_WRITTEN_KEY: True},
    )
    attrs[META_KEY] = record(root)  # what every array's zarr.json must say
    root.attrs.put({ATTRS_KEY: attrs})  # replaces the creating marker in one atomic write
    return root


def published_rows(attrs: Mapping[str, Any]) -> int:
    """Table rows readers may see: those of the published plan (``n_shards`` whole shards).

    A store being grown (``run --append``) has longer per-row arrays until its new plan is
    published by one attribute write; rows past this count are not part of the store yet.
    """
    return int(attrs["n_shards"]) * int(attrs["shard_size"])


def bucket_attrs(b: Bucket, dtype: np.dtype) -> dict[str, Any]:
    """The attributes of one bucket (``attrs["buckets"][i]``)."""
    out: dict[str, Any] = {
        "index": b.index,
        "name": b.name,
        "height": b.height,
        "width": b.width,
        "shard_size": b.shard_size,
        "n_shards": b.n_shards,
        "dtype": str(dtype),
    }
    if b.tile:
        out.update(tile=b.tile, levels=pyramid_levels(b.height, b.width, b.tile))
    return out


def _catalogue(root: zarr.Group, plan: Plan, header_errors: Mapping[str, str]) -> None:
    """The planner's per-row arrays, and the task-written status/error (all pending)."""
    rows, S = plan.n_rows, plan.shard_size
    big = max(1, min(rows, CATALOGUE_CHUNK))
    cat = root.create_group(CATALOGUE)
    arrays = {
        name: cat.create_array(
            name, shape=(rows,), chunks=(big,), dtype=str, fill_value="", compressors=text_codecs()
        )
        for name in ("image_id", "uri")
    }
    for name, dtype in COLUMN_DTYPES.items():
        arrays[name] = cat.create_array(
            name, shape=(rows,), chunks=(big,), dtype=dtype, compressors=table_codecs()
        )
    for start, columns in catalogue_blocks(plan, 0, big):  # a chunk of every column at once
        for name, data in columns.items():
            arrays[name][start : start + data.size] = data
    # task-written arrays: chunk = one shard; unwritten chunks read as pending / no error
    status = cat.create_array(
        "status",
        shape=(rows,),
        chunks=(S,),
        dtype=np.int8,
        fill_value=PENDING,
        compressors=table_codecs(),
    )
    error = cat.create_array(
        "error", shape=(rows,), chunks=(S,), dtype=str, fill_value="", compressors=text_codecs()
    )
    for shard, slots, messages in header_failures(plan, 0, header_errors):
        block = np.full(S, EMPTY, dtype=np.int8)
        block[: shard.length] = PENDING
        text = np.full(S, "", dtype=object)
        block[slots], text[slots] = FAILED, messages
        rows_of = slice(shard.shard * S, (shard.shard + 1) * S)
        error[rows_of] = text
        status[rows_of] = block


def pyramid_arrays(group: zarr.Group, b: Bucket, dtype: np.dtype) -> None:
    """The arrays of a tiled image's label pyramid, one per level, in ``group``."""
    for level in pyramid_levels(b.height, b.width, b.tile):
        f = 1 << level
        group.create_array(
            str(level),
            shape=(1, -(-b.height // f), -(-b.width // f)),
            chunks=(1, b.tile >> level, b.tile >> level),
            dtype=dtype,
            fill_value=0,
            compressors=label_codecs(dtype),
            dimension_names=("image", "y", "x"),
        )


def tiled_array(group: zarr.Group, b: Bucket, dtype: np.dtype, overwrite: bool = False) -> None:
    """The (1, H, W) label array of a tiled image, one chunk per tile."""
    group.create_array(
        b.name,
        shape=(1, b.height, b.width),
        chunks=(1, b.tile, b.tile),
        dtype=dtype,
        fill_value=0,
        compressors=label_codecs(dtype),
        dimension_names=("image", "y", "x"),
        overwrite=overwrite,
    )


def bucket_array(group: zarr.Group, b: Bucket, dtype: np.dtype) -> None:
    """A bucket's label (or confidence) array: one chunk per image, one shard per task."""
    if b.tile:
        tiled_array(group, b, dtype)
        return
    group.create_array(
        b.name,
        shape=(b.rows, b.height, b.width),
        chunks=(1, b.height, b.width),
        shards=(b.shard_size, b.height, b.width),
        dtype=dtype,
        fill_value=0,
        compressors=label_codecs(dtype),
        dimension_names=("image", "y", "x"),
    )
