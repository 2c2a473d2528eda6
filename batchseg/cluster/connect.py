"""Start or attach to a Dask cluster (the only module, with graph.py, that imports distributed)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import dask
from distributed import Client, LocalCluster
from distributed.core import Status
from distributed.diagnostics.plugin import SchedulerPlugin
from distributed.security import Security

from batchseg.cluster.profiles import (
    QUIET_DISTRIBUTED,
    AddressProfile,
    JobqueueProfile,
    KubernetesProfile,
    LocalProfile,
    Profile,
)
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
    #: Worker threads the cluster will have once its batch jobs run (they may still be queued).
    expected_threads: int = 0
    #: Whether the workers run on this machine (embedded cluster).
    local: bool = True
    #: Replaces lost batch jobs (jobqueue profiles); stopped before the cluster closes.
    watch: JobWatch | None = None

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
            if self.watch is not None:
                self.watch.stop()  # the jobs ending now are not to be replaced
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

    ``profile`` (batchseg.cluster.profiles) overrides the first arguments: ``slurm``/``pbs`` submit
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
    if os.environ.get(QUIET_DISTRIBUTED) == "1":
        # sbatch passes the launcher's environment on: not its quiet console setting
        prologue = list(dask.config.get(f"jobqueue.{profile.kind}.job-script-prologue") or [])
        options["job_script_prologue"] = [
            *prologue,
            f"unset DASK_LOGGING__DISTRIBUTED {QUIET_DISTRIBUTED}",
        ]
    if profile.interface:
        # the scheduler listens on this interface and the workers bind to it (--interface)
        options["interface"] = profile.interface
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
    watch: JobWatch | None = None
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
        watch = JobWatch(cluster, jobs=None if profile.adaptive else profile.jobs).start()
        client = Client(cluster, security=tls.cluster_security() if tls else None)
    except BaseException:
        if watch is not None:
            watch.stop()
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
    return ClusterHandle(
        client, cluster, expected_threads=profile.max_threads, local=False, watch=watch
    )


@dataclass
class _SeenJob:
    """A batch job whose workers joined the scheduler (JobWatch's record of it). Only the job
    id is kept: a reference to the job object would keep it in SpecCluster's set of created
    workers, whose close asserts that they all closed."""

    job_id: str
    gone_since: float | None = None


class JobWatch:
    """Keeps a jobqueue cluster at strength: replaces a batch job whose workers have all left.

    dask-jobqueue submits the jobs of ``cluster.scale(jobs=n)`` once. A job cancelled
    (``scancel``/``qdel``), killed by the batch system (node failure, walltime) or ended by its
    workers' ``--lifetime`` stays in the cluster's ``worker_spec``: SpecCluster drops the job
    object after ``distributed.deploy.lost-worker-timeout`` (single-process jobs only) but
    submits no other job with a fixed size; distributed's adaptive loop resubmits such a job
    under the same name, but never a job of several worker processes.

    A scheduler plugin records each job whose workers join; every ``interval`` seconds the
    watch compares the jobs with the workers connected. A job whose workers joined and have all
    been gone for ``grace`` seconds (default: the lost-worker timeout, 15 s) is removed from the
    cluster (its job cancelled, harmless when it has ended); with a fixed number of ``jobs`` the
    cluster is then scaled back to it, which submits a new job; with adaptive scaling (``jobs``
    None) the adaptive loop refills the slot (``minimum_jobs`` at least). A job resubmitted under
    the same name is a new job to the watch. Jobs whose workers never joined (queued, or failing
    before a worker starts) are left alone, so a broken job script is not resubmitted in a loop.
    """

    PLUGIN = "batchseg-job-watch"

    def __init__(
        self,
        cluster: Any,
        jobs: int | None,
        grace: float | None = None,
        interval: float = 1.0,
    ) -> None:
        from dask.utils import parse_timedelta

        if grace is None:
            grace = parse_timedelta(dask.config.get("distributed.deploy.lost-worker-timeout"))
        self.cluster = cluster
        self.jobs = jobs
        self.interval = interval
        self.grace = max(float(grace or 0.0), interval)
        #: The jobs (worker_spec names) whose workers have connected.
        self.seen: dict[str, _SeenJob] = {}
        #: Jobs removed as lost so far.
        self.lost = 0
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    @staticmethod
    def _worker_names(name: str, spec: dict[str, Any]) -> set[str]:
        """Names of the workers of job ``name`` (``name-0``, ``name-1``, ... with processes > 1)."""
        if "group" in spec:
            return {f"{name}{suffix}" for suffix in spec["group"]}
        return {str(name)}

    def joined(self, worker_name: str) -> None:
        """A worker connected (called by the scheduler plugin): its job counts as started."""
        for name, spec in list(self.cluster.worker_spec.items()):
            if worker_name in self._worker_names(name, spec):
                self._seen(name, _job_id(self.cluster.workers.get(name)))
                return

    def _seen(self, name: str, job_id: str) -> _SeenJob:
        entry = self.seen.get(name)
        if entry is None or ("?" not in (entry.job_id, job_id) and entry.job_id != job_id):
            entry = self.seen[name] = _SeenJob(job_id)
            log.info("batch job %s (%s): workers joined", job_id, name)
        elif entry.job_id == "?":
            entry.job_id = job_id
        return entry

    def check(self, now: float) -> list[tuple[str, str, Any]]:
        """Remove the jobs lost by ``now`` from the cluster: ``(name, job id, job object or
        None)`` of each."""
        workers = self.cluster.scheduler_info.get("workers", {}).values()
        connected = {str(w.get("name")) for w in workers}
        specs = dict(self.cluster.worker_spec)
        for name in list(self.seen):
            if name not in specs:  # scaled down on purpose
                del self.seen[name]
        lost = []
        for name, spec in specs.items():
            current = _job_id(self.cluster.workers.get(name))
            entry = self.seen.get(name)
            if entry is not None and "?" not in (entry.job_id, current) and current != entry.job_id:
                del self.seen[name]  # resubmitted under the same name: a new job
                entry = None
            if self._worker_names(name, spec) & connected:
                self._seen(name, current).gone_since = None
            elif entry is not None:
                if entry.gone_since is None:
                    entry.gone_since = now
                if now - entry.gone_since >= self.grace:
                    lost.append(name)
        out = []
        for name in lost:
            job_id = self.seen.pop(name).job_id
            del self.cluster.worker_spec[name]
            job = self.cluster.workers.get(name)
            if job is not None and _job_id(job) in (job_id, "?"):
                del self.cluster.workers[name]
            else:
                job = None  # SpecCluster dropped (and cancelled) it already
            out.append((name, job_id, job))
        return out

    async def _replace_lost(self) -> None:
        lost = self.check(time.monotonic())
        for name, job_id, job in lost:
            log.warning(
                "batch job %s (%s) is gone (cancelled, failed or retired); %s",
                job_id,
                name,
                "submitting a replacement"
                if self.jobs is not None
                else "adaptive scaling submits a replacement when needed",
            )
            if job is not None:
                await job.close()  # cancels the job; harmless when it has ended
                job.status = Status.closed  # dask-jobqueue's Job.close leaves it running
        self.lost += len(lost)
        if lost and self.jobs is not None and not self._stopped:
            self.cluster.scale(jobs=self.jobs)

    async def _run(self) -> None:
        while not self._stopped:
            await asyncio.sleep(self.interval)
            if self._stopped or self.cluster.status != Status.running:
                continue
            try:
                await self._replace_lost()
            except Exception:  # noqa: BLE001 - the watch must outlive a failing batch command
                log.exception("could not replace a lost batch job")

    async def _start(self) -> None:
        scheduler: Any = getattr(self.cluster, "scheduler", None)
        if hasattr(scheduler, "add_plugin"):  # the scheduler runs in this process
            scheduler.add_plugin(_JoinedPlugin(self), name=self.PLUGIN)
        self._task = asyncio.create_task(self._run())

    async def _cancel(self) -> None:
        scheduler: Any = getattr(self.cluster, "scheduler", None)
        if hasattr(scheduler, "remove_plugin"):
            with contextlib.suppress(ValueError):
                scheduler.remove_plugin(name=self.PLUGIN)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def start(self) -> JobWatch:
        """Run the watch on the cluster's event loop."""
        self.cluster.sync(self._start)
        return self

    def stop(self) -> None:
        """Stop replacing jobs (before the cluster closes and cancels them all); never raises."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self.cluster.sync(self._cancel)
        except Exception:  # noqa: BLE001 - closing goes on; the flag already stops the loop
            log.debug("stopping the job watch", exc_info=True)


class _JoinedPlugin(SchedulerPlugin):
    """Tells a JobWatch about every worker that connects, however briefly it stays."""

    def __init__(self, watch: JobWatch) -> None:
        self.watch = watch

    def add_worker(self, scheduler: Any, worker: str) -> None:
        state = scheduler.workers.get(worker)
        if state is not None:
            self.watch.joined(str(state.name))


def _job_id(job: Any) -> str:
    """The batch job id of a dask-jobqueue Job object ("?" for None or before submission)."""
    return str(getattr(job, "job_id", None) or "?")


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
