"""Safe human-readable output: control characters in names never reach the terminal raw.

File names (and so image ids, uris and the error messages that quote them) may hold terminal
escape sequences, newlines or bytes that are not UTF-8. Every line the CLI writes for people
(tables, CSV, plain lines, error lines, log lines) goes through :func:`printable`; JSON output
escapes them by itself.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import typer

from batchseg.words import plural

__all__ = [
    "FailureGroup",
    "PrintableFormatter",
    "echo",
    "failure_lines",
    "group_failures",
    "plural",
    "printable",
]

# C0 controls (newline and tab included: one value, one line), DEL, C1 controls, the Unicode
# bidirectional overrides and isolates (they reorder what a terminal shows), and lone
# surrogates (bytes of a file name that are not UTF-8, from os.fsdecode)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape of the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def printable(text: object) -> str:
    """``text`` with every control character written as a visible escape (``\\x1b``)."""
    return _UNSAFE.sub(_escape, str(text))


def echo(text: object = "", *, err: bool = False, nl: bool = True) -> None:
    """``typer.echo`` of :func:`printable` text (one line: embedded newlines are escaped)."""
    typer.echo(printable(text), err=err, nl=nl)


class PrintableFormatter(logging.Formatter):
    """Log formatter that escapes control characters in the message (not in tracebacks)."""

    def format(self, record: logging.LogRecord) -> str:
        safe = logging.makeLogRecord(record.__dict__)
        safe.msg, safe.args = printable(record.getMessage()), None
        return super().format(safe)


#: Groups of failures shown by ``status`` and ``verify`` without ``--all``, and ids per group.
MAX_GROUPS = 20
IDS_PER_GROUP = 5


@dataclass
class FailureGroup:
    """Failures that share one error message (ids of the image stripped from it)."""

    message: str
    count: int = 0
    image_ids: list[str] = field(default_factory=list)


def _key(image_id: str, error: str) -> str:
    """The error without the image's own id (most messages quote the file)."""
    if image_id and len(image_id) > 2:
        error = error.replace(image_id, "<image>")
    return re.sub(r"\S*<image>\S*", "<image>", error)


def group_failures(
    failures: Iterable[tuple[str, str]], *, ids_per_group: int = IDS_PER_GROUP
) -> list[FailureGroup]:
    """``(image_id, error)`` pairs grouped by error message, largest group first."""
    groups: dict[str, FailureGroup] = {}
    for image_id, error in failures:
        key = _key(image_id, error)
        group = groups.get(key)
        if group is None:
            group = groups[key] = FailureGroup(key)
        group.count += 1
        if len(group.image_ids) < ids_per_group:
            group.image_ids.append(image_id)
    return sorted(groups.values(), key=lambda g: (-g.count, g.message))


def failure_lines(
    failures: Sequence[tuple[str, str]],
    *,
    label: str,
    show_all: bool,
    command: str,
) -> list[str]:
    """Lines listing ``failures`` (``label`` e.g. "failed"): every one with ``show_all`` or when
    few, else grouped by message with counts and the first ids (``command`` lists them all)."""
    if show_all or len(failures) <= IDS_PER_GROUP:
        return [f"  {label}  {image_id}: {error}" for image_id, error in failures]
    groups = group_failures(failures)
    lines = []
    for g in groups[:MAX_GROUPS]:
        more = f" (and {g.count - len(g.image_ids)} more)" if g.count > len(g.image_ids) else ""
        lines.append(f"  {g.count} {label}: {g.message}")
        lines.append(f"    {', '.join(g.image_ids)}{more}")
    if len(groups) > MAX_GROUPS:
        rest = sum(g.count for g in groups[MAX_GROUPS:])
        lines.append(
            f"  ... {len(groups) - MAX_GROUPS} more kinds of error ({plural(rest, 'image')})"
        )
    kinds = plural(len(groups), "group")
    lines.append(f"  ({len(failures)} {label} in {kinds}; `{command} --all` lists each)")
    return lines
