"""Method registry: refuses duplicate ids, looks methods up by dotted id.

The built-in methods (:data:`batchseg.methods.classical.METHODS` and
:data:`batchseg.methods.semantic.METHODS`) are registered on first lookup; those modules
do not import this one, so there is no import cycle.
"""

from __future__ import annotations

import threading

from batchseg.errors import UsageError
from batchseg.methods.base import Method

_REGISTRY: dict[str, Method] = {}
_BUILTIN_LOCK = threading.Lock()
_builtin_loaded = False


def register(method: Method) -> Method:
    """Add ``method``; a second method with the same id is an error."""
    if method.id in _REGISTRY:
        raise ValueError(f"method {method.id!r} is already registered")
    _REGISTRY[method.id] = method
    return method


def get_method(method_id: str) -> Method:
    """The method registered as ``method_id``; a clear error lists what exists."""
    _load_builtin()
    try:
        return _REGISTRY[method_id]
    except KeyError:
        from batchseg.words import did_you_mean

        names = ", ".join(sorted(_REGISTRY))
        hint = did_you_mean(method_id, _REGISTRY, stems=False)
        raise UsageError(f"unknown method {method_id!r}{hint}; available: {names}") from None


def all_methods() -> list[Method]:
    """Every registered method, sorted by id."""
    _load_builtin()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def _load_builtin() -> None:
    global _builtin_loaded
    if _builtin_loaded:
        return
    with _BUILTIN_LOCK:
        if _builtin_loaded:
            return
        from batchseg.methods import cellpose, classical, instance, sam, semantic

        builtin = (*classical.METHODS, *semantic.METHODS, *instance.METHODS)
        for method in (*builtin, *cellpose.METHODS, *sam.METHODS):
            register(method)
        _builtin_loaded = True
