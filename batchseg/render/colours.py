"""Colours: class palettes, region colours, and colour tables checked wherever they come from.

A colour is three integers 0-255. Tables given by users (``--colors FILE.csv``) are checked
before anything is written; tables read back from a store are checked again
(:func:`stored_colours`), and a bad one falls back to the defaults with one warning.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from batchseg.errors import UsageError

log = logging.getLogger(__name__)

_GOLDEN = 0.6180339887498949
_HEX = re.compile(r"#([0-9a-fA-F]{2})([0-9a-fA-F]{2})([0-9a-fA-F]{2})")
_DECIMAL = re.compile(r"[0-9]{1,3}")
_warned: set[str] = set()  # stores whose bad colour table was reported (one warning each)

# Well-separated colours for the first classes (after black for class 0).
_DISTINCT: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (255, 225, 25),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 250, 200),
    (128, 0, 0),
    (170, 255, 195),
    (128, 128, 0),
    (255, 215, 180),
    (0, 0, 128),
    (128, 128, 128),
    (255, 255, 255),
)


def region_colours(ids: np.ndarray | Sequence[int]) -> np.ndarray:
    """Deterministic colour for each id, shape ``(len(ids), 3)`` uint8; id 0 is black.

    Hue steps by the golden ratio per id, so consecutive ids are far apart in hue;
    saturation and value vary a little on slower cycles so ids a hue-turn apart differ.
    """
    ids = np.asarray(ids, dtype=np.int64).ravel()
    f = ids.astype(np.float64)
    hue = np.mod(f * _GOLDEN, 1.0)
    sat = 0.65 + 0.35 * np.mod(f * 0.3819660112501051 * 0.5, 1.0)
    val = 0.80 + 0.20 * np.mod(f * 0.7548776662466927, 1.0)
    rgb = _hsv_to_rgb(hue, sat, val)
    out = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    out[ids == 0] = 0
    return out


def palette(n: int, class_colours: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """A colour table of ``n`` entries, shape ``(n, 3)`` uint8, indexed by class id.

    Without ``class_colours``: entry 0 is black, then a fixed set of well-separated
    colours, then golden-ratio colours. With ``class_colours``: those colours first
    (validated: three integers 0-255 each), extended the same way if ``n`` is larger.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise UsageError(f"palette size must be a non-negative integer, not {n!r}")
    n = int(n)
    given = colour_table(class_colours) if class_colours is not None else None
    out = np.zeros((n, 3), dtype=np.uint8)
    start = 0
    if given is not None:
        start = min(n, len(given))
        out[:start] = given[:start]
    for i in range(start, min(n, len(_DISTINCT) + 1)):
        out[i] = (0, 0, 0) if i == 0 else _DISTINCT[i - 1]
    rest = max(start, len(_DISTINCT) + 1)
    if rest < n:
        out[rest:] = region_colours(np.arange(rest, n))
    return out


def default_class_colours(names: Sequence[str]) -> list[tuple[int, int, int]]:
    """One colour per class name, in order: ``background`` is black, the rest distinct.

    Deterministic: depends only on the names' order. Non-background classes never get
    black or a colour already used.
    """
    if isinstance(names, str):
        raise UsageError("class names must be a sequence of strings, not one string")
    used: set[tuple[int, int, int]] = {(0, 0, 0)}
    candidates = _candidate_colours()
    out: list[tuple[int, int, int]] = []
    for name in names:
        if str(name).strip().lower() == "background":
            out.append((0, 0, 0))
            continue
        colour = next(candidates)
        while colour in used:
            colour = next(candidates)
        used.add(colour)
        out.append(colour)
    return out


