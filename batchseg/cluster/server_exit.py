"""Imported by the fork server only (the last of its preloads, :data:`.forkserver.PRELOAD`).

When the launcher has gone, the fork server exits through ``SystemExit`` and Python would tear
down every module it preloaded (distributed, zarr, scikit-image: about 0.4 s here), all the
while holding the launcher's stdout and stderr open, so a caller reading them waits. This
registers, last, an exit handler that ends the process at once. The fork server has nothing
to clean up by then (its workers are gone); forked workers never run exit handlers (they end
with ``os._exit``), so they are not affected.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys


def _exit_now() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


atexit.register(_exit_now)
