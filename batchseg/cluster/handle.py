"""The connected client of a job and, when batchseg started it, its cluster."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from distributed import Client

if TYPE_CHECKING:
    from batchseg.cluster.jobqueue import JobWatch


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
        """The dashboard's link when the scheduler serves one (None otherwise: a scheduler
        started without one must not be shown another process's usual port)."""
        try:
            services = self.client.scheduler_info(n_workers=0).get("services") or {}
            if not services.get("dashboard"):
                return None
            link = self.client.dashboard_link
        except Exception:  # noqa: BLE001 - a link to print, never a reason to fail
            return None
        if self.cluster is None and not _serves_status(self.client):
            return None  # an HTTP server for /health and /metrics only (``--no-dashboard``)
        return str(link) if link else None

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


def _serves_status(client: Client) -> bool:
    """Whether the scheduler's HTTP server has the dashboard's ``/status`` page (it always runs
    one, reported as "dashboard", for ``/health`` and ``/metrics``); True when unknown."""

    def status_route(dask_scheduler: Any) -> bool:  # pickled by value: runs on the scheduler
        rules = dask_scheduler.http_application.wildcard_router.rules
        patterns = [getattr(getattr(r.matcher, "regex", None), "pattern", "") for r in rules]
        return any(p.endswith("/status$") for p in patterns)

    try:
        return bool(client.run_on_scheduler(status_route))
    except Exception:  # noqa: BLE001 - running code on the scheduler may be refused
        return True
