"""A real headless browser for the report and web-app tests: Debian's chromium driven by
Playwright's pip package (launched with ``executable_path``; Playwright never downloads a
browser here).

:func:`ensure_chromium` installs the ``chromium`` package with apt-get when it is missing and
the tests run as root (like ``tests/helpers/slurm_cluster.py`` does for SLURM); elsewhere it
raises :class:`BrowserUnavailable` and the tests are skipped with the reason.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from tests.helpers.apt import apt_install

PACKAGE = "chromium"
NAMES = ("chromium", "chromium-browser")
#: Setting this to 0 skips the browser tests instead of installing chromium.
ENV_SWITCH = "BATCHSEG_BROWSER_TESTS"


class BrowserUnavailable(Exception):
    """No browser can run here, for a reason that is not a fault (the tests are skipped)."""


def find_chromium() -> str | None:
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def ensure_chromium(log: Path) -> str:
    """The chromium executable, installed with apt-get first when missing (as root)."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        raise BrowserUnavailable(f"{ENV_SWITCH}=0")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        raise BrowserUnavailable(
            "playwright is not installed (pip install 'batchseg[dev]')"
        ) from None
    found = find_chromium()
    if found:
        return found
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BrowserUnavailable(
            "chromium is not installed and cannot be (the test set-up installs Debian's "
            "chromium with apt-get when it runs as root)"
        )
    apt_install([PACKAGE], log)
    found = find_chromium()
    if not found:
        raise RuntimeError(f"installed {PACKAGE} but no chromium executable is on PATH")
    return found


@contextmanager
def launched(executable: str) -> Iterator[Any]:
    """A headless chromium browser (Playwright ``Browser``), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            browser.close()


def not_blank(png: bytes, min_std: float = 8.0) -> bool:
    """Whether a screenshot shows something: its pixels vary (a blank page is one colour)."""
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    return bool(pixels.std() >= min_std and np.unique(pixels).size > 16)
