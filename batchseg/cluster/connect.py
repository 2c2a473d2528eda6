"""Connect a job to its workers: attach to a scheduler or start the cluster its profile names.

The profile (batchseg.cluster.profiles) says where the workers come from; the cluster itself
is built by batchseg.cluster.local (embedded), .jobqueue (SLURM/PBS) or .kubernetes.
"""

from __future__ import annotations

import gc
import logging
import os

from distributed import Client

from batchseg.cluster.handle import ClusterHandle
from batchseg.cluster.jobqueue import jobqueue_cluster, jobqueue_connect
from batchseg.cluster.kubernetes import kubernetes_cluster_spec, kubernetes_connect
from batchseg.cluster.local import choose_dashboard, start_gpu, start_local
from batchseg.cluster.profiles import (
    AddressProfile,
    JobqueueProfile,
    KubernetesProfile,
    LocalProfile,
    Profile,
)
from batchseg.cluster.tls import TLSFiles
from batchseg.errors import BatchsegError, UsageError

log = logging.getLogger(__name__)

#: How long attaching to a ``--scheduler`` may take (a refused TLS handshake is retried until then).
CONNECT_TIMEOUT = "10s"


def default_workers() -> int:
    """Worker processes for an embedded cluster: one per usable core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def connect(
    profile: Profile | None = None,
    *,
    memory_limit: str | int = "auto",
    dashboard_address: str | None = None,
    worker_env: dict[str, str] | None = None,
    tls_ca_file: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> ClusterHandle:
    """Attach to a scheduler, or start the cluster ``profile`` describes (local by default).

    ``address`` attaches to an existing scheduler, left running. ``local`` starts an embedded
    cluster of worker processes on this machine (with ``gpus`` > 0 one per GPU, each seeing
    only its own device and declaring the worker resource ``GPU=1``); it listens on loopback
    only. ``slurm``/``pbs`` submit batch jobs through dask-jobqueue, ``kubernetes`` creates a
    DaskCluster; both are closed (jobs cancelled, cluster deleted) with the handle.

    ``dashboard_address`` overrides the default: port 8787, or a free one when it is taken, on
    loopback for the embedded cluster and on every interface for jobqueue's scheduler. ``worker_env`` is added to the embedded workers' environment.

    With the three ``tls_*`` files the link is TLS with mutual authentication and encryption
    required: to the scheduler (``tls://host:port``), or inside the embedded cluster, whose
    scheduler and workers then use the same certificate and key.
    """
    profile = profile if profile is not None else LocalProfile()
    tls = TLSFiles.from_options(tls_ca_file, tls_cert, tls_key)
    if isinstance(profile, JobqueueProfile):
        # the scheduler runs on the login node; its dashboard on every interface, as before
        return jobqueue_connect(profile, tls, choose_dashboard(dashboard_address, host=""))
    if isinstance(profile, KubernetesProfile):
        if tls is not None:
            raise UsageError("TLS files are not supported with the kubernetes profile")
        return kubernetes_connect(profile)
    if isinstance(profile, AddressProfile):
        return attach(profile.address, tls)
    threads = profile.threads_per_worker or 1
    dashboard = dashboard_address or profile.dashboard_address
    if profile.gpus > 0:
        return start_gpu(
            profile.gpus, threads, memory_limit=memory_limit, dashboard=dashboard, tls=tls
        )
    return start_local(
        profile.workers or default_workers(),
        threads,
        memory_limit=memory_limit,
        dashboard=dashboard,
        worker_env=worker_env,
        tls=tls,
    )


def attach(scheduler: str, tls: TLSFiles | None = None) -> ClusterHandle:
    """A client of an existing scheduler; every failure is one BatchsegError line."""
    if tls is not None and "://" not in scheduler:
        scheduler = f"tls://{scheduler}"
    is_tls = scheduler.lower().startswith("tls://")
    if is_tls and tls is None:
        raise BatchsegError(
            f"scheduler {scheduler} uses TLS: give --tls-ca-file, --tls-cert and --tls-key "
            "(or tls_ca_file, tls_cert and tls_key in the job spec)"
        )
    if tls is not None and not is_tls:
        raise UsageError(
            f"--tls-* files were given but scheduler {scheduler} is not a tls:// address"
        )
    security = tls.client_security() if tls else None
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT, security=security)
    except (OSError, TimeoutError, ValueError, TypeError, RuntimeError) as exc:
        message = str(exc)
        del exc
        # The half-built Client closes itself in __del__, which takes its loop runner's lock;
        # collected at a random later point it can deadlock (seen under pytest). Collect now,
        # while this thread holds no lock.
        gc.collect()
        hint = (
            " (TLS: the scheduler must trust the CA that signed --tls-cert, --tls-ca-file must "
            "have signed the scheduler's certificate, and --tls-key must match --tls-cert)"
            if tls
            else ""
        )
        raise BatchsegError(f"cannot reach scheduler {scheduler}: {message}{hint}") from None
    log.info(
        "attached to scheduler %s%s (%d threads)",
        scheduler,
        " over TLS" if tls else "",
        sum(client.nthreads().values()),
    )
    return ClusterHandle(client, None)


def gpu_resources(client: Client) -> dict[str, float] | None:
    """``{"GPU": 1}`` when some worker of the cluster declares a GPU resource."""
    info = client.scheduler_info(n_workers=-1).get("workers", {})
    if any("GPU" in (w.get("resources") or {}) for w in info.values()):
        return {"GPU": 1}
    return None


def describe(profile: Profile, tls: TLSFiles | None = None) -> str:
    """What ``batchseg cluster show`` prints: the job script, the pod spec, or one line."""
    if isinstance(profile, JobqueueProfile):
        cluster = jobqueue_cluster(profile, tls, dashboard_address=":0")
        try:
            return str(cluster.job_script())
        finally:
            cluster.close()
    if isinstance(profile, KubernetesProfile):
        import yaml

        return str(yaml.safe_dump(kubernetes_cluster_spec(profile), sort_keys=False))
    if isinstance(profile, AddressProfile):
        return (
            f"address: attach to the existing scheduler {profile.address}"
            f"{' over TLS' if tls else ''} (left running)"
        )
    gpus = f", one worker process per GPU ({profile.gpus})" if profile.gpus else ""
    workers = profile.workers or (profile.gpus or default_workers())
    return (
        f"local: embedded cluster on this machine, {workers} worker processes x "
        f"{profile.threads_per_worker or 1} threads{gpus}{' (TLS)' if tls else ''}"
    )
