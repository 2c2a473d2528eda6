"""Issue 18 item 6: every command's --help is whole and readable at 80 columns."""

from __future__ import annotations

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from batchseg.cli import app

COMMANDS = [
    [], ["run"], ["methods"], ["status"], ["query"], ["objects"], ["panoptic"], ["evaluate"],
    ["mask"], ["export"], ["stats"], ["report"], ["serve"], ["verify"], ["demo-data"],
    ["cluster"], ["cluster", "show"],
]  # fmt: skip


def _help(args: list[str]) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "80", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "batchseg")
def test_help_fits_80_columns_without_cut_names(args):
    text = _help(args)
    long = [line for line in text.splitlines() if len(line) > 80]
    assert not long, long
    assert "…" not in text  # no option name or word cut short
    assert "<bool>" not in text  # switches are switches, not <bool> values
    cmd = get_command(app)
    for name in args:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    for param in cmd.params:
        for opt in [*param.opts, *param.secondary_opts]:
            if opt.startswith("-"):
                assert opt in text, (opt, text)


def test_run_help_keeps_square_brackets():
    text = _help(["run"])
    assert "[cluster]" in " ".join(text.split())
    assert "--retry-failed / --no-retry-failed" in text
    assert "--threads-per-worker" in text


def test_cluster_help_keeps_square_brackets():
    assert "[cluster]" in " ".join(_help([]).split())
