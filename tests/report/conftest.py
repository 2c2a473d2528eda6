"""Fixtures of the report tests: two small finished stores and a headless browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browser import BrowserUnavailable, ensure_chromium, launched
from tests.helpers.viewer_stores import viewer_store


@pytest.fixture(scope="session")
def objects_store(tmp_path_factory: pytest.TempPathFactory, cluster_address: str) -> Path:
    return viewer_store(tmp_path_factory, cluster_address, "objects")


@pytest.fixture(scope="session")
def classes_store(tmp_path_factory: pytest.TempPathFactory, cluster_address: str) -> Path:
    return viewer_store(tmp_path_factory, cluster_address, "classes")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    try:
        executable = ensure_chromium(tmp_path_factory.mktemp("apt") / "apt.log")
    except BrowserUnavailable as exc:
        pytest.skip(str(exc))
    with launched(executable) as b:
        yield b
