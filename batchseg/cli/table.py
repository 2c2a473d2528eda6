"""Rich tables for people (``query``, ``objects``): numbers never split, the footer one line.

Rich shrinks a table to the console (80 columns when piped) by folding every column, which cuts
numbers over lines, and it centres and wraps a caption to the table's width. Here numeric cells
keep their whole width (the table grows past a narrow terminal instead), text columns fold, the
footer is a plain left-aligned line, and piped output without ``COLUMNS`` is as wide as its
rows (no line of a pipe is ever folded).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from batchseg.cli.text import printable

__all__ = ["print_table"]

#: Narrowest a text column (ids, errors, uris) is folded to on a narrow terminal.
_TEXT_MIN = 12


def print_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    numeric: Sequence[bool],
    footer: str,
    *,
    console: Any = None,
) -> None:
    """Print ``rows`` (cell texts) under ``headers``, then ``footer``; ``numeric`` columns are
    right-aligned and never split. Cells and footer are shown with :func:`printable`."""
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    names = [printable(h) for h in headers]
    cells = [[printable(v) for v in row] for row in rows]
    widest = [max((cell_len(row[i]) for row in cells), default=0) for i in range(len(names))]
    out = console if console is not None else _console()
    natural = sum(max(w, cell_len(n)) + 3 for n, w in zip(names, widest, strict=True)) + 1
    if out.is_terminal or "COLUMNS" in os.environ:
        if natural > out.width:  # too wide: headers of numbers break at "_", text folds
            names = [
                _fold(n, w) if f else n for n, w, f in zip(names, widest, numeric, strict=True)
            ]
        least = 1 + sum(
            (max(w, *(cell_len(x) for x in n.split("\n"))) if f else min(w, _TEXT_MIN)) + 3
            for n, w, f in zip(names, widest, numeric, strict=True)
        )
        width = max(out.width, min(natural, least))
    else:  # a pipe without COLUMNS: every row on one line
        width = natural
    out.width = width
    table = Table()
    for name, number in zip(names, numeric, strict=True):
        table.add_column(
            Text(name),
            overflow="fold",
            no_wrap=number,
            justify="right" if number else "left",
        )
    for row in cells:
        table.add_row(*[Text(v) for v in row])
    out.print(table)
    out.print(Text(printable(footer)), soft_wrap=True)


def _fold(header: str, width: int) -> str:
    """``header`` in lines of at most ``width`` cells, broken after ``_`` where it can be."""
    lines: list[str] = []
    for part in header.replace("_", "_\n").split("\n"):
        if lines and len(lines[-1]) + len(part) <= width:
            lines[-1] += part
        else:
            lines.append(part)
    return "\n".join(lines)


def _console() -> Any:
    """A rich console that ends quietly when the reader of a pipe leaves (``| head``)."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:  # the reader left: end as every command does
            self.quiet = True
            raise BrokenPipeError

    return _Console()
