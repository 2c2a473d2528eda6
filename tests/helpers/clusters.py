"""Real Dask clusters for tests: separate scheduler/worker processes, and waiting on them."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on loopback now (all bound at once, then released)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    return free_ports(1)[0]


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    every: float = 0.2,
    context: Callable[[], str] | None = None,
) -> T:
    """Poll ``probe`` until it returns something true (returned); AssertionError after
    ``timeout`` seconds, naming ``what`` (and adding ``context()``, e.g. a log)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"\n{context()}" if context is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{extra}")
        time.sleep(every)


def wait_listening(port: int, proc: subprocess.Popen[Any], timeout: float = 60) -> None:
    """Until something accepts TCP connections on loopback ``port`` (``proc`` still running)."""

    def listening() -> bool:
        assert proc.poll() is None, f"{proc.args} ended with {proc.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    wait_for(f"a server on port {port}", listening, timeout, every=0.05)


@contextmanager
def dask_processes_cluster(
    n_workers: int = 2, nanny: bool = True, dashboard: bool = True
) -> Iterator[str]:
    """A ``dask scheduler`` and ``n_workers`` ``dask worker`` processes on loopback; the
    scheduler serves a dashboard on a free port unless ``dashboard`` is false.

    Without a ``nanny`` a killed worker stays dead, and the cluster closes in a fraction of
    the time (a nanny takes ~2 s to see its worker out).
    """
    from distributed import Client

    dask_bin = str(Path(sys.executable).with_name("dask"))
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    # workers unpickle functions of tests.* by reference: the repository on their path
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    quiet = {
        "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL,
        "env": {**os.environ, "PYTHONPATH": path},
    }  # fmt: skip
    scheduler = [dask_bin, "scheduler", "--host", "127.0.0.1", "--port", str(port)]
    scheduler += ["--dashboard-address", ":0"] if dashboard else ["--no-dashboard"]
    procs = [subprocess.Popen(scheduler, **quiet)]
    worker = [dask_bin, "worker", address, "--nthreads", "1", "--no-dashboard"]
    worker += ["--nworkers", "1"] if nanny else ["--no-nanny"]
    procs += [subprocess.Popen(worker, **quiet) for _ in range(n_workers)]
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(address, timeout="5s") as c:
                    if len(c.scheduler_info()["workers"]) == n_workers:
                        break
            except OSError:
                gc.collect()  # see batchseg.cluster.connect.connect: collect the failed Client now
            assert time.monotonic() < deadline, "dask processes did not start"
            time.sleep(0.2)
        yield address
    finally:
        # The scheduler closes its workers at once; a SIGTERM'd nanny waits ~8 s for its worker.
        try:
            with Client(address, timeout="5s", set_as_default=False) as c:
                c.shutdown()  # (a default client's shutdown leaves dask's scheduler setting)
        except Exception:  # noqa: BLE001 - not started, or already gone: terminate below
            pass
        deadline = time.monotonic() + 10
        for p in procs:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def wait_idle(address: str, timeout: float = 60) -> None:
    """Until the scheduler holds no task and no worker still runs one: shards orphaned by a
    killed launcher have ended. (The scheduler forgets a dead client's tasks at once, but a
    worker finishes a task it already runs, as "cancelled", and that task writes the store.)"""
    from distributed import Client

    def busy(dask_worker: Any) -> int:
        return len(dask_worker.state.executing) + len(dask_worker.state.long_running)

    with Client(address, timeout="10s") as c:
        deadline = time.monotonic() + timeout
        while c.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) or any(
            c.run(busy).values()
        ):
            assert time.monotonic() < deadline, "tasks still running on the cluster"
            time.sleep(0.05)
