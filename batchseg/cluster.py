"""Start or attach to a Dask cluster (the only module, with graph.py, that imports distributed)."""

from __future__ import annotations

import gc
import logging
import os
from dataclasses import dataclass
from typing import Any

import dask
from distributed import Client, LocalCluster
from distributed.security import Security

from batchseg.errors import BatchsegError, UsageError
from batchseg.profiles import (
    AddressProfile,
    JobqueueProfile,
    KubernetesProfile,
    LocalProfile,
    Profile,
)

log = logging.getLogger(__name__)

#: Worker environment for embedded clusters. distributed sets MALLOC_TRIM_THRESHOLD_=65536 in
#: worker processes, which slowed numpy kernels 11-45% here; None removes it.
WORKER_ENV: dict[str, Any] = {"MALLOC_TRIM_THRESHOLD_": None}

#: How long attaching to a ``--scheduler`` may take (a refused TLS handshake is retried until then).
CONNECT_TIMEOUT = "10s"


@dataclass(frozen=True)
class TLSFiles:
    """PEM files for a TLS link: the CA that signs every certificate, this side's cert and key."""

    ca_file: str
    cert: str
    key: str

    @classmethod
    def from_options(
        cls, ca_file: str | None, cert: str | None, key: str | None
    ) -> TLSFiles | None:
        """None when no option is given; all three, naming existing files, otherwise."""
        given = {"--tls-ca-file": ca_file, "--tls-cert": cert, "--tls-key": key}
        if not any(given.values()):
            return None
        missing = [name for name, value in given.items() if not value]
        if missing:
            raise UsageError(
                f"TLS needs --tls-ca-file, --tls-cert and --tls-key together; missing "
                f"{', '.join(missing)}"
            )
        for name, value in given.items():
            if not os.path.isfile(str(value)):
                raise UsageError(f"{name} {value}: no such file")
        return cls(str(ca_file), str(cert), str(key))

    def client_security(self) -> Security:
        """Encrypted, mutually authenticated client (paths only: the key is read by ssl)."""
        return Security(
            tls_ca_file=self.ca_file,
            tls_client_cert=self.cert,
            tls_client_key=self.key,
            require_encryption=True,
        )

    def cluster_security(self) -> Security:
        """The same cert/key for the scheduler, the workers and the client of an embedded cluster."""
        return Security(
            tls_ca_file=self.ca_file,
            tls_client_cert=self.cert,
            tls_client_key=self.key,
            tls_scheduler_cert=self.cert,
            tls_scheduler_key=self.key,
            tls_worker_cert=self.cert,
            tls_worker_key=self.key,
            require_encryption=True,
        )


