"""Per-object tables: one row per object per image, as Parquet parts inside the store.

Layout::

    STORE/objects/part-000042.parquet      the objects of task shard 42
    STORE/objects/part-t000001234.parquet  the objects of the tiled image in catalogue row 1234

A worker writes its shard's part before the shard's status, atomically: a local part is
written to a hidden temporary file (``objects/.<name>.<uuid>.tmp``) and renamed; on an object
store the bytes are built in memory and written with one ``put`` of the final name. Readers
see whole parts only (temporary files never match ``part-*.parquet``). A part with no objects
still holds the full schema.

Columns (:func:`object_schema`): ``image_id``, ``label``, ``area``, the centroid, the bounding
box (scikit-image convention: max exclusive), shape descriptors, ``mean_intensity`` and the
colour means (NaN for grey images). Parts may add columns (``class``, ``score``, detector
boxes): the dataset's schema is the parts' unified schema, fixed columns first.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from batchseg.errors import QueryError, StoreError, one_line
from batchseg.query.names import unknown_column
from batchseg.store.paths import filesystem, is_url, normalise_path

if TYPE_CHECKING:  # imported where used: ``import batchseg.store`` stays quick
    import pandas as pd
    import pyarrow.dataset as ds

__all__ = [
    "OBJECTS",
    "ROW_GROUP_ROWS",
    "batches",
    "count",
    "damaged_part",
    "dataset",
    "expects_objects",
    "has_objects",
    "object_schema",
    "objects_frame",
    "part_names",
    "part_words",
    "remove_all",
    "remove_parts",
    "require_dataset",
    "scan",
    "shard_part_name",
    "tiled_part_name",
    "write_part",
]

log = logging.getLogger(__name__)

OBJECTS = "objects"
"""Folder of the object parts inside the store root."""

ROW_GROUP_ROWS = 65_536
"""Rows per Parquet row group: a filtered scan skips groups by their statistics."""

VERIFY_HINT = "run batchseg verify on the store to mark its images for re-segmentation, then rerun"

SCAN_BATCH_ROWS = 65_536
"""Rows per record batch of a scan: a limit stops after the batch that fills it."""

_PART = re.compile(r"part-(\d{6}|t\d{9})\.parquet")
_TEMP = re.compile(r"\.part-(\d{6}|t\d{9})\.parquet\.[0-9a-f]{32}\.tmp")
_INT, _FLOAT = pa.int64(), pa.float64()
_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("image_id", pa.string()),
    ("label", _INT),
    ("area", _INT),
    ("centroid_row", _FLOAT),
    ("centroid_col", _FLOAT),
    ("bbox_min_row", _INT),
    ("bbox_min_col", _INT),
    ("bbox_max_row", _INT),
    ("bbox_max_col", _INT),
    ("eccentricity", _FLOAT),
    ("solidity", _FLOAT),
    ("orientation", _FLOAT),
    ("perimeter", _FLOAT),
    ("equivalent_diameter", _FLOAT),
    ("major_axis_length", _FLOAT),
    ("minor_axis_length", _FLOAT),
    ("mean_intensity", _FLOAT),
    ("mean_red", _FLOAT),
    ("mean_green", _FLOAT),
    ("mean_blue", _FLOAT),
)


# ----------------------------------------------------------------------- names, schema


def shard_part_name(index: int) -> str:
    """``part-000042.parquet``: the part of task shard ``index``."""
    if not 0 <= index < 10**6:
        raise ValueError(f"shard index out of range for a part name: {index}")
    return f"part-{index:06d}.parquet"


def tiled_part_name(row: int) -> str:
    """``part-t000001234.parquet``: the part of the tiled image in catalogue row ``row``."""
    if not 0 <= row < 10**9:
        raise ValueError(f"catalogue row out of range for a part name: {row}")
    return f"part-t{row:09d}.parquet"


def object_schema(extra: Mapping[str, pa.DataType] | None = None) -> pa.Schema:
    """The fixed columns, in order, then ``extra`` ones (``class``, ``score``, ...)."""
    fields = [pa.field(name, type_) for name, type_ in _COLUMNS]
    fixed = {name for name, _ in _COLUMNS}
    for name, type_ in (extra or {}).items():
        if name in fixed:
            raise ValueError(f"{name!r} is a fixed object column; it cannot be an extra")
        fields.append(pa.field(name, type_))
    return pa.schema(fields)


def _check_name(name: str) -> str:
    if not _PART.fullmatch(name):
        raise ValueError(
            f"not an object part name: {name!r} (part-NNNNNN.parquet or part-tNNNNNNNNN.parquet)"
        )
    return name


def _ours(name: str) -> bool:
    """Whether ``name`` is a part or a part's temporary file (not zarr.json, say)."""
    return bool(_PART.fullmatch(name) or _TEMP.fullmatch(name))


