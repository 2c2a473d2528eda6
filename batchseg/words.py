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
