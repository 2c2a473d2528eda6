"""Small helpers for the words of human output (no dependencies, importable from anywhere)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def plural(n: int, word: str, words: str | None = None) -> str:
    """``"1 shape"``, ``"2 shapes"``: a count with its noun in the right number."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


#: Most candidates compared by similarity (beyond, only exact stem and name matches are found).
MAX_COMPARED = 200_000


def _stem(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base[1:] else base


def near_matches(
    word: str, candidates: Iterable[str], n: int = 3, *, stems: bool = True
) -> list[str]:
    """Up to ``n`` candidates a person probably meant by ``word``: with ``stems`` (file names)
    those whose stem (without folder and suffix) is ``word``'s, then the most similar
    (:mod:`difflib`)."""
    names = [str(c) for c in candidates]
    if stems:
        stem = _stem(word)
        exact = [c for c in names if c != word and stem and _stem(c) == stem]
    else:  # dotted names: "otsu" -> "skimage.otsu"
        exact = [c for c in names if c != word and c.rsplit(".", 1)[-1] == word]
    if len(exact) >= n or len(names) > MAX_COMPARED:
        return exact[:n]
    close = difflib.get_close_matches(word, names, n=n, cutoff=0.75)
    return list(dict.fromkeys([*exact, *close]))[:n]


def did_you_mean(word: str, candidates: Iterable[str], *, stems: bool = True) -> str:
    """``"; did you mean 'x.jpg'?"`` (or ``'x.jpg' or 'x.png'``) for an unknown name, else ``""``."""
    matches = near_matches(word, candidates, stems=stems)
    return f"; did you mean {' or '.join(repr(m) for m in matches)}?" if matches else ""


def size_text(n_bytes: float) -> str:
    """A byte count a person reads at a glance: ``812 B``, ``4.2 kB``, ``3.1 MB``, ``1.20 GB``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return (
                f"{n_bytes / scale:.2f} {unit}" if unit == "GB" else f"{n_bytes / scale:.1f} {unit}"
            )
    return f"{int(n_bytes)} B"


def rate_text(images: int, seconds: float) -> str:
    """Throughput in the unit that shows it: ``12.5 images/s``, or ``41.3 s/image`` below one
    image per second (a tiled image can take minutes)."""
    if images <= 0 or seconds <= 0:
        return "0 images/s"
    rate = images / seconds
    return f"{rate:.1f} images/s" if rate >= 1 else f"{seconds / images:.1f} s/image"
