"""``batchseg cluster show``: what a job's cluster profile would start."""

from __future__ import annotations

from typing import Annotated

import typer

from batchseg.cli.core import EXIT_OK, app, guard

cluster_app = typer.Typer(
    help="Cluster profiles: what a job's [cluster] table or --cluster would start.",
    no_args_is_help=True,
)
app.add_typer(cluster_app, name="cluster")


@cluster_app.command("show")
def cluster_show(
    spec_path: Annotated[str, typer.Argument(metavar="JOB.toml", help="A job spec.")],
    cluster: Annotated[
        str | None,
        typer.Option("--cluster", metavar="PROFILE", help="Override the spec's profile."),
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Existing scheduler (implies --cluster address).")
    ] = None,
) -> None:
    """Print the batch job script (slurm, pbs) or pod spec (kubernetes) that `run` would submit."""
    code = guard(lambda: _cluster_show(spec_path, cluster, scheduler))
    raise typer.Exit(code)


def _cluster_show(path: str, profile_flag: str | None, scheduler: str | None) -> int:
    from batchseg.job.spec import load_spec

    spec = load_spec(path, {"cluster": profile_flag, "scheduler": scheduler})
    from batchseg.cluster.connect import describe
    from batchseg.cluster.tls import TLSFiles

    tls = TLSFiles.from_options(spec.tls_ca_file, spec.tls_cert, spec.tls_key)
    typer.echo(describe(spec.profile, tls).rstrip("\n"))
    return EXIT_OK
