"""``batchseg report``: one self-contained HTML file about a store's results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from batchseg.cli.core import StoreArgument, app, guard
from batchseg.cli.text import echo, plural


@app.command()
def report(
    store_path: StoreArgument,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="HTML file to write (missing folders created).")
    ],
    where: Annotated[
        str | None,
        typer.Option(
            "--where", "-w", metavar="EXPR", help="Gallery: the images this query selects."
        ),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option("--sort", "-s", metavar="[-]COL", help="Gallery order (-COL descending)."),
    ] = None,
    sample: Annotated[
        int,
        typer.Option(
            "--sample", "-n", metavar="N", help="Gallery size (a seeded sample without --where)."
        ),
    ] = 48,
    seed: Annotated[int, typer.Option(help="Seed of the gallery's random sample.")] = 0,
) -> None:
    """Write an HTML report: method, runs, status, failures, distributions and a gallery of
    overlays. One file, no network needed to view it."""
    guard(lambda: _report(store_path, output, where, sort, sample, seed))


def _report(
    path: str, output: Path, where: str | None, sort: str | None, sample: int, seed: int
) -> None:
    from batchseg.report import write_report

    result = write_report(path, output, where=where, sort=sort, sample=sample, seed=seed)
    echo(
        f"wrote {result.path}: {result.bytes / 1e6:.2f} MB, "
        f"{plural(result.images, 'gallery image')} in {result.seconds:.1f} s"
    )