def read_class_colours(path: str, names: Sequence[str]) -> list[tuple[int, int, int]]:
    """Class colours from a CSV (``class,r,g,b`` or ``class,color`` with ``#rrggbb``), in the
    order of ``names``; classes the file does not list keep :func:`default_class_colours`.
    A class the store does not have, or a bad colour, is a UsageError naming the line."""
    import csv

    colours = default_class_colours(names)
    index = {str(n).strip().lower(): i for i, n in enumerate(names)}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise UsageError(f"cannot read colours {path}: {exc.strerror or exc}") from None
    if rows and rows[0] and rows[0][0].strip().lower() in ("class", "name"):
        rows = rows[1:]
    for line, row in enumerate(rows, start=2):
        cells = [c.strip() for c in row if c.strip()]
        if not cells:
            continue
        name = cells[0].lower()
        if name not in index:
            raise UsageError(
                f"{path}:{line}: class {cells[0]!r} is not a class of the method "
                f"({', '.join(map(str, names))})"
            )
        try:
            colours[index[name]] = parse_colour(cells[1:])
        except UsageError as exc:
            raise UsageError(f"{path}:{line}: {exc}") from None
    return colours


def parse_colour(cells: Sequence[str]) -> tuple[int, int, int]:
    """``["#rrggbb"]`` (exactly six hex digits) or ``["r", "g", "b"]`` (decimal 0-255 each)
    as an RGB triple; UsageError otherwise (``#-1-1-1`` and ``300`` are refused)."""
    if len(cells) == 1 and (m := _HEX.fullmatch(cells[0])):
        return (int(m[1], 16), int(m[2], 16), int(m[3], 16))
    if len(cells) == 3 and all(_DECIMAL.fullmatch(c) for c in cells):
        r, g, b = (int(c) for c in cells)
        if max(r, g, b) <= 255:
            return (r, g, b)
    raise UsageError(f"colour must be r,g,b (0-255) or #rrggbb, got {list(cells)}")


def stored_colours(raw: Any, names: Sequence[str] | None, where: str) -> list[list[int]] | None:
    """The colour table a store holds (``raw``), checked: one ``[r, g, b]`` of integers 0-255
    per class. A bad table (edited, or written by an older version that let ``#-1-1-1``
    through) is replaced by :func:`default_class_colours` with one warning per store."""
    if raw is None:
        return None
    try:
        table = colour_table(raw)
        if names is not None and len(table) < len(names):
            raise UsageError(f"{len(table)} colours for {len(names)} classes")
    except UsageError as exc:
        if where not in _warned:
            _warned.add(where)
            log.warning("%s: bad class colours (%s); drawing the default colours", where, exc)
        return [list(c) for c in default_class_colours(names)] if names else None
    return table.astype(int).tolist()


def colour_table(colours: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    """Validate a colour table: ``(n, 3)`` integers 0-255 -> uint8 array (UsageError else)."""
    try:
        table = np.asarray(colours)
    except (TypeError, ValueError):
        raise UsageError("colours must be a table of (r, g, b) triples") from None
    if table.ndim != 2 or table.shape[1] != 3:
        raise UsageError(f"colours must have shape (n, 3), not {table.shape}")
    if table.dtype == np.uint8:
        return table
    if table.dtype == np.bool_ or (table.size and not np.issubdtype(table.dtype, np.number)):
        raise UsageError("colours must be integers 0-255")
    if table.size and not np.issubdtype(table.dtype, np.integer):
        if not np.issubdtype(table.dtype, np.floating) or not np.all(table == np.rint(table)):
            raise UsageError("colours must be integers 0-255")
    if table.size and (table.min() < 0 or table.max() > 255):
        raise UsageError("colours must be integers 0-255")
    return table.astype(np.uint8)


def _candidate_colours() -> Iterator[tuple[int, int, int]]:
    yield from _DISTINCT
    i = len(_DISTINCT) + 1
    while True:
        r, g, b = region_colours([i])[0]
        yield (int(r), int(g), int(b))
        i += 1


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV (each 0-1) to RGB floats 0-1, shape ``(n, 3)``."""
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    p = v * (1.0 - s)
    q = v * (1.0 - s * f)
    t = v * (1.0 - s * (1.0 - f))
    i = i.astype(np.int64) % 6
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1)
