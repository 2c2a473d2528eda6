"""Checks made before any work, by ``run`` and by ``run --dry-run`` alike."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchseg import store
from batchseg.cluster.profiles import LocalProfile
from batchseg.core.plan import Plan
from batchseg.errors import UsageError
from batchseg.io.sources import MANIFEST_SUFFIXES, ImageRef, discover, local_uri
from batchseg.io.stacks import Expansion, expand_refs, refuse_first_stack
from batchseg.job.fingerprint import fingerprint, tiling_identity
from batchseg.job.spec import JobSpec
from batchseg.methods import get_method
from batchseg.methods.base import Method
from batchseg.store import grow as growing
from batchseg.store.replace import check_replaceable, is_store_folder


@dataclass(frozen=True)
class PreparedJob:
    """A job checked before any work: its spec, method, resolved parameters, images, identity."""

    spec: JobSpec
    method: Method
    params: dict[str, Any]
    refs: Sequence[ImageRef]
    fingerprint: str
    #: whether a new store of this job gets object tables (a resumed store keeps its own)
    objects: bool
    #: stacks split into planes and the channels measured (jobs with stack options)
    stacks: Expansion | None


def prepare_job(spec: JobSpec) -> PreparedJob:
    """Everything that does not depend on an image, checked before any store or cluster exists.

    The output path is made canonical and checked for ``--overwrite``; the method's parameters
    are resolved and validated in the launcher (e.g. a checkpoint that does not fit is exit 2,
    nothing created); the collection is discovered and the job's fingerprint computed.
    """
    spec = canonical_output(spec)
    check_overwrite(spec)
    method = get_method(spec.method)
    params = method.resolve_params(spec.params)
    method.validate(params, local_workers=isinstance(spec.profile, LocalProfile))
    objects = method.objects(spec.objects)
    if spec.colors:
        _check_colours(spec.colors, method, params)
    refs = discover(spec.input, follow_links=spec.follow_links, skip=store_skipper(spec.output))
    stacks = None
    if spec.view.active:
        stacks = expand_refs(refs, spec.view)
        refs = stacks.refs
    else:
        refuse_first_stack(refs)
    fp = fingerprint(refs, method, params, tiling_identity(spec), objects, spec.view.record())
    legacy = _legacy_manifest_refs(spec, refs, fp, method, params, objects)
    if legacy is None:
        legacy = _recorded_uris(spec, refs, fp, method, params, objects)
    if legacy is not None:
        refs, fp = legacy
    return PreparedJob(spec, method, params, refs, fp, objects, stacks)


def store_skipper(output: str) -> Callable[[str], bool]:
    """What discovery leaves out of an input folder: the output ``output`` (whatever state it
    is in) and every other batchseg store; they are never images of the collection."""
    real = None if store.is_url(output) else os.path.realpath(output)

    def skip(folder: str) -> bool:
        return (real is not None and os.path.realpath(folder) == real) or is_store_folder(folder)

    return skip


def _legacy_manifest_refs(
    spec: JobSpec,
    refs: Sequence[ImageRef],
    fp: str,
    method: Method,
    params: dict[str, Any],
    objects: bool,
) -> tuple[list[ImageRef], str] | None:
    """A store written before manifest ids became relative (ids were whole absolute paths)
    resumes with its own ids: the images, method and parameters are the same job."""
    if spec.overwrite or "://" in spec.input:
        return None
    if Path(spec.input).suffix.lower() not in MANIFEST_SUFFIXES:  # only manifests' ids changed
        return None
    if not any(r.image_id != r.uri for r in refs):  # relative entries: ids as written
        return None
    try:
        if not store.exists(spec.output):
            return None
        root = store.open_group(spec.output, mode="r")
        stored = store.attributes(root).get("fingerprint")
        first = growing.first_image(root) if stored not in (None, fp) else None
    except Exception:  # noqa: BLE001 - unreadable: the run itself reports it
        return None
    if stored in (None, fp) or first is None or first[0] != first[1]:
        return None  # the same job, or a store whose ids are not whole paths
    old = sorted((r._replace(image_id=r.uri) for r in refs), key=lambda r: r.image_id)
    old_fp = fingerprint(old, method, params, tiling_identity(spec), objects, spec.view.record())
    return (old, old_fp) if old_fp == stored else None


def _recorded_uris(
    spec: JobSpec,
    refs: Sequence[ImageRef],
    fp: str,
    method: Method,
    params: dict[str, Any],
    objects: bool,
) -> tuple[list[ImageRef], str] | None:
    """A store whose uris were recorded as spelled (``/w/data/../data/a.png``, before local uris
    were normalised) resumes with its own uris when they name the input's files: the images,
    method and parameters are the same job. Read only when the fingerprints differ."""
    if spec.overwrite or "://" in spec.input:
        return None
    try:
        if not store.exists(spec.output):
            return None
        root = store.open_group(spec.output, mode="r")
        stored = store.attributes(root).get("fingerprint")
        if stored in (None, fp):
            return None
        plan = store.load_plan(root)
    except Exception:  # noqa: BLE001 - unreadable: the run itself reports it
        return None
    recorded = {i: u for s in plan.shards for i, u in zip(s.image_ids, s.uris, strict=True)}
    if len(recorded) != len(refs) or all(recorded.get(r.image_id) == r.uri for r in refs):
        return None
    old = []
    for ref in refs:
        uri = recorded.get(ref.image_id)
        if uri is None or "://" in uri or local_uri(uri) != ref.uri:
            return None
        old.append(ref._replace(uri=uri))
    old_fp = fingerprint(old, method, params, tiling_identity(spec), objects, spec.view.record())
    return (old, old_fp) if old_fp == stored else None


def _check_colours(path: str, method: Method, params: dict[str, Any]) -> None:
    """``--colors`` names classes of the method: checked before anything is created."""
    from batchseg.render import read_class_colours

    classes = method.classes(params)
    if not classes:
        raise UsageError(f"--colors is for class maps; method {method.id} makes region labels")
    read_class_colours(path, classes)


def canonical_output(spec: JobSpec) -> JobSpec:
    """``spec`` with a local output path written plainly (``STORE/.`` and ``STORE/`` become
    ``STORE``), so the path checked, locked and replaced is one and the same."""
    path = store.normalise_path(spec.output)
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
