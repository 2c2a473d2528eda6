"""Start or attach to a Dask cluster (the only module, with graph.py, that imports distributed)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import dask
from distributed import Client, LocalCluster

from batchseg.errors import BatchsegError

log = logging.getLogger(__name__)

#: Worker environment for embedded clusters. distributed sets MALLOC_TRIM_THRESHOLD_=65536 in
#: worker processes, which slowed numpy kernels 11-45% here; None removes it.
WORKER_ENV: dict[str, Any] = {"MALLOC_TRIM_THRESHOLD_": None}


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
) -> ClusterHandle:
    """Attach to ``scheduler``, or start an embedded cluster of worker processes.

    With ``gpus`` > 0 the embedded cluster has one worker process per GPU, each seeing only
    its own device (``CUDA_VISIBLE_DEVICES``) and declaring the worker resource ``GPU=1``.
    """
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise BatchsegError(f"cannot reach scheduler {scheduler}: {exc}") from None
        log.info(
            "attached to scheduler %s (%d threads)", scheduler, sum(client.nthreads().values())
        )
        return ClusterHandle(client, None)
    if gpus > 0:
        return _gpu_cluster(gpus, threads_per_worker or 1, memory_limit, dashboard_address)
    n = workers or default_workers()
    env = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_ENV.items()}
    env.update(
        {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in (worker_env or {}).items()}
    )
    with dask.config.set(env):
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=threads_per_worker or 1,
            processes=True,
            memory_limit=memory_limit,
            dashboard_address=dashboard_address,
            silence_logs=logging.ERROR,
        )
    client = Client(cluster)
    log.info("started local cluster: %d workers x %d threads", n, threads_per_worker or 1)
    return ClusterHandle(client, cluster)


def _gpu_cluster(
    gpus: int, threads: int, memory_limit: str | int, dashboard_address: str
) -> ClusterHandle:
    """dask-cuda's LocalCUDACluster when installed, else an equivalent SpecCluster."""
    env = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_ENV.items()}
    visible = ",".join(str(i) for i in range(gpus))
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
                    },
                }
                for i in range(gpus)
            }
            cluster = SpecCluster(
                workers=workers,
                scheduler={"cls": Scheduler, "options": {"dashboard_address": dashboard_address}},
                silence_logs=logging.ERROR,
            )
    client = Client(cluster)
    log.info("started GPU cluster: %d workers (one per GPU)", gpus)
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
