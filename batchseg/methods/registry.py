"""Method registry: every method by id, loaded the same way wherever it comes from.

Built-in and installed methods come from the entry-point group ``batchseg.methods``
(:mod:`batchseg.methods.plugins`), loaded on first lookup; a function is looked up by its
``module:name`` id and imported then (:mod:`batchseg.methods.function`). Workers resolve the
job's method id the same way, so nothing about a method is pickled or special-cased.
"""

from __future__ import annotations

import threading

from batchseg.errors import UsageError
from batchseg.methods.base import Method
from batchseg.methods.function import function_method, is_function_id
from batchseg.methods.plugins import load_all

_REGISTRY: dict[str, Method] = {}
_REGISTERED: dict[str, Method] = {}  # by register(): kept by refresh()
_AMBIGUOUS: dict[str, list[str]] = {}
_WARNINGS: list[str] = []
_FUNCTIONS: dict[str, Method] = {}
_LOCK = threading.RLock()
_loaded = False


def register(method: Method) -> Method:
    """Add ``method``; a second method with the same id is an error."""
    with _LOCK:
        _load()
        if method.id in _REGISTRY or method.id in _AMBIGUOUS:
            raise ValueError(f"method {method.id!r} is already registered")
        if is_function_id(method.id):
            raise ValueError(f"method id {method.id!r}: ':' is for module:function ids")
        _REGISTRY[method.id] = _REGISTERED[method.id] = method
    return method


def get_method(method_id: str) -> Method:
    """The method registered as ``method_id`` (or the function ``module:name``, imported once
    per process); a clear error lists what exists."""
    if is_function_id(method_id):
        with _LOCK:
            if method_id not in _FUNCTIONS:
                _FUNCTIONS[method_id] = function_method(method_id)
            return _FUNCTIONS[method_id]
    _load()
    try:
        return _REGISTRY[method_id]
    except KeyError:
        if method_id in _AMBIGUOUS:
            both = " and ".join(_AMBIGUOUS[method_id])
            raise UsageError(
                f"method {method_id} is provided by {both}; uninstall all but one of them"
            ) from None
        from batchseg.words import did_you_mean

        names = ", ".join(sorted(_REGISTRY))
        hint = did_you_mean(method_id, _REGISTRY, stems=False)
        raise UsageError(
            f"unknown method {method_id!r}{hint}; available: {names} "
            "(or a Python function as module:function)"
        ) from None


def all_methods() -> list[Method]:
    """Every registered method, sorted by id."""
    _load()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def plugin_warnings() -> list[str]:
    """The warning lines of plug-ins that were not loaded or refused (already logged)."""
    _load()
    return list(_WARNINGS)


def refresh() -> None:
    """Load the entry points again (a package installed since the first lookup; as xarray's
    ``refresh_engines``); methods added with :func:`register` stay."""
    global _loaded
    with _LOCK:
        _REGISTRY.clear()
        _AMBIGUOUS.clear()
        _WARNINGS.clear()
        _loaded = False
        _load()


def _load() -> None:
    global _loaded
    if _loaded:
        return
    with _LOCK:
        if _loaded:
            return
        loaded = load_all()
        _REGISTRY.update(loaded.methods)
        _REGISTRY.update(_REGISTERED)
        _AMBIGUOUS.update(loaded.ambiguous)
        _WARNINGS.extend(loaded.warnings)
        _loaded = True
