"""The embedded cluster: worker processes on this machine (LocalCluster, or one per GPU).

Everything it opens listens on loopback only: the scheduler, the workers and the dashboard
(``127.0.0.1:8787``, or a free port when 8787 is taken), unless a dashboard address is asked for
(``dashboard_address`` in a local ``[cluster]`` table).
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import dask
from distributed import Client, LocalCluster

from batchseg.cluster import forkserver
from batchseg.cluster.handle import ClusterHandle
from batchseg.cluster.tls import TLSFiles, tls_options

log = logging.getLogger(__name__)

#: Worker environment for embedded clusters. distributed sets MALLOC_TRIM_THRESHOLD_=65536 in
#: worker processes, which slowed numpy kernels 11-45% here; None removes it.
WORKER_ENV: dict[str, Any] = {"MALLOC_TRIM_THRESHOLD_": None}

#: Run in every embedded worker as it starts: imports the job's method (named by the worker
#: environment variable METHOD_ENV) while the launcher plans.
PRELOAD = "batchseg.engine.preload"
METHOD_ENV = "BATCHSEG_METHOD"

#: The embedded cluster listens here only (its scheduler, workers and dashboard).
LOOPBACK = "127.0.0.1"
#: The dashboard's usual port, taken when it is free.
DASHBOARD_PORT = 8787


def port_free(host: str, port: int) -> bool:
    """Whether a TCP server could listen on ``host:port`` now (as tornado would bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:  # in use, or not allowed: the system picks a port instead
            return False
    return True


def choose_dashboard(asked: str | None = None, host: str = LOOPBACK) -> str:
    """Where a dashboard listens: ``asked`` when given, else ``host`` (loopback by default;
    "" is every interface) on port 8787, or on a free port chosen by the system when 8787 is
    taken (so distributed never warns that the port is in use)."""
    if asked is not None:
        return asked
    port = DASHBOARD_PORT if port_free(host or "0.0.0.0", DASHBOARD_PORT) else 0
    return f"{host}:{port}"


def _pre_spawn(env: dict[str, Any]) -> dict[str, Any]:
    return {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in env.items()}


def _forkserver() -> dict[str, Any]:
    """Dask config that makes workers fork from batchseg's fork server (:mod:`.forkserver`)."""
    from distributed import utils

    forkserver.configure()
    # distributed would otherwise replace the preload list with its own (importing every
    # optional package it knows, pandas included, in this process first); pinned by
    # tests/cluster/test_local.py
    if hasattr(utils, "_forkserver_preload_set"):
        utils._forkserver_preload_set = True  # noqa: SLF001
    return {"distributed.worker.multiprocessing-method": "forkserver"}


def start_local(
    n_workers: int,
    threads_per_worker: int,
    *,
    memory_limit: str | int = "auto",
    dashboard: str | None = None,
    worker_env: dict[str, str] | None = None,
    tls: TLSFiles | None = None,
) -> ClusterHandle:
    """A LocalCluster of ``n_workers`` processes, each with ``threads_per_worker`` threads;
    each worker runs :data:`PRELOAD` as it starts."""
    env = _pre_spawn({**WORKER_ENV, **(worker_env or {})})
    security = tls.cluster_security() if tls else None
    with dask.config.set({**env, **_forkserver()}):
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            host=LOOPBACK,
            memory_limit=memory_limit,
            dashboard_address=choose_dashboard(dashboard),
            # the workers share the launcher's terminal: task errors come back per image, and a
            # worker that outlives the scheduler by a heartbeat (Ctrl-C) must not print a trace
            silence_logs=logging.CRITICAL,
            preload=[PRELOAD],
            **tls_options(security),
        )
    client = Client(cluster, security=security)
    log.info(
        "started local cluster: %d workers x %d threads%s",
        n_workers,
        threads_per_worker,
        " (TLS)" if tls else "",
    )
    return ClusterHandle(client, cluster)


def start_gpu(
    gpus: int,
    threads: int,
    *,
    memory_limit: str | int = "auto",
    dashboard: str | None = None,
    tls: TLSFiles | None = None,
) -> ClusterHandle:
    """One worker process per GPU: dask-cuda's LocalCUDACluster when installed, else an
    equivalent SpecCluster. Each worker sees only its own device first (``CUDA_VISIBLE_DEVICES``)
    and declares the worker resource ``GPU=1``."""
    env = _pre_spawn(WORKER_ENV)
    visible = ",".join(str(i) for i in range(gpus))
    security = tls.cluster_security() if tls else None
    address = choose_dashboard(dashboard)
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:
        LocalCUDACluster = None  # noqa: N806
    with dask.config.set(env):
        if LocalCUDACluster is not None:
            cluster: Any = LocalCUDACluster(
                CUDA_VISIBLE_DEVICES=visible,
                threads_per_worker=threads,
                host=LOOPBACK,
                memory_limit=memory_limit,
                dashboard_address=address,
                resources={"GPU": 1},
                silence_logs=logging.ERROR,
                **tls_options(security),
            )
        else:
            cluster = _gpu_spec_cluster(gpus, threads, memory_limit, address, security)
    client = Client(cluster, security=security)
    log.info("started GPU cluster: %d workers (one per GPU)%s", gpus, " (TLS)" if tls else "")
    return ClusterHandle(client, cluster)


def _gpu_spec_cluster(
    gpus: int, threads: int, memory_limit: str | int, dashboard: str, security: Any
) -> Any:
    from distributed import Nanny, Scheduler, SpecCluster

    visible = [str(i) for i in range(gpus)]
    workers = {
        f"gpu-{i}": {
            "cls": Nanny,
            "options": {
                "host": LOOPBACK,
                "nthreads": threads,
                "memory_limit": memory_limit,
                "resources": {"GPU": 1},
                # this worker sees only GPU i (listed first, as dask-cuda does)
                "env": {"CUDA_VISIBLE_DEVICES": ",".join(visible[i:] + visible[:i])},
                "silence_logs": logging.ERROR,
                **({"security": security} if security else {}),
            },
        }
        for i in range(gpus)
    }
    scheduler: dict[str, Any] = {"host": LOOPBACK, "dashboard_address": dashboard}
    if security is not None:
        scheduler.update(protocol="tls://", security=security)
    return SpecCluster(
        workers=workers,
        scheduler={"cls": Scheduler, "options": scheduler},
        silence_logs=logging.ERROR,
        security=security,
    )