@dataclass
class ClusterHandle:
    """A connected client; ``owned`` clusters are closed with the handle."""

    client: Client
    cluster: Any
    #: Worker threads the cluster will have once its batch jobs run (they may still be queued).
    expected_threads: int = 0
    #: Whether the workers run on this machine (embedded cluster).
    local: bool = True

    @property
    def owned(self) -> bool:
        return self.cluster is not None

    @property
    def dashboard(self) -> str | None:
        return self.client.dashboard_link

    def n_threads(self) -> int:
        return max(1, self.expected_threads, sum(self.client.nthreads().values()))

    def close(self) -> None:
        """Close the client, and the cluster when batchseg started it (its jobs cancelled)."""
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def default_workers() -> int:
    """Worker processes for an embedded cluster: one per usable core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def connect(
    scheduler: str | None = None,
    *,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: str | int = "auto",
    dashboard_address: str = ":8787",
    worker_env: dict[str, str] | None = None,
    gpus: int = 0,
    tls_ca_file: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    profile: Profile | None = None,
) -> ClusterHandle:
    """Attach to ``scheduler``, or start an embedded cluster of worker processes.

    ``profile`` (batchseg.profiles) overrides the first arguments: ``slurm``/``pbs`` submit
    batch jobs through dask-jobqueue, ``kubernetes`` creates a DaskCluster; both are closed
    (jobs cancelled, cluster deleted) with the handle. ``address`` clusters are left running.

    With ``gpus`` > 0 the embedded cluster has one worker process per GPU, each seeing only
    its own device (``CUDA_VISIBLE_DEVICES``) and declaring the worker resource ``GPU=1``.

    With the three ``tls_*`` files the link is TLS with mutual authentication and encryption
    required: to ``scheduler`` (``tls://host:port``), or inside the embedded cluster, whose
    scheduler and workers then use the same certificate and key.
    """
    tls = TLSFiles.from_options(tls_ca_file, tls_cert, tls_key)
    if isinstance(profile, JobqueueProfile):
        return _jobqueue_connect(profile, tls, dashboard_address)
    if isinstance(profile, KubernetesProfile):
        if tls is not None:
            raise UsageError("TLS files are not supported with the kubernetes profile")
        return _kubernetes_connect(profile)
    if isinstance(profile, AddressProfile):
        scheduler = profile.address
    elif isinstance(profile, LocalProfile):
        scheduler = None
        workers, threads_per_worker, gpus = (
            profile.workers,
            profile.threads_per_worker,
            profile.gpus,
        )
    if scheduler:
        return _attach(scheduler, tls)
    if gpus > 0:
        return _gpu_cluster(gpus, threads_per_worker or 1, memory_limit, dashboard_address, tls)
    n = workers or default_workers()
    env = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_ENV.items()}
    env.update(
        {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in (worker_env or {}).items()}
    )
    security = tls.cluster_security() if tls else None
    with dask.config.set(env):
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=threads_per_worker or 1,
            processes=True,
            memory_limit=memory_limit,
            dashboard_address=dashboard_address,
            silence_logs=logging.ERROR,
            **_tls_options(security),
        )
    client = Client(cluster, security=security)
    log.info(
        "started local cluster: %d workers x %d threads%s",
        n,
        threads_per_worker or 1,
        " (TLS)" if tls else "",
    )
    return ClusterHandle(client, cluster)


def _attach(scheduler: str, tls: TLSFiles | None) -> ClusterHandle:
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


def _tls_options(security: Security | None) -> dict[str, Any]:
    return {"protocol": "tls://", "security": security} if security is not None else {}


def _gpu_cluster(
    gpus: int,
    threads: int,
    memory_limit: str | int,
    dashboard_address: str,
    tls: TLSFiles | None = None,
) -> ClusterHandle:
    """dask-cuda's LocalCUDACluster when installed, else an equivalent SpecCluster."""
    env = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_ENV.items()}
    visible = ",".join(str(i) for i in range(gpus))
    security = tls.cluster_security() if tls else None
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:
        LocalCUDACluster = None  # noqa: N806
    with dask.config.set(env):
        if LocalCUDACluster is not None:
            cluster: Any = LocalCUDACluster(
                CUDA_VISIBLE_DEVICES=visible,
                threads_per_worker=threads,
                memory_limit=memory_limit,
                dashboard_address=dashboard_address,
                resources={"GPU": 1},
                silence_logs=logging.ERROR,
                **_tls_options(security),
            )
        else:
            from distributed import Nanny, Scheduler, SpecCluster

            workers = {
                f"gpu-{i}": {
                    "cls": Nanny,
                    "options": {
                        "nthreads": threads,
                        "memory_limit": memory_limit,
                        "resources": {"GPU": 1},
                        # this worker sees only GPU i (listed first, as dask-cuda does)
                        "env": {"CUDA_VISIBLE_DEVICES": _rotate(visible, i)},
                        "silence_logs": logging.ERROR,
                        **({"security": security} if security else {}),
                    },
                }
                for i in range(gpus)
            }
            scheduler_options: dict[str, Any] = {"dashboard_address": dashboard_address}
            if security is not None:
                scheduler_options.update(protocol="tls://", security=security)
            cluster = SpecCluster(
                workers=workers,
                scheduler={"cls": Scheduler, "options": scheduler_options},
                silence_logs=logging.ERROR,
                security=security,
            )
    client = Client(cluster, security=security)
    log.info("started GPU cluster: %d workers (one per GPU)%s", gpus, " (TLS)" if tls else "")
    return ClusterHandle(client, cluster)


def _rotate(visible: str, i: int) -> str:
    devices = visible.split(",")
    return ",".join(devices[i:] + devices[:i])


def gpu_resources(client: Client) -> dict[str, float] | None:
    """``{"GPU": 1}`` when some worker of the cluster declares a GPU resource."""
    info = client.scheduler_info(n_workers=-1).get("workers", {})
    if any("GPU" in (w.get("resources") or {}) for w in info.values()):
        return {"GPU": 1}
    return None


# --- batch-system and Kubernetes profiles -------------------------------------------------------

_JOBQUEUE = {"slurm": ("SLURMCluster", "sbatch"), "pbs": ("PBSCluster", "qsub")}