def _folder(store: str) -> tuple[Any, str]:
    """(fsspec filesystem or None for a local path, the objects folder in it)."""
    store = normalise_path(store)
    if not is_url(store):
        return None, os.path.join(store, OBJECTS)
    fs, inner = filesystem(store)
    return fs, f"{inner}/{OBJECTS}"


def _part_paths(fs: Any, folder: str) -> list[str]:
    """Every part in ``folder``, sorted by name (temporary files never match)."""
    if fs is None:
        try:
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [os.path.join(folder, n) for n in sorted(names) if _PART.fullmatch(n)]
    fs.invalidate_cache(folder)
    if not fs.exists(folder):
        return []
    found = fs.glob(f"{folder}/part-*.parquet")
    return sorted(p for p in found if _PART.fullmatch(p.rsplit("/", 1)[-1]))


# ---------------------------------------------------------------------------- writing


def _as_table(columns: Mapping[str, np.ndarray] | pa.Table) -> pa.Table:
    """``columns`` in the part schema: fixed columns first (missing ones null), then extras."""
    if isinstance(columns, pa.Table):
        data = {name: columns.column(name) for name in columns.column_names}
    else:
        data = dict(columns)
    lengths = {len(v) for v in data.values()}
    if len(lengths) > 1:
        raise ValueError(f"object columns have different lengths: {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    arrays: list[pa.Array | pa.ChunkedArray] = []
    fields: list[pa.Field] = []
    for name, type_ in _COLUMNS:
        value = data.pop(name, None)
        arrays.append(pa.nulls(n, type_) if value is None else _array(name, value, type_))
        fields.append(pa.field(name, type_))
    for name, value in data.items():
        array = _array(name, value, None)
        arrays.append(array)
        fields.append(pa.field(name, array.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _array(name: str, value: Any, type_: pa.DataType | None) -> pa.Array | pa.ChunkedArray:
    try:
        if isinstance(value, pa.Array | pa.ChunkedArray):
            return value if type_ is None or value.type == type_ else value.cast(type_)
        array = np.asarray(value)
        if array.size == 0 and type_ is not None:  # no objects: any dtype will do
            return pa.array([], type_)
        if array.dtype.kind in "OUS" and type_ is None:
            type_ = pa.string()
        return pa.array(array, type=type_)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise ValueError(f"object column {name!r}: {exc}") from None


def write_part(store: str, name: str, columns: Mapping[str, np.ndarray] | pa.Table) -> None:
    """Write the object part ``name`` (see :func:`shard_part_name`) atomically.

    Parameters
    ----------
    store : str
        The store: a local path or an fsspec URL.
    name : str
        ``part-NNNNNN.parquet`` or ``part-tNNNNNNNNN.parquet``.
    columns : mapping of str to array, or pyarrow.Table
        Equal-length columns; fixed columns are cast to their type (missing ones are null),
        others are kept as extras. Zero rows write a part with the full schema.

    Raises
    ------
    StoreError
        The part cannot be written (the previous part, if any, is left as it was).
    """
    import pyarrow.parquet as pq

    _check_name(name)
    table = _as_table(columns)
    fs, folder = _folder(store)
    # page checksums (crc32): verify finds flipped bytes as it does in label chunks
    options = {
        "compression": "zstd",
        "row_group_size": ROW_GROUP_ROWS,
        "write_page_checksum": True,
    }
    try:
        if fs is None:
            _write_local(table, folder, name, options)
        else:
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, **options)
            data = sink.getvalue().to_pybytes()
            fs.makedirs(folder, exist_ok=True)
            with fs.open(f"{folder}/{name}", "wb") as f:  # one put: whole or absent
                f.write(data)
            fs.invalidate_cache(folder)
    except OSError as exc:
        raise StoreError(f"cannot write object part {name} in {store}: {exc}") from exc
    log.debug("wrote object part %s (%d rows)", name, table.num_rows)


def _write_local(table: pa.Table, folder: str, name: str, options: dict[str, Any]) -> None:
    import pyarrow.parquet as pq

    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f, **options)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(folder, name))
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise


