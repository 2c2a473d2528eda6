"""Absolute locations out of what the web app answers (unless it was started with
``--show-paths``).

Where the images and the store live on disk says more than a browser tab needs (user names,
project folders). The app leaves the ``uri`` column out and names the store by its last part;
:func:`redact` shortens any absolute path or URL left in a text (an error message, a method
parameter) to its last part: ``cannot open '/home/ann/x/a.png'`` -> ``cannot open '…/a.png'``.
Relative ids (``cam/a.png``, ``../up/b.png``) are kept as they are.
"""

from __future__ import annotations

import re
from typing import Any

#: Columns that hold where an image lives (left out of the app's columns).
PATH_COLUMNS = frozenset({"uri"})

#: The folders of an absolute path or URL (``/a/b/``, ``s3://bucket/a/``, ``~/a/``), not
#: preceded by a character of a word or a relative path.
_FOLDERS = re.compile(
    r"""(?<![\w.~%-])(?:[A-Za-z][A-Za-z0-9+.-]*://[^\s'"/]*|~)?/(?:[^\s'"/]+/)+"""
)


def redact(value: Any) -> Any:
    """``value`` (JSON-like: str, list, dict, numbers) with the folders of absolute paths and
    URLs in its texts replaced by ``…/``."""
    if isinstance(value, str):
        return _FOLDERS.sub("…/", value) if "/" in value else value
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def store_name(path: str) -> str:
    """The last part of a store's path or URL (``/home/ann/out.zarr/`` -> ``out.zarr``)."""
    return path.rstrip("/\\").rsplit("/", 1)[-1] or path
