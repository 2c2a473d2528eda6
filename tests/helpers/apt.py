"""Debian packages for tests (chromium, SLURM), installed with apt-get when missing.

Test processes running side by side (``pytest -n 2``) take turns: apt-get holds the dpkg lock
and fails rather than waits, so installs here go through one lock file.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
from pathlib import Path

LOCK = Path(tempfile.gettempdir()) / "batchseg-tests-apt.lock"


def apt_install(packages: list[str], log: Path, timeout: float = 900) -> None:
    """``apt-get install`` ``packages`` (one ``apt-get update`` and a retry if that fails).

    Output goes to ``log``; a RuntimeError carries its tail when the retry fails too.
    """
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    with LOCK.open("a") as lock, log.open("ab") as out:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if subprocess.run(install, stdout=out, stderr=out, env=env, timeout=timeout).returncode:
            # stale or missing package lists: refresh once and retry
            subprocess.run(["apt-get", "update", "-q"], stdout=out, stderr=out, timeout=300)
            if subprocess.run(install, stdout=out, stderr=out, env=env, timeout=timeout).returncode:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"apt-get install {' '.join(packages)} failed:\n{tail}")
