"""Limits every layer agrees on."""

from __future__ import annotations

#: Default decompression-bomb guard: images (inputs and truth) with more pixels are refused.
DEFAULT_MAX_PIXELS: int = 1 << 28
