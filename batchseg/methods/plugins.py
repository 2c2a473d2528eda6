"""Methods from entry points: the group ``batchseg.methods``, built-in methods included.

An entry point names a provider (``skimage = "batchseg.methods.classical:METHODS"``); its
object is a :class:`~batchseg.methods.base.Method`, a list of them, or a function of no
arguments returning either. batchseg declares its own methods in ``pyproject.toml`` the same
way; run from a source tree whose install metadata lacks them, :data:`BUILTIN_ENTRY_POINTS`
stands in.
A plug-in that fails to load is one warning line; a method id offered twice is refused.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from batchseg.errors import one_line
from batchseg.methods.base import Method
from batchseg.methods.origin import BATCHSEG, BUILTIN, Origin

log = logging.getLogger(__name__)

GROUP = "batchseg.methods"

#: batchseg's own entry points, as ``pyproject.toml`` declares them (a test keeps them equal).
BUILTIN_ENTRY_POINTS: dict[str, str] = {
    "skimage": "batchseg.methods.classical:METHODS",
    "torchvision": "batchseg.methods.semantic:METHODS",
    "detection": "batchseg.methods.instance:METHODS",
    "import": "batchseg.methods.imported:METHODS",
    "cellpose": "batchseg.methods.cellpose:METHODS",
    "sam": "batchseg.methods.sam:METHODS",
}


@dataclass
class Loaded:
    """What the entry points gave: methods by id, ids refused as offered twice, warnings."""

    methods: dict[str, Method] = field(default_factory=dict)
    #: id -> the packages that each offer it (none of them is used)
    ambiguous: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def entry_points() -> list[metadata.EntryPoint]:
    """The group's entry points: batchseg's own first (the install metadata's when it lists
    every one of :data:`BUILTIN_ENTRY_POINTS`, else that table: a source tree, or an install
    older than the code), then the installed plug-ins by package and name."""
    found = list(metadata.entry_points(group=GROUP))
    ours = [ep for ep in found if _package(ep) == BATCHSEG]
    others = sorted((ep for ep in found if _package(ep) != BATCHSEG), key=_sort_key)
    if {ep.name: ep.value for ep in ours} != BUILTIN_ENTRY_POINTS:
        ours = [metadata.EntryPoint(n, v, GROUP) for n, v in BUILTIN_ENTRY_POINTS.items()]
    return [*ours, *others]


def load_all(points: Iterable[metadata.EntryPoint] | None = None) -> Loaded:
    """Load every entry point's methods. A built-in id keeps its method (a plug-in offering it
    is refused with a warning); an id two plug-ins offer is refused for both."""
    out = Loaded()
    owners: dict[str, str] = {}
    for ep in entry_points() if points is None else points:
        package = _package(ep) or BATCHSEG
        try:
            methods = _methods_of(ep.load())
        except Exception as exc:  # noqa: BLE001 - a broken plug-in is a warning, never a crash
            out.warnings.append(
                f"plug-in {ep.name} ({package}) of {GROUP} was not loaded: {one_line(exc)}"
            )
            continue
        for m in methods:
            _add(out, owners, _with_origin(m, ep, package), package)
    for text in out.warnings:
        log.warning("%s", text)
    return out


def _add(out: Loaded, owners: dict[str, str], method: Method, package: str) -> None:
    """Register ``method`` of ``package`` unless its id is taken (then refuse it, naming both)."""
    mid = method.id
    if ":" in mid:
        out.warnings.append(f"method {mid} of {package} refused: ':' is for module:function ids")
        return
    if mid in out.ambiguous:
        out.ambiguous[mid].append(package)
        return
    if mid not in owners:
        owners[mid] = package
        out.methods[mid] = method
        return
    first = owners[mid]
    if first == BATCHSEG or first == package:
        out.warnings.append(
            f"method {mid} of {package} refused: {first} already provides a method {mid}"
        )
        return
    del out.methods[mid]
    out.ambiguous[mid] = [first, package]
    out.warnings.append(f"method {mid} refused: both {first} and {package} provide it")


def _methods_of(obj: Any) -> list[Method]:
    """The methods an entry point's object gives."""
    if callable(obj) and not isinstance(obj, Method):
        obj = obj()
    items = [obj] if isinstance(obj, Method) else list(obj)
    bad = [type(m).__name__ for m in items if not isinstance(m, Method)]
    if bad:
        raise TypeError(f"expected batchseg Method objects, got {bad[0]}")
    return items


def _with_origin(method: Method, ep: metadata.EntryPoint, package: str) -> Method:
    """``method`` with the origin of its entry point (batchseg's own keep theirs)."""
    if package == BATCHSEG:
        return method if method.origin == BUILTIN else dataclasses.replace(method, origin=BUILTIN)
    version = ep.dist.version if ep.dist is not None else None
    origin = Origin(package, version, entry_point=f"{ep.name} = {ep.value}")
    return dataclasses.replace(method, origin=origin)


def _package(ep: metadata.EntryPoint) -> str | None:
    return ep.dist.name if ep.dist is not None else None


def _sort_key(ep: metadata.EntryPoint) -> tuple[str, str]:
    return (_package(ep) or "", ep.name)
