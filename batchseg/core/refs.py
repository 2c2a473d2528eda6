"""Image references: the one value every layer passes around for an image of the collection."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple


class ImageRef(NamedTuple):
    """One image of the collection: its id, where to read it, and its size if already known.

    A named tuple: a 10^6-row manifest makes 10^6 of these, 10x faster than a dataclass.
    """

    image_id: str
    uri: str
    height: int | None = None
    width: int | None = None


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic GC while building millions of small objects (none form cycles)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
