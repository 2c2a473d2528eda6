"""``-v``/``-q`` are accepted before and after the command name (issue 27, item 19)."""

from __future__ import annotations

import pytest

from tests.helpers.cli import run_cli


@pytest.mark.parametrize(
    "args",
    [
        ("-q", "demo-data", "{dir}", "--count", "1"),
        ("demo-data", "{dir}", "--count", "1", "-q"),
        ("demo-data", "-q", "{dir}", "--count", "1"),
    ],
)
def test_quiet_before_or_after_the_command(tmp_path, args):
    result = run_cli(*(a.format(dir=tmp_path / "demo") for a in args))
    assert result.exit_code == 0, result.output
    assert "INFO" not in result.stderr


def test_verbose_after_the_command_gives_the_traceback(tmp_path):
    result = run_cli("status", tmp_path / "missing.zarr", "-v")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "error: no store at" in result.stderr


def test_run_accepts_them_after_its_options(tmp_path):
    run_cli("demo-data", tmp_path / "demo", "--count", "2")
    for flag in ("-q", "--quiet", "-v"):
        out = tmp_path / "out.zarr"
        result = run_cli(
            "run", tmp_path / "demo", "-m", "skimage.otsu", "-o", out, "--dry-run", flag
        )
        assert result.exit_code == 0, result.output
        assert "plan for" in result.stdout


def test_every_command_lists_them_in_its_help():
    for command in ("run", "status", "query", "mask", "evaluate"):
        result = run_cli(command, "--help")
        assert "--quiet" in result.stdout and "--verbose" in result.stdout, command
    assert "--quiet" in run_cli("cluster", "show", "--help").stdout
