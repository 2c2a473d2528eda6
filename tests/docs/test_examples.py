"""Every example of the README and the docs runs: a doc example that fails fails the suite.

Shell blocks run their ``batchseg`` commands in-process (CliRunner), ``batchseg run`` attached
to the session cluster; Python blocks run with ``exec``; the blocks of a page share one folder
and one namespace, in order, after the page's generated data (``tests/helpers/docs_blocks.py``).
Blocks marked slow, and every shell block verbatim in bash on an embedded cluster, run in
``make docs-test`` (marker ``docs_slow``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli
from tests.helpers.docs_blocks import (
    PAGES,
    REPO,
    SETUPS,
    Block,
    on_cluster,
    page_blocks,
    shell_commands,
)

SUITE_PAGES = [p for p in PAGES if any(b.mode == "suite" for b in page_blocks(p))]
SHELL_PAGES = [
    p
    for p in PAGES
    if any(b.mode in ("suite", "slow") and b.lang == "bash" for b in page_blocks(p))
]


def run_shell_in_process(block: Block, address: str) -> None:
    """Each ``batchseg`` command of ``block``; exit 0 expected."""
    for words in shell_commands(block.code):
        assert words[0] == "batchseg", f"{block.page}:{block.line}: not a batchseg command: {words}"
        result = run_cli(*on_cluster(words, address)[1:])
        assert result.exit_code == 0, (
            f"{block.page}:{block.line}: {' '.join(words)}\n{result.output}"
        )


def test_every_runnable_block_is_run_or_marked() -> None:
    """Blocks are bash/python run here, marked slow or skipped with a reason; nothing else."""
    blocks = [b for page in PAGES for b in page_blocks(page)]
    assert len([b for b in blocks if b.mode == "suite"]) >= 5
    for block in blocks:
        if block.mode == "skip":
            assert block.reason, f"{block.page}:{block.line}: a skipped block needs its reason"
        if block.mode in ("suite", "slow"):
            assert block.lang in ("bash", "python"), f"{block.page}:{block.line}"


@pytest.mark.parametrize("page", SUITE_PAGES)
def test_page_examples(page: str, cluster_address: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    if page in SETUPS:
        SETUPS[page](tmp_path, cluster_address)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in page_blocks(page):
        if block.mode != "suite":
            continue
        if block.lang == "bash":
            run_shell_in_process(block, cluster_address)
        else:
            exec(compile(block.code, f"{page}:{block.line}", "exec"), namespace)  # noqa: S102


@pytest.mark.docs_slow
@pytest.mark.parametrize("page", SHELL_PAGES)
def test_page_shell_blocks_verbatim(page: str, tmp_path: Path) -> None:
    """The shell blocks as a reader runs them: bash, the installed command, an embedded cluster."""
    shell = [b.code for b in page_blocks(page) if b.lang == "bash"]
    if page in SETUPS and not any("batchseg demo-data" in code for code in shell):
        SETUPS[page](tmp_path, None)  # a page that makes its own data starts from nothing
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
    }
    for block in page_blocks(page):
        if block.mode in ("suite", "slow") and block.lang == "bash":
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block.code],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, f"{page}:{block.line}\n{done.stdout}\n{done.stderr}"


@pytest.mark.docs_slow
def test_site_builds_strictly(tmp_path: Path) -> None:
    """``mkdocs build --strict``: no broken link, anchor or API reference."""
    pytest.importorskip("mkdocs")
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