def remove_parts(store: str, names: Sequence[str]) -> None:
    """Remove the parts ``names`` (those absent are fine): before a rerun of their shards."""
    fs, folder = _folder(store)
    names = [_check_name(n) for n in names]
    paths = [f"{folder}/{n}" if fs else os.path.join(folder, n) for n in names]
    if fs is None:
        for path in paths:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
        return
    fs.invalidate_cache(folder)
    present = [p for p in paths if fs.exists(p)]
    if present:
        fs.rm(present)
    fs.invalidate_cache(folder)


def remove_all(store: str) -> None:
    """Remove every part and leftover temporary file (a rerun); the folder itself stays."""
    fs, folder = _folder(store)
    if fs is None:
        try:
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in names:
            if _ours(name):
                try:
                    os.remove(os.path.join(folder, name))
                except FileNotFoundError:
                    pass
        return
    fs.invalidate_cache(folder)
    if not fs.exists(folder):
        return
    found = [str(p) for p in fs.ls(folder, detail=False)]
    doomed = [p for p in found if _ours(p.rsplit("/", 1)[-1])]
    if doomed:
        fs.rm(doomed)
    fs.invalidate_cache(folder)


def has_objects(store: str) -> bool:
    """Whether the store holds at least one object part."""
    return bool(part_names(store))


def part_names(store: str) -> list[str]:
    """The names of every part of the store, sorted."""
    fs, folder = _folder(store)
    return [p.replace("\\", "/").rsplit("/", 1)[-1] for p in _part_paths(fs, folder)]


def expects_objects(store: str) -> bool:
    """Whether the store has an objects folder (its job measures objects), parts or not."""
    fs, folder = _folder(store)
    if fs is None:
        return os.path.isdir(folder)
    fs.invalidate_cache(folder)
    return bool(fs.exists(folder))


# ---------------------------------------------------------------------------- reading


def dataset(store: str) -> ds.Dataset | None:
    """A pyarrow dataset over every part (schema: the parts' unified one), None without."""
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    fs, folder = _folder(store)
    paths = _part_paths(fs, folder)
    if not paths:
        return None
    arrow_fs = pafs.LocalFileSystem() if fs is None else pafs.PyFileSystem(pafs.FSSpecHandler(fs))
    # every page read is checked against the crc32 it was written with
    verified = ds.ParquetFragmentScanOptions(page_checksum_verification=True)
    fmt = ds.ParquetFileFormat(default_fragment_scan_options=verified)
    try:
        factory = ds.FileSystemDatasetFactory(arrow_fs, paths, fmt)
        schema = pa.unify_schemas([object_schema(), factory.inspect(fragments=None)])
        return factory.finish(schema)
    except (pa.ArrowException, OSError) as exc:
        raise StoreError(f"cannot read the object tables of {store}: {one_line(exc)}") from None


def require_dataset(store: str) -> ds.Dataset:
    """:func:`dataset`, or a :class:`StoreError` that says why the store has no objects."""
    data = dataset(store)
    if data is not None:
        return data
    if expects_objects(store):
        raise StoreError(
            f"{store} has no object tables yet: no shard has written its objects "
            "(see batchseg status; rerun the job to resume it)"
        )
    raise StoreError(
        f"{store} has no object tables: the job ran without objects; "
        "run it with --objects to measure every object"
    )


def _open(store: str | ds.Dataset) -> ds.Dataset:
    return require_dataset(store) if isinstance(store, str) else store


def _columns(data: ds.Dataset, columns: Sequence[str] | None) -> list[str]:
    names = list(data.schema.names)
    if columns is None:
        return names
    for name in columns:
        if name not in names:
            raise QueryError(unknown_column(name, names))
    return list(dict.fromkeys(columns))


