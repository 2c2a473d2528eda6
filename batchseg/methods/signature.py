"""A function's parameters as method parameters: from its signature and its decorator.

The first argument is the image (or, batched, the list of images); every other argument is a
parameter with a default. Its type comes from the annotation (``int``, ``float``, ``bool``,
``str`` or a ``Literal[...]`` of choices) or else from the default; the decorator's ``params``
add ranges, choices and help, or give the default and type of a ``**kwargs`` parameter.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args, get_origin

from batchseg.errors import UsageError
from batchseg.methods.params import Param

#: The parameter types a function may take (the CLI's ``-p name=value`` converts to them).
TYPES: tuple[type, ...] = (bool, int, float, str)
#: Keys of a parameter declared as a dict in the decorator.
DECLARED_KEYS = ("type", "default", "min", "max", "choices", "help")
_NO_DEFAULT = inspect.Parameter.empty


def signature_params(
    fn: Callable[..., Any], declared: Mapping[str, Any], ref: str
) -> tuple[Param, ...]:
    """The parameters of ``fn`` (the method ``ref``), typed and checked; UsageError names
    the method and the parameter when one cannot be a method parameter."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"method {ref}: cannot read the function's signature ({exc})") from None
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations: types come from defaults
        hints = {}
    args = list(sig.parameters.values())
    if not args or args[0].kind not in (args[0].POSITIONAL_ONLY, args[0].POSITIONAL_OR_KEYWORD):
        raise UsageError(f"method {ref}: the function must take the image as its first argument")
    rest = args[1:]
    extra = any(a.kind is a.VAR_KEYWORD for a in rest)
    named = {a.name: a for a in rest if a.kind in (a.POSITIONAL_OR_KEYWORD, a.KEYWORD_ONLY)}
    for a in rest:
        if a.kind is a.POSITIONAL_ONLY or (a.kind is a.VAR_POSITIONAL):
            raise UsageError(f"method {ref}: parameter {a.name!r} must be a keyword argument")
    unknown = [n for n in declared if n not in named]
    if unknown and not extra:
        raise UsageError(
            f"method {ref}: the decorator declares parameter {unknown[0]!r}, "
            "which the function does not take"
        )
    params = []
    for name in [*named, *unknown]:
        arg = named.get(name)
        default = arg.default if arg is not None else _NO_DEFAULT
        params.append(_param(ref, name, hints.get(name), default, declared.get(name)))
    return tuple(params)


def _param(ref: str, name: str, hint: Any, default: Any, declared: Any) -> Param:
    """One parameter from its annotation, signature default and declaration."""
    if isinstance(declared, Param):
        if declared.name != name:
            raise UsageError(f"method {ref}: parameter {name!r} is declared as {declared.name!r}")
        return _checked(ref, declared)
    spec = _declared_dict(ref, name, declared)
    default = spec.get("default", default)
    if default is _NO_DEFAULT or default is None:
        raise UsageError(
            f"method {ref}: parameter {name!r} needs a default "
            "(in the function's signature or the decorator's params)"
        )
    choices = spec.get("choices")
    kind = spec.get("type")
    if kind is None and get_origin(hint) is Literal:
        choices = choices if choices is not None else get_args(hint)
        kind = type(get_args(hint)[0])
    elif kind is None:
        kind = hint if hint in TYPES else None
        if kind is None and hint is not None:
            raise UsageError(
                f"method {ref}: parameter {name!r} is annotated {hint!r}; "
                "parameters are int, float, bool, str or a Literal of choices"
            )
        kind = kind or type(default)
    if kind not in TYPES:
        raise UsageError(
            f"method {ref}: parameter {name!r} has a default of type {type(default).__name__}; "
            "parameters are int, float, bool or str"
        )
    param = Param(
        name,
        kind,
        default,
        help=str(spec.get("help", "")),
        choices=tuple(choices) if choices is not None else None,
        minimum=spec.get("min"),
        maximum=spec.get("max"),
    )
    return _checked(ref, param)


def _declared_dict(ref: str, name: str, declared: Any) -> dict[str, Any]:
    """A decorator's declaration of ``name`` as a dict (a plain value is its default)."""
    if declared is None:
        return {}
    if not isinstance(declared, Mapping):
        return {"default": declared}
    bad = sorted(set(declared) - set(DECLARED_KEYS))
    if bad:
        keys = ", ".join(DECLARED_KEYS)
        raise UsageError(f"method {ref}: parameter {name!r} declares {bad[0]!r} (keys: {keys})")
    return dict(declared)


def _checked(ref: str, param: Param) -> Param:
    """``param`` whose default is of its type and within its range and choices."""
    try:
        value = param.parse(param.default)
    except UsageError as exc:
        raise UsageError(f"method {ref}: the default of {exc}") from None
    if value != param.default or type(value) is not type(param.default):
        return Param(
            param.name,
            param.type,
            value,
            param.help,
            param.choices,
            param.minimum,
            param.maximum,
        )
    return param
