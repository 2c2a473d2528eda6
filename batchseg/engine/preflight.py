"""Before any image: a method batchseg does not ship must load on the workers.

A user's function (``module:name``) or an installed plug-in is imported by the workers from
their own environment. One task on one worker loads it by id and reports its origin; a
cluster without the package fails the job at once (UsageError, one line naming the worker)
instead of failing every image, and a worker running other code than the launcher's (another
version, or an edited function not yet reloaded there) is refused the same way.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from distributed import Client, get_worker

from batchseg.errors import UsageError, one_line
from batchseg.methods.base import Method
from batchseg.methods.origin import describe_change

log = logging.getLogger(__name__)


def method_origin_here(method_id: str) -> tuple[str, dict[str, Any] | str]:
    """(this worker's address, the method's recorded origin) or (address, why it failed)."""
    try:
        address = str(get_worker().address)
    except ValueError:  # not in a worker (a test calling it directly)
        address = "this process"
    try:
        from batchseg.methods import get_method

        return address, get_method(method_id).origin.record()
    except Exception as exc:  # noqa: BLE001 - reported by the launcher as one line
        return address, one_line(exc)


def check_method(client: Client, method: Method, resources: dict[str, float] | None = None) -> None:
    """Load ``method`` on one worker (one with ``resources``, when given) before any image;
    UsageError when it cannot be loaded there or is not the launcher's. Built-in methods
    need no check (every worker has batchseg)."""
    if method.origin.builtin:
        return
    future = client.submit(
        method_origin_here,
        method.id,
        key=f"preflight-{uuid.uuid4().hex[:8]}",
        pure=False,
        resources=resources,
    )
    address, found = future.result()
    if isinstance(found, str):
        detail = found.removeprefix(f"method {method.id}: ")
        if detail.startswith("unknown method"):  # a plug-in whose package is not there
            detail = f"its package {method.origin.package} is not installed there"
        raise UsageError(f"method {method.id} cannot be loaded on worker {address}: {detail}")
    mine = method.origin.record()
    if found != mine:
        raise UsageError(
            f"worker {address} has another {method.id} than this machine "
            f"({describe_change(found, mine)}); install the same code on the workers "
            "(and restart them after a change)"
        )
    log.debug("method %s loads on worker %s", method.id, address)
