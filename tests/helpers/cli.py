"""Run the ``batchseg`` CLI in-process."""

from __future__ import annotations

import logging
from typing import Any

from click.testing import Result
from typer.testing import CliRunner

from batchseg.cli import app


def run_cli(*args: Any, catch_exceptions: bool = False) -> Result:
    """``batchseg ARGS...`` through Typer's CliRunner (arguments made strings).

    Exceptions propagate unless ``catch_exceptions``; the 'batchseg' logger, which the CLI
    points at the runner's (afterwards closed) stderr, is restored after the call.
    """
    logger = logging.getLogger("batchseg")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=catch_exceptions)
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


def build_commands_once() -> None:
    """Make typer's ``CliRunner.invoke`` build the click command of a Typer app once.

    It builds it on every call (every command's signature and string annotations evaluated:
    about 0.2 s on the 2-core machine, times the suite's thousand-odd CLI calls). No test
    changes the app after import, so the command built first stays right; a test that did
    would see the command of the first build.
    """
    import typer.testing

    build = typer.testing._get_command
    built: dict[int, tuple[Any, Any]] = {}

    def once(app: Any) -> Any:
        if id(app) not in built:  # the app is kept with it: its id is not reused
            built[id(app)] = (app, build(app))
        return built[id(app)][1]

    typer.testing._get_command = once
