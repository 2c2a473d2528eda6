"""Small helpers for the words of human output (no dependencies, importable from anywhere)."""

from __future__ import annotations


def plural(n: int, word: str, words: str | None = None) -> str:
    """``"1 shape"``, ``"2 shapes"``: a count with its noun in the right number."""
    return f"{n} {word if n == 1 else (words or word + 's')}"
