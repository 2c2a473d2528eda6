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
