"""Start or attach to a Dask cluster (the only module, with graph.py, that imports distributed)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import dask
from distributed import Client, LocalCluster
from distributed.security import Security

from batchseg.errors import BatchsegError, UsageError

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

    @property
    def owned(self) -> bool:
        return self.cluster is not None

    @property
    def dashboard(self) -> str | None:
        return self.client.dashboard_link

    def n_threads(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def close(self) -> None:
        self.client.close()
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
) -> ClusterHandle:
    """Attach to ``scheduler``, or start an embedded cluster of worker processes.

    With ``gpus`` > 0 the embedded cluster has one worker process per GPU, each seeing only
    its own device (``CUDA_VISIBLE_DEVICES``) and declaring the worker resource ``GPU=1``.

    With the three ``tls_*`` files the link is TLS with mutual authentication and encryption
    required: to ``scheduler`` (``tls://host:port``), or inside the embedded cluster, whose
    scheduler and workers then use the same certificate and key.
    """
    tls = TLSFiles.from_options(tls_ca_file, tls_cert, tls_key)
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
        hint = (
            " (TLS: the scheduler must trust the CA that signed --tls-cert, --tls-ca-file must "
            "have signed the scheduler's certificate, and --tls-key must match --tls-cert)"
            if tls
            else ""
        )
        raise BatchsegError(f"cannot reach scheduler {scheduler}: {exc}{hint}") from None
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
