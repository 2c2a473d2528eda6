"""The cluster options every job command takes (``run``, ``evaluate``, ``panoptic``): one
declaration each, so that the commands cannot drift apart. What they resolve to is
:func:`batchseg.cluster.settings.cluster_settings` (flags > TOML file > the local cluster).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from batchseg.cluster.settings import ClusterSettings

WorkersOption = Annotated[
    int | None,
    typer.Option(help="Worker processes of the embedded cluster (default: one per core)."),
]
ThreadsPerWorkerOption = Annotated[
    int | None, typer.Option(help="Threads per worker process (default 1).")
]
SchedulerOption = Annotated[
    str | None,
    typer.Option(
        help="Attach to an existing Dask scheduler (tcp://host:8786); implies --cluster address."
    ),
]
ClusterOption = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        metavar="PROFILE",
        help="Cluster profile: local (default), address, slurm, pbs or kubernetes; "
        "settings in the [cluster] table of the job spec (or cluster spec).",
    ),
]
GpusOption = Annotated[
    int | None, typer.Option(help="Embedded cluster: one worker process per GPU.")
]
TlsCaFileOption = Annotated[
    str | None,
    typer.Option(help="TLS: CA certificate (PEM) that signs the cluster's certificates."),
]
TlsCertOption = Annotated[
    str | None, typer.Option(help="TLS: this client's certificate (PEM); with --tls-key.")
]
TlsKeyOption = Annotated[str | None, typer.Option(help="TLS: private key (PEM) of --tls-cert.")]
ClusterSpecOption = Annotated[
    str | None,
    typer.Option(
        "--cluster-spec",
        metavar="FILE.toml",
        help="TOML file (a job spec will do) whose [cluster] table and workers, "
        "threads_per_worker, gpus, scheduler and tls_* keys say where the workers come "
        "from; flags win.",
    ),
]


#: The parameter names of the cluster options (all but ``--cluster-spec``).
CLUSTER_FLAGS = (
    "workers", "threads_per_worker", "scheduler", "cluster", "gpus",
    "tls_ca_file", "tls_cert", "tls_key",
)  # fmt: skip


def cluster_flags(options: dict[str, Any]) -> dict[str, Any]:
    """The cluster flags among a command's ``options`` (None: not given)."""
    return {key: options[key] for key in CLUSTER_FLAGS}


def cluster_settings(spec_file: str | None, **flags: Any) -> ClusterSettings:
    """Where the workers come from: the cluster flags (None: not given) over ``spec_file``."""
    from batchseg.cluster.settings import load_cluster_settings

    return load_cluster_settings(spec_file, flags)
