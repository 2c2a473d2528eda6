"""Installed plug-ins: the entry-point group ``batchseg.methods`` (built-in methods included),
listed with their package; a broken plug-in is one warning line, a duplicate id is refused."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from batchseg.errors import UsageError
from batchseg.methods import all_methods, get_method
from batchseg.methods.plugins import BUILTIN_ENTRY_POINTS, GROUP, entry_points, load_all
from batchseg.methods.registry import plugin_warnings
from tests.helpers.user_methods import on_path, unique_name, write_package

ROOT = Path(__file__).resolve().parents[2]

PLUGIN = """
import numpy as np

from batchseg.methods import Method, Param


def _bright(image, level):
    grey = image.mean(axis=2) if image.ndim == 3 else image
    return (grey > level).astype(np.uint8)


def _method(method_id):
    return Method(
        id=method_id,
        kind="classes",
        kernel=_bright,
        description="test plug-in: grey above a level",
        params=(Param("level", float, 127.0),),
        class_names=lambda params: ["dark", "bright"],
        family="threshold",
    )


METHODS = [_method("fake.bright")]
OTSU = _method("skimage.otsu")  # a built-in id: refused
SAME = _method("fake.twice")  # offered by two packages: refused for both
"""


def write_plugins(site: Path) -> tuple[str, str, str]:
    """Three installed packages: a working plug-in, a broken one and one offering ids that
    are taken."""
    good, broken, other = (unique_name(p) for p in ("fakeplug", "brokenplug", "otherplug"))
    entries = {"fake": f"{good}.methods:METHODS", "twice": f"{good}.methods:SAME"}
    write_package(site, good, {"methods": PLUGIN}, version="1.2", entry_points=entries)
    write_package(
        site, broken, {"methods": "raise ImportError('needs libfoo')\n"}, version="0.1",
        entry_points={"broken": f"{broken}.methods:METHODS"},
    )  # fmt: skip
    write_package(
        site, other, {}, version="3.0",
        entry_points={"otsu": f"{good}.methods:OTSU", "twice": f"{good}.methods:SAME"},
    )  # fmt: skip
    return good, broken, other


def test_pyproject_declares_the_builtin_entry_points():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"][GROUP] == BUILTIN_ENTRY_POINTS


def test_builtin_methods_load_through_entry_points():
    points = entry_points()
    assert {ep.name: ep.value for ep in points[: len(BUILTIN_ENTRY_POINTS)]} == (
        BUILTIN_ENTRY_POINTS
    )
    loaded = load_all(points)
    assert {"skimage.otsu", "kmeans", "torchscript"} <= set(loaded.methods)
    assert all(m.origin.builtin for m in loaded.methods.values())
    assert [m.id for m in all_methods()] == sorted(loaded.methods)


def test_installed_plugin_is_listed_and_segments(tmp_path):
    good, broken, other = write_plugins(tmp_path / "site")
    with on_path(tmp_path / "site"):
        method = get_method("fake.bright")
        assert (method.origin.package, method.origin.version) == (good, "1.2")
        assert method.origin.entry_point == f"fake = {good}.methods:METHODS"
        image = np.full((4, 5), 200, np.uint8)
        (out,) = method.runner(method.resolve_params()).segment_batch([image])
        assert (out.labels == 1).all()
        assert get_method("skimage.otsu").origin.builtin  # the built-in keeps its id
        with pytest.raises(UsageError, match=f"fake.twice is provided by {good} and {other}"):
            get_method("fake.twice")
        warnings = plugin_warnings()
    assert [w for w in warnings if broken in w] == [
        f"plug-in broken ({broken}) of batchseg.methods was not loaded: ImportError: needs libfoo"
    ]
    assert f"method skimage.otsu of {other} refused: batchseg already provides" in str(warnings)
    with pytest.raises(UsageError, match="unknown method 'fake.bright'"):
        get_method("fake.bright")  # gone with its folder


def test_methods_command_lists_plugins_and_survives_a_broken_one(tmp_path):
    good, broken, _ = write_plugins(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)])}
    proc = subprocess.run(
        [sys.executable, "-m", "batchseg.cli", "methods"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("fake.bright "))
    assert line.endswith(f"(from {good})")
    assert "skimage.otsu  [threshold" in proc.stdout
    warnings = [x for x in proc.stderr.splitlines() if broken in x]
    assert len(warnings) == 1 and "WARNING" in warnings[0] and "needs libfoo" in warnings[0]
    assert "Traceback" not in proc.stderr


def test_source_tree_without_metadata_falls_back_to_the_builtin_table(monkeypatch):
    monkeypatch.setattr(metadata, "entry_points", lambda **kw: [])
    assert [(ep.name, ep.value) for ep in entry_points()] == list(BUILTIN_ENTRY_POINTS.items())
