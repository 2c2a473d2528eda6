"""Fault injection for the crash tests: ``BATCHSEG_FAULT=<point>`` SIGKILLs the process there.

Points: ``planning`` (after the header scan), ``creating`` (store half-written),
``appending`` (an append's new rows and arrays written, its plan not yet published),
``before-execute``, ``after-shards-<n>`` (after n images reported), ``tiled-stitch`` (a tiled
image's tiles written, not yet stitched), ``finalise``, ``consolidating`` (a new consolidated
table half-written beside the old one), ``consolidated`` (switched to it, the old one not yet
removed).
Unset in normal use; reading one environment variable is the only cost.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)


def fault(point: str) -> None:
    """SIGKILL this process if ``BATCHSEG_FAULT`` names ``point``."""
    if os.environ.get("BATCHSEG_FAULT") == point:
        log.warning("BATCHSEG_FAULT=%s: killing the launcher", point)
        os.kill(os.getpid(), signal.SIGKILL)
