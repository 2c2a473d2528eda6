"""Checks made before any work, by ``run`` and by ``run --dry-run`` alike."""

from __future__ import annotations

import os
from typing import Any

from batchseg import store
from batchseg.job.plan import Plan
from batchseg.job.spec import JobSpec
from batchseg.methods.base import Method
from batchseg.store.replace import check_replaceable


def canonical_output(spec: JobSpec) -> JobSpec:
    """``spec`` with a local output path written plainly (``STORE/.`` and ``STORE/`` become
    ``STORE``), so the path checked, locked and replaced is one and the same."""
    path = store.normalise(spec.output)
    if store.is_url(path):
        return spec
    clean = os.path.normpath(path)
    if os.path.realpath(clean) != os.path.realpath(path):  # "link/..": the OS resolves it
        clean = os.path.realpath(path)
    return spec if clean == spec.output else spec.replace(output=clean)


def check_overwrite(spec: JobSpec) -> None:
    """With ``--overwrite``: refuse (UsageError) to replace what is not a batchseg store."""
    if spec.overwrite:
        check_replaceable(spec.output, inputs=[spec.input])


def check_tiling(plan: Plan, method: Method, params: dict[str, Any]) -> None:
    """A clear error before any work when the plan tiles images this method cannot tile."""
    if any(b.tile for b in plan.buckets):
        from batchseg.methods.tiled import spec_for

        spec_for(method, params)
