"""Shared fixtures: seeded synthetic collections, one real distributed cluster, one trained model.

Helpers (image makers, CLI runner, store comparison, cluster processes) live in
``tests/helpers/``; this file holds fixtures, and the two hooks that order the suite for
``make test`` (slowest files first; torch files in one test process).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cli import build_commands_once
from tests.helpers.clusters import dask_processes_cluster
from tests.helpers.images import write_collection
from tests.helpers.suite_order import SLOW_FILES, TORCH_FILES
from tests.helpers.viewer_stores import viewer_store


def pytest_configure(config: pytest.Config) -> None:
    """CliRunner builds batchseg's click command once per test process, not per call; under
    pytest-xdist each test process computes on one thread (torch, BLAS): two processes and
    their cluster workers share the cores, and torch's spinning thread pools slowed its
    tests 4x when they fought for them."""
    build_commands_once()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of ``SLOW_FILES`` (tests/helpers/suite_order.py) first, in that order (a
    stable sort: tests within a file, and all other files, keep their order)."""
    rank = {name: i for i, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` with the files of ``TORCH_FILES`` as one unit of work."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class TorchTogether(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            return "torch" if path in TORCH_FILES else path

    return TorchTogether(config, log)


@pytest.fixture(autouse=True)
def _restore_batchseg_logger() -> Iterator[None]:
    """The CLI points the 'batchseg' logger at CliRunner's (later closed) stderr: undo it."""
    logger = logging.getLogger("batchseg")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    """24 small PNGs (three shapes, colour and grey) in ``tmp_path/images``."""
    folder = tmp_path / "images"
    write_collection(folder)
    return folder


@pytest.fixture(scope="session")
def cluster_address() -> Iterator[str]:
    """One real cluster for the whole session (attached with --scheduler): ``dask scheduler``
    and two single-threaded ``dask worker`` processes (no nannies) on loopback.

    Separate processes keep the scheduler's threads out of this one, where the launcher under
    test runs (an in-process LocalCluster scheduler competes with it for the GIL). Tests that
    kill workers, install plugins or need another shape of cluster start their own.
    """
    with dask_processes_cluster(2, nanny=False) as address:
        yield address


@pytest.fixture(scope="session")
def lraspp_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str]:
    """(model in eval mode, state_dict path): the LR-ASPP test model, trained once per session."""
    pytest.importorskip("torchvision")
    from tests.helpers.torch_models import train_lraspp

    return train_lraspp(tmp_path_factory.mktemp("lraspp") / "lraspp3.pth")


@pytest.fixture(scope="session")
def objects_store(tmp_path_factory: pytest.TempPathFactory, cluster_address: str) -> Path:
    """A small finished skimage.objects store (report and web-app tests)."""
    return viewer_store(tmp_path_factory, cluster_address, "objects")


@pytest.fixture(scope="session")
def classes_store(tmp_path_factory: pytest.TempPathFactory, cluster_address: str) -> Path:
    """A small finished class-map store (report and web-app tests)."""
    return viewer_store(tmp_path_factory, cluster_address, "classes")


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium (Debian's, installed when missing and root; else the tests skip)."""
    from tests.helpers.browser import BrowserUnavailable, ensure_chromium, launched

    try:
        executable = ensure_chromium(tmp_path_factory.mktemp("apt") / "apt.log")
    except BrowserUnavailable as exc:
        pytest.skip(str(exc))
    with launched(executable) as b:
        yield b
