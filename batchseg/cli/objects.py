"""``batchseg objects``: the per-object table of a store, filtered by a query.

The filter and the column selection are pushed down to the Parquet parts (see
:mod:`batchseg.store.objects`); CSV, JSON and Parquet output stream batch by batch, so the
whole table is never in memory. The table format shows the first rows (50 unless ``--limit``)
and how many match; the other formats write every matching row unless ``--limit``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from batchseg.cli.core import StoreArgument, app, guard
from batchseg.cli.text import echo, plural, printable
from batchseg.errors import UsageError

#: Columns the table format shows without ``--columns`` (then the ``--where`` columns).
DEFAULT_COLUMNS = ("image_id", "label", "area", "centroid_row", "centroid_col")
#: Rows the table format shows without ``--limit``.
DEFAULT_TABLE_ROWS = 50
FORMATS = ("table", "csv", "json", "parquet")


@app.command()
def objects(
    store_path: StoreArgument,
    where: Annotated[
        str | None,
        typer.Option(
            "--where", "-w", metavar="EXPR", help='Boolean expression, e.g. "area > 500".'
        ),
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            "-c",
            metavar="COLS",
            help="Comma-separated columns, globs allowed ('*': all; default: a few key ones "
            "for the table, all for the other formats).",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", "-n", metavar="N", help=f"At most N rows (table: {DEFAULT_TABLE_ROWS})."
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", metavar="FORMAT", help="table, csv, json or parquet."),
    ] = "table",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write csv, json or parquet to FILE."),
    ] = None,
) -> None:
    """Objects (one row per object per image) whose measurements satisfy an expression."""
    guard(lambda: _objects(store_path, where, columns, limit, fmt, output))


def _check_options(fmt: str, limit: int | None, output: Path | None) -> None:
    if fmt not in FORMATS:
        raise UsageError(f"--format must be table, csv, json or parquet, got {fmt!r}")
    if limit is not None and limit < 0:
        raise UsageError("--limit must be >= 0")
    if fmt == "parquet" and output is None:
        raise UsageError("--format parquet needs --output FILE (Parquet is not for a terminal)")
    if fmt == "table" and output is not None:
        raise UsageError("--output needs --format csv, json or parquet")
    if output is not None and output.is_dir():
        raise UsageError(f"--output is a folder: {str(output)!r}")


def _objects(
    path: str,
    where: str | None,
    columns: str | None,
    limit: int | None,
    fmt: str,
    output: Path | None,
) -> None:
    from batchseg.query import Selection
    from batchseg.store import objects as parts
    from batchseg.store.object_check import checked_dataset

    _check_options(fmt, limit, output)
    chosen = Selection(where, columns, limit=limit)
    expr = chosen.expression()
    # "no store at ...", "the job ran without objects ...", a part the store contradicts: exit 1
    data = checked_dataset(path)
    available = list(data.schema.names)
    if expr is not None:
        expr.check_columns(available)
    where_cols = [c for c in available if expr is not None and c in expr.columns]
    if fmt == "table":
        default = list(
            dict.fromkeys([*(c for c in DEFAULT_COLUMNS if c in available), *where_cols])
        )
    else:
        default = available
    cols = chosen.column_names(available, default)
    text = expr.text if expr is not None else None
    if fmt == "table":
        rows = DEFAULT_TABLE_ROWS if limit is None else limit
        _show_table(data, text, cols, rows, chosen=chosen.explicit)
        return
    batches = parts.batches(data, text, cols, limit)
    if fmt == "parquet":
        assert output is not None
        written = _write_parquet(batches, output, [data.schema.field(c) for c in cols])
    else:
        write = _write_csv if fmt == "csv" else _write_json
        written = _to_text(write, batches, output, cols)
    if output is not None:
        echo(f"wrote {output}: {plural(written, 'object')}")


# ------------------------------------------------------------------------------ table


def _show_table(data: Any, where: str | None, cols: list[str], limit: int, *, chosen: bool) -> None:
    """The first ``limit`` matching rows as a rich table, with how many match."""
    from batchseg.store import objects as parts

    rows = parts.scan(data, where, cols, limit)
    matching = rows.num_rows if rows.num_rows < limit else parts.count(data, where)
    total = parts.count(data) if where is not None else matching
    hints = []
    if rows.num_rows < matching:
        hints.append("more: --limit N")
    if not chosen:
        hints.append("all columns: --columns '*'")
    caption = f"{rows.num_rows} of {matching} matching objects"
    caption += f" ({total} in store)" if where is not None else ""
    caption += f"; {'; '.join(hints)}" if hints else ""
    _print_table(rows, caption)


def _print_table(rows: Any, caption: str) -> None:
    """Cells are plain text (no markup, control characters escaped)."""
    import pyarrow as pa

    from batchseg.cli.table import print_table
    from batchseg.query.display import cell

    numeric = [pa.types.is_integer(f.type) or pa.types.is_floating(f.type) for f in rows.schema]
    cells = ([cell(v) for v in record.values()] for record in rows.to_pylist())
    print_table([f.name for f in rows.schema], cells, numeric, caption)


# ----------------------------------------------------------------------- csv, json, parquet


def _frame(batch: Any) -> Any:
    """A batch as pandas, integer columns kept integers (missing values empty, not 1.0)."""
    import pandas as pd
    import pyarrow as pa

    ints = {t: pd.Int64Dtype() for t in (pa.int8(), pa.int16(), pa.int32(), pa.int64())}
    return batch.to_pandas(types_mapper=ints.get)


def _write_csv(batch: Any, first: bool) -> str:
    import pandas as pd

    frame = _frame(batch).rename(columns=printable)
    for c in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[c]):
            frame[c] = frame[c].map(lambda v: printable(v) if isinstance(v, str) else v)
    return str(frame.to_csv(index=False, header=first))


def _write_json(batch: Any, first: bool) -> str:
    """The records of ``batch`` for a JSON array (escapes control characters)."""
    text = str(_frame(batch).to_json(orient="records", indent=2, double_precision=15))
    inner = text.strip()[1:-1].rstrip()
    return ("[" if first else ",") + inner


def _to_text(
    write: Callable[[Any, bool], str],
    batches: Iterator[Any],
    output: Path | None,
    cols: list[str],
) -> int:
    """Write the batches as text to ``output`` (atomically) or stdout; the row count."""
    n = 0
    with _opened(output, "w") as out:
        for batch in batches:
            out.write(write(batch, n == 0))
            n += batch.num_rows
        if write is _write_json:
            out.write("[]\n" if n == 0 else "\n]\n")
        elif n == 0:  # no rows: the header alone
            out.write(",".join(_csv_name(c) for c in cols) + "\n")
    return n


def _csv_name(name: str) -> str:
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([printable(name)])
    return buffer.getvalue()


def _write_parquet(batches: Iterator[Any], output: Path, fields: list[Any]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 0
    with _opened(output, "wb") as out:
        with pq.ParquetWriter(out, pa.schema(fields), compression="zstd") as writer:
            for batch in batches:
                writer.write_batch(batch)
                n += batch.num_rows
    return n


class _Stdout:
    """``write`` to standard output (through typer, as every command writes)."""

    def write(self, text: str) -> None:
        typer.echo(text, nl=False)


@contextmanager
def _opened(output: Path | None, mode: str) -> Iterator[Any]:
    """Standard output, or a temporary file beside ``output`` renamed to it at the end."""
    if output is None:
        yield _Stdout()
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
