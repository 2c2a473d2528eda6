"""``batchseg panoptic``: merge a semantic store and an instance store into a panoptic store."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from batchseg.cli.cluster_options import (
    ClusterOption,
    ClusterSpecOption,
    GpusOption,
    SchedulerOption,
    ThreadsPerWorkerOption,
    TlsCaFileOption,
    TlsCertOption,
    TlsKeyOption,
    WorkersOption,
    cluster_flags,
)
from batchseg.cli.core import app, guard
from batchseg.cli.text import echo, plural


@app.command()
def panoptic(
    semantic: Annotated[
        str,
        typer.Option(metavar="STORE", help="Store of a semantic method (class maps)."),
    ],
    instances: Annotated[
        str,
        typer.Option(metavar="STORE", help="Store of an instance method, same images."),
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="STORE", help="Panoptic store to write.")
    ],
    things: Annotated[
        str | None,
        typer.Option(
            metavar="CLASSES",
            help="Comma-separated thing classes (default: the instance store's classes "
            "but background); other semantic classes are stuff.",
        ),
    ] = None,
    void: Annotated[
        list[str] | None,
        typer.Option(
            metavar="CLASS",
            help="Semantic class whose pixels are void, not stuff (repeatable; default: "
            "classes named void, background, unlabelled).",
        ),
    ] = None,
    overlap: Annotated[
        float,
        typer.Option(help="Drop an instance when more than this fraction of it is taken."),
    ] = 0.5,
    min_stuff_area: Annotated[
        int, typer.Option(help="Smallest stuff region kept, pixels (smaller ones are void).")
    ] = 4096,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output store.")
    ] = False,
    workers: WorkersOption = None,
    threads_per_worker: ThreadsPerWorkerOption = None,
    scheduler: SchedulerOption = None,
    cluster: ClusterOption = None,
    cluster_spec: ClusterSpecOption = None,
    gpus: GpusOption = None,
    tls_ca_file: TlsCaFileOption = None,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
) -> None:
    """Merge semantic and instance results of the same images into panoptic labels
    (class_index * 1000 + instance) with per-class statistics and one object row per segment."""
    flags = cluster_flags(locals())
    code = guard(
        lambda: _panoptic(
            semantic,
            instances,
            output,
            things,
            overlap,
            min_stuff_area,
            overwrite,
            tuple(void) if void else None,
            cluster_spec,
            flags,
        )  # fmt: skip
    )
    raise typer.Exit(code)


def _panoptic(
    semantic: str,
    instances: str,
    output: str,
    things: str | None,
    overlap: float,
    min_stuff_area: int,
    overwrite: bool,
    void: tuple[str, ...] | None,
    cluster_spec: str | None,
    cluster_flags: dict[str, Any],
) -> int:
    from batchseg import api_jobs

    result = api_jobs.panoptic(
        semantic=semantic,
        instances=instances,
        output=output,
        things=things,
        overlap=overlap,
        min_stuff_area=min_stuff_area,
        overwrite=overwrite,
        void=void,
        cluster_spec=cluster_spec,
        **cluster_flags,
    )
    if result.nothing_to_do:
        echo(f"nothing to do: every image of {result.store} is finished")
    else:
        echo(
            f"{result.store}: {plural(result.done, 'image')} done, {result.failed} failed, "
            f"{result.pending} pending ({result.seconds:.1f} s)"
        )
    return result.exit_code
