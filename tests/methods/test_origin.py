"""Which installed distribution provides a module: the same answer as the standard library's
``packages_distributions``, without building a path object per installed file."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from batchseg.methods.origin import distribution_of


def _sorted(mapping: dict[str, list[str]]) -> dict[str, list[str]]:
    return {top: sorted(names) for top, names in mapping.items()}


def test_providers_equal_the_standard_library() -> None:
    from batchseg.methods import origin

    assert _sorted(origin._providers(tuple(sys.path))) == _sorted(metadata.packages_distributions())


def test_installed_module_folder_module_and_a_new_path(tmp_path: Path, monkeypatch) -> None:
    assert distribution_of("skimage.filters") == ("scikit-image", metadata.version("scikit-image"))
    assert distribution_of("no_such_module_here") == ("no_such_module_here", None)
    # a distribution that appears on a new sys.path entry is found (the cache is per path)
    info = tmp_path / "userpkg_xyz-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: userpkg-xyz\nVersion: 1.2\n")
    (info / "RECORD").write_text("userpkg_xyz/__init__.py,,\nuserpkg_xyz/seg.py,,\n")
    assert distribution_of("userpkg_xyz.seg") == ("userpkg_xyz", None)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert distribution_of("userpkg_xyz.seg") == ("userpkg-xyz", "1.2")