def jobqueue_cluster(
    profile: JobqueueProfile, tls: TLSFiles | None = None, dashboard_address: str = ":8787"
) -> Any:
    """dask-jobqueue's SLURMCluster/PBSCluster for ``profile``, not scaled (no job submitted).

    Constructing it starts the scheduler in this process; SLURM/PBS are only needed to submit.
    """
    class_name, _ = _JOBQUEUE[profile.kind]
    try:
        import dask_jobqueue
    except ImportError:
        raise BatchsegError(
            f"cluster profile {profile.kind!r} needs dask-jobqueue: pip install 'batchseg[hpc]'"
        ) from None
    cls = getattr(dask_jobqueue, class_name)
    options: dict[str, Any] = {
        "queue": profile.queue,
        "account": profile.account,
        "walltime": profile.walltime,
        "cores": profile.cores,
        "memory": profile.memory,
        "processes": profile.processes,
        "job_name": "batchseg",
        "job_extra_directives": profile.directives(),
        "worker_extra_args": profile.worker_args(),
        "scheduler_options": {"dashboard_address": dashboard_address},
    }
    if profile.kind == "pbs" and profile.gpus:
        from dask.utils import parse_bytes
        from dask_jobqueue.pbs import pbs_format_bytes_ceil

        mem = pbs_format_bytes_ceil(parse_bytes(profile.memory))
        options["resource_spec"] = f"select=1:ncpus={profile.cores}:mem={mem}:ngpus={profile.gpus}"
    if profile.local_directory:
        options["local_directory"] = profile.local_directory
    if profile.log_directory:
        options["log_directory"] = profile.log_directory
    if tls is not None:
        # workers get --tls-ca-file/--tls-cert/--tls-key: the files must be on a shared path
        options["security"] = tls.cluster_security()
    try:
        return cls(**options)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"cluster profile {profile.kind!r}: {exc}") from None


def _jobqueue_connect(
    profile: JobqueueProfile, tls: TLSFiles | None, dashboard_address: str
) -> ClusterHandle:
    import shutil

    _, submit = _JOBQUEUE[profile.kind]
    if shutil.which(submit) is None:
        raise BatchsegError(
            f"cluster profile {profile.kind!r} submits jobs with {submit}, which is not on PATH: "
            "run batchseg on a login node of the cluster (see `batchseg cluster show`)"
        )
    cluster = jobqueue_cluster(profile, tls, dashboard_address)
    try:
        if profile.adaptive:
            cluster.adapt(
                minimum_jobs=profile.minimum_jobs or 0,
                maximum_jobs=profile.maximum_jobs or max(1, profile.minimum_jobs or 0),
            )
            what = f"adaptive {profile.minimum_jobs or 0}..{profile.maximum_jobs} jobs"
        else:
            cluster.scale(jobs=profile.jobs)
            what = f"{profile.jobs} jobs"
        client = Client(cluster, security=tls.cluster_security() if tls else None)
    except BaseException:
        cluster.close()
        raise
    log.info(
        "started %s cluster: %s of %d cores, %s, walltime %s%s; workers retire after %ss +/- %ss",
        profile.kind,
        what,
        profile.cores,
        profile.memory,
        profile.walltime,
        " (TLS)" if tls else "",
        profile.lifetime.lifetime,
        profile.lifetime.stagger,
    )
    return ClusterHandle(client, cluster, expected_threads=profile.max_threads, local=False)


def kubernetes_cluster_spec(profile: KubernetesProfile, name: str = "batchseg") -> dict[str, Any]:
    """The DaskCluster resource dask-kubernetes would create for ``profile``."""
    try:
        from dask_kubernetes.operator import make_cluster_spec
    except ImportError:
        raise BatchsegError(
            "cluster profile 'kubernetes' needs dask-kubernetes: install dask-kubernetes "
            "(pip install dask-kubernetes) and the Dask Kubernetes operator in the cluster"
        ) from None
    spec: dict[str, Any] = make_cluster_spec(
        name=name,
        image=profile.image,
        n_workers=profile.n_workers,
        resources={k: dict(v) for k, v in profile.resources.items()} or None,
    )
    if profile.namespace:
        spec.setdefault("metadata", {})["namespace"] = profile.namespace
    return spec


def _kubernetes_connect(profile: KubernetesProfile) -> ClusterHandle:
    import uuid

    spec = kubernetes_cluster_spec(profile, name=f"batchseg-{uuid.uuid4().hex[:8]}")
    from dask_kubernetes.operator import KubeCluster

    options: dict[str, Any] = {"custom_cluster_spec": spec}
    if profile.namespace:
        options["namespace"] = profile.namespace
    cluster = KubeCluster(**options)
    try:
        client = Client(cluster)
    except BaseException:
        cluster.close()
        raise
    log.info(
        "started kubernetes cluster %s: %d workers", spec["metadata"]["name"], profile.n_workers
    )
    return ClusterHandle(client, cluster, expected_threads=profile.n_workers, local=False)


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
