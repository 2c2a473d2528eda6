"""Where a method comes from: batchseg itself, an installed plug-in, or a user's function.

A store records the origin of a method that batchseg does not ship (its provenance); the
identity of a function (module, name, package version, source hash) is part of the job's
fingerprint, so a changed function is another job on resume.
"""

from __future__ import annotations

import functools
import hashlib
import sys
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any

#: The distribution that ships the built-in methods.
BATCHSEG = "batchseg"


@dataclass(frozen=True)
class Origin:
    """The package a method comes from and, for a function, what identifies its code."""

    package: str
    version: str | None = None
    #: installed plug-ins: the entry point (``name = module:attribute``)
    entry_point: str | None = None
    #: functions (``-m module:function``): where the function lives and its source's hash
    module: str | None = None
    qualname: str | None = None
    source_sha256: str | None = None

    @property
    def builtin(self) -> bool:
        """Whether batchseg itself ships the method (workers always have it)."""
        return self.package == BATCHSEG and self.module is None

    def record(self) -> dict[str, str]:
        """The fields a store's provenance records (those that are set)."""
        fields = {
            "package": self.package,
            "version": self.version,
            "entry_point": self.entry_point,
            "module": self.module,
            "qualname": self.qualname,
            "source_sha256": self.source_sha256,
        }
        return {k: v for k, v in fields.items() if v is not None}

    def identity(self) -> dict[str, str] | None:
        """What of the origin belongs to the job's fingerprint: a function's module, name,
        package version and source hash; None for built-in and installed methods (as for
        batchseg's own, an upgrade of their package resumes the same store)."""
        return self.record() if self.module is not None else None


BUILTIN = Origin(BATCHSEG)


def distribution_of(module: str) -> tuple[str, str | None]:
    """The installed distribution (name, version) that provides top-level ``module``; the
    module's own top-level name and None where no installed distribution provides it (a
    folder on PYTHONPATH)."""
    top = module.split(".", 1)[0]
    names = _providers(tuple(sys.path)).get(top) or []
    if not names:
        return top, None
    name = names[0]
    try:
        return name, metadata.version(name)
    except metadata.PackageNotFoundError:  # pragma: no cover - metadata gone since listing
        return name, None


@functools.lru_cache(maxsize=4)
def _providers(path: tuple[str, ...]) -> dict[str, list[str]]:
    """Top-level import names -> the distributions on ``path`` that provide them, as
    :func:`importlib.metadata.packages_distributions` finds them, but from the raw RECORD
    text: the standard function builds a path object per installed file (half a million in
    an environment with torch), about 0.7 s a call where this takes a third of it, once per
    ``sys.path``."""
    found: dict[str, list[str]] = {}
    for dist in metadata.distributions(path=list(path)):
        tops = set((dist.read_text("top_level.txt") or "").split()) or _record_tops(dist)
        for top in tops:
            found.setdefault(top, []).append(dist.metadata["Name"])
    return found


def _record_tops(dist: metadata.Distribution) -> set[str]:
    """The top-level names of the Python files a distribution installs, from its RECORD."""
    tops = set()
    for line in (dist.read_text("RECORD") or "").splitlines():
        path = line.split(",", 1)[0]
        if path.endswith(".py"):
            head, sep, _ = path.partition("/")
            tops.add(head if sep else head[: -len(".py")])
    return tops


def source_hash(module: ModuleType) -> str:
    """SHA-256 of the file that defines ``module`` (the code that runs, helpers included),
    read when the method is built; a module without a source file hashes its name."""
    path = getattr(module, "__file__", None)
    digest = hashlib.sha256()
    if path:
        try:
            with open(path, "rb") as fh:
                digest.update(fh.read())
            return digest.hexdigest()
        except OSError:
            pass
    digest.update(module.__name__.encode())
    return digest.hexdigest()


def function_origin(module: ModuleType, qualname: str) -> Origin:
    """The origin of function ``qualname`` of ``module``."""
    package, version = distribution_of(module.__name__)
    return Origin(
        package=package,
        version=version,
        module=module.__name__,
        qualname=qualname,
        source_sha256=source_hash(module),
    )


def describe_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    """How two recorded function origins differ, in a few words (for a refusal)."""
    parts = []
    for key, label in (("version", "version"), ("source_sha256", "source sha256")):
        if old.get(key) != new.get(key):
            parts.append(f"{label} {_short(old.get(key))} -> {_short(new.get(key))}")
    return ", ".join(parts) or "its package or location changed"


def _short(value: Any) -> str:
    return "none" if value is None else str(value)[:12]
