"""``batchseg import``: a store built from label images another tool wrote (or annotations)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from batchseg.cli.core import app, guard
from batchseg.cli.progress import progress_reporter
from batchseg.cli.text import echo, plural


@app.command("import")
def import_labels(
    labels: Annotated[
        str, typer.Argument(metavar="LABELS", help="Folder of the label images to import.")
    ],
    images: Annotated[
        str,
        typer.Option(
            metavar="IMAGES",
            help="The images they label (folder, glob, manifest, URL): a label file per image, "
            "same relative path, any image suffix.",
        ),
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="STORE", help="The store to write.")
    ],
    kind: Annotated[
        str,
        typer.Option(
            metavar="KIND",
            help="regions (ids; colours: one region each), classes (with --classes) or "
            "instances (ids, class 'object').",
        ),
    ],
    classes: Annotated[
        str | None,
        typer.Option(
            metavar="CSV",
            help="--kind classes: CSV value,class (grey values or colours #rrggbb / 'r g b'); "
            "class order: first appearance.",
        ),
    ] = None,
    pattern: Annotated[
        str | None,
        typer.Option(metavar="PATTERN", help="Label file from an image's stem: '{stem}.png'."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes of the embedded cluster (default: one per core)."),
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Attach to an existing Dask scheduler (tcp://host:8786).")
    ] = None,
    shard_size: Annotated[int | None, typer.Option(help="Images per task.")] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing store.")
    ] = False,
) -> None:
    """Build a store from label images (statistics, object tables), as a segmentation of the
    images would; query, evaluate, report, serve and export work on it (exit 3: some failed)."""
    options: dict[str, Any] = {
        "images": images, "output": output, "kind": kind, "classes": classes,
        "pattern": pattern, "workers": workers, "scheduler": scheduler,
        "shard_size": shard_size, "overwrite": overwrite or None,
    }  # fmt: skip
    raise typer.Exit(guard(lambda: _import(labels, options)))


def _import(labels: str, options: dict[str, Any]) -> int:
    from batchseg import api_stores

    with progress_reporter("importing") as on_progress:
        result = api_stores.import_labels(labels, **options, on_progress=on_progress)
    counts = (
        f"{result.done} done, {result.failed} failed, {result.pending} pending "
        f"of {plural(result.images, 'image')}"
    )
    if result.nothing_to_do:
        echo(f"{result.store}: nothing to do: {counts}")
    else:
        echo(f"{result.store}: {counts} ({result.seconds:.1f} s)")
    if result.failed:
        echo(f"see failures: batchseg status {result.store}", err=True)
    return result.exit_code
