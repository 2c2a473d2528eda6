"""A user's own methods for tests: a package written into a folder (optionally with install
metadata and ``batchseg.methods`` entry points), put on this process's path and the workers'."""

from __future__ import annotations

import importlib
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def unique_name(prefix: str) -> str:
    """A package name no other test uses (modules stay imported for the whole session)."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def write_package(
    site: Path,
    package: str,
    modules: dict[str, str],
    *,
    version: str | None = None,
    entry_points: dict[str, str] | None = None,
) -> Path:
    """``site/package/<module>.py`` for each of ``modules`` (name -> source); with a
    ``version``, also ``site/<package>-<version>.dist-info`` (what ``pip install`` leaves),
    declaring ``entry_points`` in the group ``batchseg.methods``. Returns ``site``."""
    folder = site / package
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text("")
    for name, source in modules.items():
        (folder / f"{name}.py").write_text(source)
    if version is not None:
        info = site / f"{package}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n"
        )
        (info / "top_level.txt").write_text(f"{package}\n")
        lines = [f"{k} = {v}" for k, v in (entry_points or {}).items()]
        (info / "entry_points.txt").write_text("[batchseg.methods]\n" + "\n".join(lines) + "\n")
    return site


@contextmanager
def on_path(site: Path) -> Iterator[None]:
    """``site`` first on this process's ``sys.path`` and ``PYTHONPATH`` (what worker processes
    started meanwhile inherit); the method registry reloads its entry points on entry and exit."""
    from batchseg.methods.registry import refresh

    saved = os.environ.get("PYTHONPATH")
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), saved) if p)
    importlib.invalidate_caches()
    refresh()
    try:
        yield
    finally:
        sys.path.remove(str(site))
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
        importlib.invalidate_caches()
        refresh()
