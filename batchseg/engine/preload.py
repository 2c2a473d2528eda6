"""Worker preload of the embedded cluster: import the shard path, and the job's method, while
each worker process starts (``distributed`` runs this module in the worker before it joins).

Without it every worker imports the store, readers, statistics and the method's libraries in
its first task (about 1.5 s of CPU each on the 2-core development machine), after the launcher
has finished planning; with it, that happens while the launcher reads headers and plans.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from batchseg.cluster.local import METHOD_ENV
from batchseg.engine import execute  # noqa: F401 - the import is the point

log = logging.getLogger(__name__)


def dask_setup(worker: Any) -> None:
    """Import the method named by ``BATCHSEG_METHOD`` (its module and libraries)."""
    method_id = os.environ.get(METHOD_ENV)
    if not method_id:
        return
    try:
        from batchseg.methods import get_method

        get_method(method_id).warm_imports()
    except Exception as exc:  # noqa: BLE001 - the shard tasks report real errors
        log.debug("preload of %s failed: %s", method_id, exc)
