"""Method description: identity, parameters, output kind and the per-image kernel."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from batchseg.errors import UsageError

OutputKind = Literal["classes", "regions"]
Kernel = Callable[..., np.ndarray]


@dataclass
class Segmentation:
    """What a method returns for one image: labels, and optionally per-pixel confidence."""

    labels: np.ndarray
    confidence: np.ndarray | None = None  # uint8 0-255, same H x W as labels


class Runner(Protocol):
    """Segments batches of images; built once per worker process for a (method, params)."""

    def segment_batch(self, images: Sequence[np.ndarray]) -> list[Segmentation | Exception]:
        """One result per image: a Segmentation, or the exception that image raised."""
        ...


class KernelRunner:
    """Runner for plain per-image kernels: a loop, each image failing alone."""

    def __init__(self, method: Method, params: Mapping[str, Any]) -> None:
        self.method = method
        self.params = dict(params)

    def segment_batch(self, images: Sequence[np.ndarray]) -> list[Segmentation | Exception]:
        out: list[Segmentation | Exception] = []
        for image in images:
            try:
                out.append(Segmentation(self.method.segment(image, self.params)))
            except Exception as exc:  # noqa: BLE001 - recorded per image
                out.append(exc)
        return out


_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Param:
    """One method parameter with its type, default and allowed values."""

    name: str
    type: type
    default: Any
    help: str = ""
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None

    def parse(self, value: Any) -> Any:
        """Convert ``value`` (often a string from the CLI) to this parameter's type."""
        try:
            if self.type is bool and isinstance(value, str):
                low = value.strip().lower()
                if low in _BOOL_TRUE:
                    out: Any = True
                elif low in _BOOL_FALSE:
                    out = False
                else:
                    raise ValueError(value)
            elif self.type is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            else:
                out = self.type(value)
        except (TypeError, ValueError):
            raise UsageError(
                f"parameter {self.name!r} expects {self.type.__name__}, got {value!r}"
            ) from None
        if self.choices is not None and out not in self.choices:
            allowed = ", ".join(map(str, self.choices))
            raise UsageError(f"parameter {self.name!r} must be one of {allowed}; got {out!r}")
        if self.minimum is not None and out < self.minimum:
            raise UsageError(f"parameter {self.name!r} must be >= {self.minimum}; got {out!r}")
        return out


@dataclass(frozen=True)
class Method:
    """A segmentation method.

    ``kernel(image, **params)`` takes the decoded image (H x W grey or H x W x 3 RGB, any
    integer/float dtype) and returns integer labels of shape H x W. ``kind`` says whether
    labels are a class map (``classes(params)`` gives the class names) or region labels
    (0 = no region, 1..n regions).
    """

    id: str
    kind: OutputKind
    kernel: Kernel
    description: str
    params: tuple[Param, ...] = ()
    class_names: Callable[[Mapping[str, Any]], list[str]] | None = None
    max_label: Callable[[Mapping[str, Any], int, int], int] | None = None
    family: str = "classical"
    make_runner: Callable[[Mapping[str, Any]], Runner] | None = None
    has_confidence: bool = False
    #: parameters that change how, not what, is computed (left out of the job fingerprint)
    runtime_params: frozenset[str] = frozenset()
    extra: dict[str, Any] = field(default_factory=dict)

    def runner(self, params: Mapping[str, Any]) -> Runner:
        """A runner for ``params`` (semantic methods cache theirs per worker process)."""
        if self.make_runner is not None:
            return self.make_runner(params)
        return KernelRunner(self, params)

    def resolve_params(self, raw: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overlaid with ``raw``, type-converted; unknown names are errors."""
        raw = dict(raw or {})
        known = {p.name: p for p in self.params}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            names = ", ".join(known) or "none"
            raise UsageError(
                f"method {self.id} has no parameter {unknown[0]!r} (parameters: {names})"
            )
        return {name: p.parse(raw[name]) if name in raw else p.default for name, p in known.items()}

    def classes(self, params: Mapping[str, Any]) -> list[str] | None:
        """Class names for class-map methods, None for region methods."""
        if self.kind != "classes":
            return None
        if self.class_names is None:
            raise UsageError(f"method {self.id} declares no class names")
        return self.class_names(params)

    def label_dtype(self, params: Mapping[str, Any], height: int, width: int) -> np.dtype:
        """Smallest unsigned dtype that holds every label this method can produce."""
        if self.max_label is not None:
            top = self.max_label(params, height, width)
        elif self.kind == "classes":
            top = len(self.classes(params) or []) - 1
        else:
            top = height * width
        return smallest_uint(top)

    def segment(self, image: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
        """Run the kernel on one image."""
        return self.kernel(image, **params)


def smallest_uint(top: int) -> np.dtype:
    """Smallest unsigned integer dtype whose range includes ``top``."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.uint64)


def _default_classes(method: Method) -> list[str] | None:
    """Class names under default parameters, when they need no model file."""
    if method.kind != "classes":
        return None
    try:
        return method.classes(method.resolve_params())
    except Exception:  # noqa: BLE001 - e.g. a model path is required to know them
        return None


def describe(methods: Sequence[Method]) -> list[dict[str, Any]]:
    """Plain-data description of methods for listings."""
    out = []
    for m in methods:
        out.append(
            {
                "id": m.id,
                "kind": m.kind,
                "family": m.family,
                "description": m.description,
                "params": [
                    {
                        "name": p.name,
                        "type": p.type.__name__,
                        "default": p.default,
                        "choices": list(p.choices) if p.choices else None,
                        "help": p.help,
                    }
                    for p in m.params
                ],
                "classes": _default_classes(m),
            }
        )
    return out
