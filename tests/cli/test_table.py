"""Issue 27 item 23: rich tables never split a number over lines nor wrap their footer
(a narrow terminal, ``COLUMNS=80``, and piped output)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console

from batchseg.cli.table import print_table

HEADERS = ["image_id", "status", "n_regions", "fraction_building", "area_mean", "pixels_car"]
NUMERIC = [False, False, True, True, True, True]
FOOTER = "5 of 1234 matching images (99999 in store); all columns: --columns '*'"


def _rows(n: int = 5) -> list[list[str]]:
    rng = np.random.default_rng(1)
    return [
        [
            f"folder/sub/image_{i:04d}_with_a_rather_long_name.png",
            "done",
            str(int(rng.integers(10**6, 10**7))),
            f"{rng.random():.4g}",
            f"{rng.random() * 1e5:.4g}",
            str(int(rng.integers(10**8, 10**9))),
        ]
        for i in range(n)
    ]


def _render(rows: list[list[str]], *, terminal: bool, width: int | None) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=terminal, width=width, color_system=None)
    print_table(HEADERS, rows, NUMERIC, FOOTER, console=console)
    return buffer.getvalue()


def _cells(text: str) -> set[str]:
    """Every cell text of the table's body lines."""
    found = set()
    for line in text.splitlines():
        if line.startswith("│"):
            found.update(c.strip() for c in line.strip("│").split("│"))
    return found


def _assert_whole_numbers(text: str, rows: list[list[str]]) -> None:
    cells = _cells(text)
    for row in rows:
        for value, number in zip(row, NUMERIC, strict=True):
            if number:
                assert value in cells  # whole, on one line


@pytest.mark.parametrize("width", [40, 80])
def test_numbers_never_split_on_a_narrow_terminal(width: int) -> None:
    rows = _rows()
    text = _render(rows, terminal=True, width=width)
    _assert_whole_numbers(text, rows)
    footer = [line for line in text.splitlines() if "matching images" in line]
    assert footer == [FOOTER]  # one line, left-aligned, not centred or wrapped


def test_a_table_that_fits_is_not_folded() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=80, color_system=None)
    rows = [["a.png", "12"], ["b.png", "7"]]
    print_table(["image_id", "n_regions"], rows, [False, True], "2 of 2", console=console)
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 7 and max(len(line) for line in lines) < 80  # header, 2 rows, footer


def test_piped_output_keeps_every_row_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    rows = _rows()
    text = _render(rows, terminal=False, width=None)
    body = [line for line in text.splitlines() if line.startswith("│")]
    assert len(body) == len(rows)  # no row folded over lines
    for line, row in zip(body, rows, strict=True):
        assert [c.strip() for c in line.strip("│").split("│")] == row
    assert text.splitlines()[-1] == FOOTER


def test_columns_80_when_piped_splits_no_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    rows = _rows()
    text = _render(rows, terminal=False, width=None)
    _assert_whole_numbers(text, rows)
    assert text.splitlines()[-1] == FOOTER
