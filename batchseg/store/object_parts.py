"""Reading named object parts (the rows of a few task shards) without listing the folder.

:mod:`batchseg.store.objects` scans every part as one dataset; jobs that visit a store shard
by shard (the panoptic merge, COCO export) read only the parts that hold their images.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pyarrow as pa

from batchseg.errors import StoreError, one_line
from batchseg.store.objects import OBJECTS, object_schema
from batchseg.store.paths import filesystem, is_url, normalise_path

__all__ = ["read_parts"]


def read_parts(store: str, names: Sequence[str], columns: Sequence[str] | None = None) -> pa.Table:
    """The rows of the parts ``names`` (``part-NNNNNN.parquet``), in that order, as one table.

    ``columns`` picks columns; those a part lacks are read as nulls (typed as in
    :func:`~batchseg.store.objects.object_schema`, float64 for unknown extras).

    Raises
    ------
    StoreError
        A part is missing or cannot be read.
    """
    import pyarrow.parquet as pq

    path = normalise_path(store)
    fs, inner = (None, path) if not is_url(path) else filesystem(path)
    fixed = object_schema()
    tables = []
    for name in names:
        where = os.path.join(inner, OBJECTS, name) if fs is None else f"{inner}/{OBJECTS}/{name}"
        try:
            if fs is None:
                table = pq.read_table(where)
            else:
                with fs.open(where, "rb") as f:
                    table = pq.read_table(f)
        except FileNotFoundError:
            raise StoreError(f"object table {name} is missing from {store}") from None
        except (pa.ArrowException, OSError) as exc:
            raise StoreError(f"cannot read object table {name}: {one_line(exc)}") from None
        if columns is not None:
            table = pa.table(
                {
                    c: table.column(c)
                    if c in table.column_names
                    else pa.nulls(
                        table.num_rows,
                        fixed.field(c).type if c in fixed.names else pa.float64(),
                    )
                    for c in columns
                }
            )
        tables.append(table)
    if not tables:
        return pa.table({c: pa.array([], pa.float64()) for c in columns or ()})
    return pa.concat_tables(tables, promote_options="permissive")
