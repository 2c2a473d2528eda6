"""SLURM and PBS profiles: worker processes started as batch jobs by dask-jobqueue.

``jobqueue_cluster`` builds dask-jobqueue's SLURMCluster/PBSCluster for a profile (the scheduler
runs in this process), ``jobqueue_connect`` submits the jobs and returns a ClusterHandle, and
``JobWatch`` (with its scheduler plugin) replaces a batch job whose workers have all left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from typing import Any

import dask
from distributed import Client
from distributed.core import Status
from distributed.diagnostics.plugin import SchedulerPlugin

from batchseg.cluster.handle import ClusterHandle
from batchseg.cluster.profiles import QUIET_DISTRIBUTED, JobqueueProfile
from batchseg.cluster.tls import TLSFiles
from batchseg.errors import BatchsegError, UsageError

log = logging.getLogger(__name__)

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


def jobqueue_connect(
    profile: JobqueueProfile, tls: TLSFiles | None, dashboard_address: str
) -> ClusterHandle:
    """Submit the profile's batch jobs (scaled or adaptive) and watch them; the handle closes
    the cluster, which cancels the jobs."""
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
