"""Object tables checked against what the store recorded before any row is served.

A task writes its shard's Parquet part, then the shard's statistics row ``n_objects`` per image
(crc32c-checked like every statistics chunk), then the status. So the store itself records the
part list (every shard with a done row has a part) and each part's row count (the sum of
``n_objects`` over the shard's measured rows). Reads compare both with the parts' footers and
check the fixed columns' types, and every page is read against its crc32 (see
:func:`batchseg.store.objects.dataset`); anything else is a :class:`StoreError` naming the
shard and ``batchseg verify``. Stores whose statistics lack ``n_objects`` (a panoptic merge)
check the part list only.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from batchseg.errors import StoreError, one_line
from batchseg.store import objects
from batchseg.store.layout import DONE, catalogue_node, published_rows
from batchseg.store.paths import filesystem, normalise_path
from batchseg.store.read import attributes, open_group, read_array, stat_names
from batchseg.store.table import read_table

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd
    import pyarrow.dataset as ds
    import zarr

__all__ = [
    "PartFacts",
    "checked_dataset",
    "objects_frame",
    "part_damage",
    "part_facts",
    "part_problems",
]

log = logging.getLogger(__name__)

COUNT_COLUMN = "n_objects"


@dataclass(frozen=True)
class PartFacts:
    """What the store records about its object parts.

    Attributes
    ----------
    required : dict of str to int or None
        Part name of every shard with a done row, mapped to the rows it must hold (None when
        the store does not record it: no ``n_objects`` statistic, or a done row without it).
    rows : dict of str to int
        Rows the store records for every shard with measured rows (done or not).
    """

    required: dict[str, int | None]
    rows: dict[str, int]


def part_facts(root: zarr.Group) -> PartFacts:
    """The part list and row counts recorded in the store's status and statistics."""
    attrs = attributes(root)
    S = int(attrs["shard_size"])
    bucket = read_array(root, catalogue_node("bucket"), slice(0, published_rows(attrs)))
    real = np.flatnonzero(bucket >= 0)
    counted = COUNT_COLUMN in stat_names(root)
    frame = read_table(root, columns=[COUNT_COLUMN] if counted else [])
    shard = real // S
    done = np.asarray(frame["status"].cat.codes == DONE)
    if counted:
        n = np.asarray(frame[COUNT_COLUMN], dtype=np.float64)
    else:
        n = np.full(real.size, np.nan)
    measured = np.isfinite(n)
    total = np.bincount(shard[measured], weights=n[measured], minlength=0)
    rows = {objects.shard_part_name(int(k)): int(total[k]) for k in np.unique(shard[measured])}
    lacking = set(shard[done & ~measured].tolist())
    required = {
        objects.shard_part_name(int(k)): (
            None if k in lacking else rows.get(objects.shard_part_name(int(k)), 0)
        )
        for k in np.unique(shard[done])
    }
    return PartFacts(required=required, rows=rows)


def part_problems(data: ds.Dataset | None, facts: PartFacts) -> dict[str, str]:
    """Part name -> what is wrong with it (missing, unreadable footer, row count, schema)."""
    present = {} if data is None else {_name(f.path): f for f in data.get_fragments()}
    found: dict[str, str] = {}
    for name in facts.required:
        if name not in present:
            found[name] = "object table missing"
    for name, fragment in present.items():
        # a shard with a done row lacking n_objects records no count; others record theirs
        want = facts.required[name] if name in facts.required else facts.rows.get(name)
        why = _footer_problem(fragment, want)
        if why is not None:
            found[name] = why
    return found


def _footer_problem(fragment: ds.ParquetFileFragment, want: int | None) -> str | None:
    """What the part's footer contradicts: the recorded row count or the fixed columns."""
    try:
        got = int(fragment.metadata.num_rows)
        schema = fragment.physical_schema
    except (pa.ArrowException, OSError) as exc:
        return f"object table damaged ({one_line(exc, limit=120)})"
    return _table_problem(got, schema, want)


def _table_problem(got: int, schema: pa.Schema, want: int | None) -> str | None:
    if want is not None and got != want:
        return f"object table holds {got} rows, the store recorded {want}"
    for field in objects.object_schema():
        index = schema.get_field_index(field.name)
        if index < 0 or schema.field(index).type != field.type:
            return f"object table damaged (column {field.name!r} missing or retyped)"
    return None


def checked_dataset(path: str) -> ds.Dataset:
    """:func:`~batchseg.store.objects.require_dataset` after comparing the parts with the
    store's records (see the module); a :class:`StoreError` naming the shard otherwise."""
    root = open_group(path)
    try:
        data = objects.dataset(path)
    except StoreError as exc:  # a footer does not parse: name the part
        bad = [n for n in objects.part_names(path) if part_damage(path, n) is not None]
        if not bad:
            raise
        raise StoreError(
            f"{exc}: {bad[0]} ({objects.part_words(bad[0])}) is damaged; {objects.VERIFY_HINT}"
        ) from None
    problems = part_problems(data, part_facts(root)) if attributes(root).get("objects") else {}
    if problems:
        name = sorted(problems)[0]
        more = f" (and {len(problems) - 1} more part(s))" if len(problems) > 1 else ""
        raise StoreError(
            f"{problems[name]}: {name} ({objects.part_words(name)}) of {path}{more}; "
            f"{objects.VERIFY_HINT}"
        )
    return objects.require_dataset(path) if data is None else data


def objects_frame(
    path: str,
    where: str | None = None,
    columns: Sequence[str] | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """The store's matching objects as a pandas DataFrame, checked (see the module)."""
    return objects.scan(checked_dataset(path), where, columns, limit).to_pandas()


def part_damage(store: str, name: str, rows: int | None = None) -> str | None:
    """Why the part ``name`` cannot serve its rows (missing, unreadable, checksum, not the
    ``rows`` the store recorded, a fixed column lost), or None.

    The whole part is read with its page checksums verified (parts are one shard's objects).
    """
    import pyarrow.parquet as pq

    path = normalise_path(store)
    fs, inner = (None, path) if "://" not in path else filesystem(path)
    where = (
        os.path.join(inner, objects.OBJECTS, name)
        if fs is None
        else f"{inner}/{objects.OBJECTS}/{name}"
    )
    try:
        if fs is None:
            if not os.path.isfile(where):
                return "object table missing"
            table = pq.read_table(where, page_checksum_verification=True)
        else:
            if not fs.exists(where):
                return "object table missing"
            with fs.open(where, "rb") as f:
                table = pq.read_table(f, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as exc:
        return f"object table damaged ({one_line(exc, limit=120)})"
    return _table_problem(table.num_rows, table.schema, rows)


def _name(path: str) -> str:
    return str(path).replace("\\", "/").rsplit("/", 1)[-1]
