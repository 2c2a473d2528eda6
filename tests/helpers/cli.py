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
