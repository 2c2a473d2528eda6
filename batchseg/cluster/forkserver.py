"""The embedded cluster's worker processes come from a fork server (no Dask imported here).

With distributed's default (spawn) every worker process starts a fresh interpreter and imports
distributed, batchseg and the method's libraries itself: about 2 CPU-seconds per worker on the
2-core development machine, on the cores the launcher needs while it plans. A fork server is a
process that imports them once and forks each worker from itself. :func:`start` launches it
when ``batchseg run`` begins, so its imports overlap the launcher's own; the cluster, started
later, forks warm workers (README, Performance: start-up). It never imports torch or touches a
GPU: GPU clusters keep spawning their workers.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import threading
from collections.abc import Generator

log = logging.getLogger(__name__)

#: What the fork server imports before forking workers: distributed, the worker preload
#: (store, readers, statistics, method registry) and the classical kernels' libraries; last,
#: :mod:`.server_exit`, which makes the server itself exit at once when the launcher is gone.
PRELOAD = [
    "distributed",
    "batchseg.engine.preload",
    "batchseg.methods.kernels",
    # the libraries the kernels import on first use (batchseg.methods.lazy)
    "scipy.ndimage",
    *(f"skimage.{m}" for m in ("color", "feature", "filters", "measure", "morphology")),
    "skimage.segmentation",
    "batchseg.cluster.server_exit",
]


@contextlib.contextmanager
def children_ignore_sigint() -> Generator[None, None, None]:
    """Ignore SIGINT while worker processes (or their fork server) start: they inherit the
    ignored signal, so a terminal's Ctrl-C (sent to the whole process group) reaches only
    the launcher, which closes the cluster and prints one line, instead of every worker
    printing a KeyboardInterrupt traceback. A Ctrl-C during those seconds is dropped."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is None:  # installed outside Python: restore Python's own Ctrl-C handler
        previous = signal.default_int_handler
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def configure() -> None:
    """Make the fork server import :data:`PRELOAD` (before it first starts)."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(PRELOAD)


def start() -> None:
    """Launch the fork server now, in the background (it imports while this process goes on).

    Safe to call when no cluster follows: an idle fork server exits with this process."""
    from multiprocessing import forkserver

    configure()
    try:
        with children_ignore_sigint():
            forkserver.ensure_running()
    except OSError as exc:  # the cluster start will try (and report) again
        log.debug("fork server not started: %s", exc)