def batches(
    store: str | ds.Dataset,
    where: str | None = None,
    columns: Sequence[str] | None = None,
    limit: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """The matching rows as record batches, in part order; reading stops at ``limit`` rows.

    The filter and the column selection are pushed down to the Parquet scan (row groups
    whose statistics exclude the filter are not read); memory stays bounded by a few batches.
    The query and the columns are checked at the call, before the first batch.
    """
    return _batches(_open(store), where, columns, limit)


def _batches(
    data: ds.Dataset, where: str | None, columns: Sequence[str] | None, limit: int | None
) -> Iterator[pa.RecordBatch]:
    from batchseg.query.arrow import to_arrow

    names = _columns(data, columns)
    condition = to_arrow(where, data.schema) if where is not None else None
    if limit is not None and limit <= 0:
        return iter(())
    # a limit usually fills from the first parts: read few ahead (bounded memory, early stop)
    ahead = {} if limit is None else {"fragment_readahead": 2, "batch_readahead": 4}
    scanner = data.scanner(columns=names, filter=condition, batch_size=SCAN_BATCH_ROWS, **ahead)
    return _limited(scanner, limit, lambda: damaged_part(data, names, condition))


def _limited(scanner: ds.Scanner, limit: int | None, culprit: Callable[[], str]) -> Iterator[Any]:
    left = limit
    try:
        for batch in scanner.to_batches():
            if batch.num_rows == 0:
                continue
            if left is not None and batch.num_rows >= left:
                yield batch.slice(0, left)
                return  # the scanner (and its read-ahead) is dropped here
            if left is not None:
                left -= batch.num_rows
            yield batch
    except (pa.ArrowException, OSError) as exc:
        raise StoreError(f"cannot read the object tables: {one_line(exc)}{culprit()}") from None


def damaged_part(
    data: ds.Dataset, names: Sequence[str] | None = None, condition: Any = None
) -> str:
    """``"; object table part-000003.parquet (shard 3) is damaged, run batchseg verify ..."``
    naming the first part a scan of ``data`` fails on, or "" (read on an error only)."""
    for fragment in data.get_fragments(filter=condition):
        try:
            for _ in fragment.to_batches(schema=data.schema, columns=names, filter=condition):
                pass
        except (pa.ArrowException, OSError):
            name = str(fragment.path).rsplit("/", 1)[-1]
            return f"; object table {name} ({part_words(name)}) is damaged: {VERIFY_HINT}"
    return ""


def part_words(name: str) -> str:
    """``shard 3`` for ``part-000003.parquet``, ``tiled image row 12`` for a tiled part."""
    digits = _check_name(name)[len("part-") : -len(".parquet")]
    if digits.startswith("t"):
        return f"tiled image in catalogue row {int(digits[1:])}"
    return f"shard {int(digits)}"


def scan(
    store: str | ds.Dataset,
    where: str | None = None,
    columns: Sequence[str] | None = None,
    limit: int | None = None,
) -> pa.Table:
    """The matching rows (``where``: a query, see :mod:`batchseg.query`) as one Arrow table.

    Raises
    ------
    QueryError
        The query is invalid or names an unknown column (with a did-you-mean).
    StoreError
        The store has no object tables, or a part cannot be read.
    """
    data = _open(store)
    names = _columns(data, columns)
    schema = pa.schema([data.schema.field(n) for n in names])
    parts = list(_batches(data, where, names, limit))
    return pa.Table.from_batches(parts, schema=schema)


def count(store: str | ds.Dataset, where: str | None = None) -> int:
    """How many rows match ``where`` (all rows: from the parts' metadata alone)."""
    from batchseg.query.arrow import to_arrow

    data = _open(store)
    condition = to_arrow(where, data.schema) if where is not None else None
    try:
        return int(data.count_rows(filter=condition))
    except (pa.ArrowException, OSError) as exc:
        raise StoreError(f"cannot read the object tables: {one_line(exc)}") from None


def objects_frame(
    store: str,
    where: str | None = None,
    columns: Sequence[str] | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """The matching objects as a pandas DataFrame (see :func:`scan`)."""
    return scan(store, where, columns, limit).to_pandas()
