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
