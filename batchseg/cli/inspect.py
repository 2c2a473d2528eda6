"""Reading a store: ``status``, ``query`` and ``stats`` (``mask``/``export`` in cli.export)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from batchseg.cli.core import EXIT_FAILED_IMAGES, EXIT_OK, StoreArgument, app, guard
from batchseg.cli.text import echo, failure_lines, plural, printable
from batchseg.errors import UsageError

#: Dataset scores of instance (COCO AP) and panoptic (PQ) evaluations shown by ``stats``.
SCORES = ("ap", "ap50", "pq")


@app.command()
def status(
    store_path: StoreArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    show_all: Annotated[
        bool,
        typer.Option("--all", help="List every failed image (default: grouped by error)."),
    ] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="First check that every done image has its data (see `batchseg verify`).",
        ),
    ] = False,
) -> None:
    """Done / failed / pending counts and the failed images with their errors.

    Exits 3 when some images failed, are pending or damaged (as ``run`` does), else 0."""
    code = guard(lambda: _status(store_path, as_json, show_all=show_all, verify=verify))
    raise typer.Exit(code)


def _status(path: str, as_json: bool, *, show_all: bool = False, verify: bool = False) -> int:
    import batchseg

    code = EXIT_OK
    if verify:
        from batchseg.cli.verify import verify_store

        code = verify_store(path, quiet=as_json, show_all=show_all)
    report = batchseg.open(path).status()
    unfinished = int(report["failed"]) + int(report["pending"]) + int(report.get("damaged") or 0)
    if unfinished and code == EXIT_OK:
        code = EXIT_FAILED_IMAGES
    if as_json:  # every failure, not grouped: JSON is for programs
        typer.echo(json.dumps(report, indent=2))
        return code
    damaged = int(report.get("damaged") or 0)
    echo(
        f"{path}: {plural(int(report['images']), 'image')}: {report['done']} done, "
        f"{report['failed']} failed, {report['pending']} pending"
        + (f", {damaged} damaged" if damaged else "")
    )
    gone = int(report.get("gone_at_last_append") or 0)
    if gone:
        echo(f"  {plural(gone, 'stored image')} no longer in the last append's input (kept)")
    pairs = [(f["image_id"], f["error"]) for f in report["failures"]]
    broken = [
        (str(i), "unknown status code; the next run segments it again")
        for i in report.get("damaged_images") or []
    ]
    command = "batchseg status STORE"
    for label, items in (("failed", pairs), ("damaged", broken)):
        for line in failure_lines(items, label=label, show_all=show_all, command=command):
            echo(line)
    return code


@app.command()
def query(
    store_path: StoreArgument,
    where: Annotated[
        str | None,
        typer.Option(
            "--where", "-w", metavar="EXPR", help="Boolean expression over the statistics columns."
        ),
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            "-c",
            metavar="COLS",
            help="Comma-separated columns, globs allowed ('*': all; default: a few key ones).",
        ),
    ] = None,
    image_ids: Annotated[
        list[str] | None,
        typer.Option(
            "--id",
            metavar="GLOB",
            help="Only ids matching this glob, e.g. 'photos/*' (repeatable).",
        ),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option(
            "--sort", "-s", metavar="[-]COL", help="Sort by COL (ascending) or -COL (descending)."
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", metavar="N", help="At most N rows.")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", metavar="FORMAT", help="table, csv or json.")
    ] = "table",
) -> None:
    """Images whose statistics satisfy an expression (such as "fraction_road > 0.3")."""
    guard(
        lambda: _query(
            store_path, where, columns, ids=image_ids or [], sort=sort, limit=limit, fmt=fmt
        )
    )


def _query(
    path: str,
    where: str | None,
    columns: str | None,
    *,
    ids: list[str] | None = None,
    sort: str | None = None,
    limit: int | None = None,
    fmt: str = "table",
) -> None:
    import pandas as pd

    import batchseg
    from batchseg.query import Selection, select

    if fmt not in ("table", "csv", "json"):
        raise UsageError(f"--format must be table, csv or json, got {fmt!r}")
    if limit is not None and limit < 0:
        raise UsageError("--limit must be >= 0")
    chosen = Selection(where, columns, sort, ids or [], limit)
    chosen.expression()  # a bad query is refused before the store is opened
    view = batchseg.open(path)
    page = select(view, chosen)
    out = page.rows
    total = view.attrs.get("n_images", page.total)
    if fmt == "json":
        typer.echo(out.to_json(orient="records", indent=2))  # escapes control characters
    elif fmt == "csv":
        safe = out.rename(columns=printable)
        for c in safe.columns:
            if not pd.api.types.is_numeric_dtype(safe[c]):
                safe[c] = safe[c].map(lambda v: printable(v) if isinstance(v, str) else v)
        typer.echo(safe.to_csv(index=False), nl=False)
    else:
        more = "" if columns else "; all columns: --columns '*'"
        caption = f"{len(out)} of {page.total} matching images ({total} in store){more}"
        _print_table(out, caption=caption)


def _print_table(out: Any, caption: str) -> None:
    """A rich table; cells are plain text (no markup, control characters escaped)."""
    from batchseg.cli.table import print_table
    from batchseg.query.display import cell

    numeric = [c not in ("image_id", "status", "error", "uri") for c in out.columns]
    rows = ([cell(v) for v in record] for record in out.itertuples(index=False))
    print_table([str(c) for c in out.columns], rows, numeric, caption)


@app.command()
def stats(
    store_path: StoreArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Dataset summary: images, pixels per class or regions per image, failures, throughput."""
    guard(lambda: _stats(store_path, as_json))


def _stats(path: str, as_json: bool) -> None:
    import batchseg

    s = batchseg.open(path).summary()
    if as_json:
        typer.echo(json.dumps(s, indent=2))
        return
    echo(f"{path}: method {s['method']} {s['params']}")
    echo(
        f"images {s['images']} ({s['done']} done, {s['failed']} failed, {s['pending']} pending), "
        f"{plural(int(s['shapes']), 'shape')}, {s['pixels']} pixels"
    )
    if "classes" in s:
        for name, c in s["classes"].items():
            echo(
                f"  {name:>20}: {c['fraction']:7.2%} of pixels, in {plural(int(c['images_with_class']), 'image')}"
            )
        if s.get("mean_confidence") is not None:
            echo(f"  mean confidence {s['mean_confidence']:.3f}")
    else:
        r = s["regions"]
        echo(f"  regions: {r['total']} in all")
        if r["per_image"]:
            d = r["per_image"]
            echo(
                f"  regions per image: min {d['min']:.0f}, median {d['median']:.0f}, "
                f"mean {d['mean']:.1f}, max {d['max']:.0f}"
            )
    if s["seconds_per_image"]:
        echo(f"  seconds per image (median): {s['seconds_per_image']['median']:.4f}")
    if s.get("runs"):
        last = s["runs"][-1]
        echo(
            f"  last run: {plural(int(last['processed']), 'image')} in {last['seconds']:.1f} s "
            f"({last['images_per_second']:.2f} images/s)"
        )
    for name, e in (s.get("evaluations") or {}).items():
        values = [
            f"{k} {e[k]:.4f}"
            for k in ("pixel_accuracy", "miou", "adapted_rand_error", "boundary_f", *SCORES)
            if isinstance(e.get(k), int | float)
        ]
        echo(
            f"  evaluation {name!r}: {plural(int(e.get('images_scored', 0)), 'image')}; "
            + ", ".join(values)
        )
