"""Exception hierarchy: one root, leaves also subclass a built-in where it fits."""

from __future__ import annotations


class BatchsegError(Exception):
    """Root of every error batchseg raises on purpose."""


class UsageError(BatchsegError, ValueError):
    """The user asked for something invalid (bad flag, spec key, parameter, expression)."""


class InputError(BatchsegError, ValueError):
    """The input collection could not be discovered (missing folder, bad manifest)."""


class ImageError(BatchsegError, ValueError):
    """One image could not be read or segmented; recorded per image, the job goes on."""


class StoreError(BatchsegError, OSError):
    """The store is missing, incompatible, locked or cannot be written."""


class QueryError(UsageError):
    """A query expression is invalid or uses something not allowed."""


def one_line(exc: BaseException, limit: int = 500) -> str:
    """The one-line message recorded or shown for ``exc``.

    A :class:`BatchsegError` is its own message (written for users); anything else is
    prefixed with its type name. Whitespace runs (newlines included) collapse to one
    space and the text is cut to ``limit`` characters.
    """
    text = " ".join(str(exc).split())
    if not isinstance(exc, BatchsegError):
        text = f"{type(exc).__name__}: {text}" if text else ""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text or type(exc).__name__
