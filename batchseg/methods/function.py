"""A Python function as a method: ``batchseg run DIR -m my_pkg.seg:segment``.

The function takes a numpy image (and its parameters as keyword arguments) and returns a
label map of the image's height and width. Undecorated, it makes a region map (0: none) and
its parameters come from its signature (:mod:`batchseg.methods.signature`);
:func:`method` declares the rest. Workers import the function by its id (``module:name``),
as the launcher does, so nothing is pickled.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchseg.core.kinds import Kind
from batchseg.errors import ImageError, UsageError, one_line
from batchseg.io.normalise import to_grey, to_rgb
from batchseg.methods.base import Method, Segmentation
from batchseg.methods.origin import function_origin
from batchseg.methods.signature import signature_params

#: Where :func:`method` keeps its declaration on the function.
SPEC_ATTRIBUTE = "__batchseg_method__"
#: The kinds a function may make (instances need a class map and a table: a plug-in's Method).
KINDS = ("regions", "classes")


@dataclass(frozen=True)
class FunctionSpec:
    """What :func:`method` declares about a function."""

    kind: str = "regions"
    classes: tuple[str, ...] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    #: 1: the function gets H x W grey floats in [0, 1]; 3: H x W x 3 RGB floats in [0, 1];
    #: None: the image as decoded (H x W or H x W x 3, its own dtype)
    channels: int | None = None
    batched: bool = False
    batch_size: int = 8
    gpu: bool = False
    objects: bool = False
    description: str = ""


def method(
    fn: Callable[..., Any] | None = None,
    *,
    kind: str = "regions",
    classes: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    channels: int | None = None,
    batched: bool = False,
    batch_size: int = 8,
    gpu: bool = False,
    objects: bool = False,
    description: str = "",
) -> Any:
    """Declare what batchseg must know about a segmentation function (the function itself is
    returned unchanged): its output ``kind`` (``regions`` or ``classes`` with ``classes``
    names, class 0 first), ``params`` (name -> default, or a dict of ``type``, ``default``,
    ``min``, ``max``, ``choices``, ``help``), the ``channels`` it expects (1, 3 or None: as
    decoded), whether it takes lists of images (``batched``, up to ``batch_size``), whether
    it uses a GPU, and whether its regions are objects measured by default."""
    if kind not in KINDS:
        raise UsageError(f"batchseg.method: kind must be one of {', '.join(KINDS)}; got {kind!r}")
    if Kind(kind).class_map and not classes:
        raise UsageError("batchseg.method: kind 'classes' needs the class names (classes=[...])")
    if Kind(kind) is Kind.REGIONS and classes:
        raise UsageError("batchseg.method: classes are for kind 'classes'")
    if channels not in (None, 1, 3):
        raise UsageError(f"batchseg.method: channels must be 1, 3 or None; got {channels!r}")
    if int(batch_size) < 1:
        raise UsageError(f"batchseg.method: batch_size must be >= 1; got {batch_size!r}")
    spec = FunctionSpec(
        kind=kind,
        classes=tuple(str(c) for c in classes) if classes else None,
        params=dict(params or {}),
        channels=channels,
        batched=bool(batched),
        batch_size=int(batch_size),
        gpu=bool(gpu),
        objects=bool(objects),
        description=description,
    )

    def mark(f: Callable[..., Any]) -> Callable[..., Any]:
        setattr(f, SPEC_ATTRIBUTE, spec)
        return f

    return mark(fn) if fn is not None else mark


def is_function_id(method_id: str) -> bool:
    """Whether ``method_id`` names a function (``module:name``) rather than a registered id."""
    return ":" in method_id


def function_method(ref: str) -> Method:
    """The method of function ``ref`` (``module:name``), imported here; UsageError (one line
    naming the module) when it cannot be imported or is no segmentation function."""
    fn, module = _resolve(ref)
    spec = getattr(fn, SPEC_ATTRIBUTE, None)
    if not isinstance(spec, FunctionSpec):
        spec = FunctionSpec()
    params = signature_params(fn, spec.params, ref)
    doc = (fn.__doc__ or "").strip().splitlines()
    module_name, _, qualname = ref.partition(":")
    classes = spec.classes
    return Method(
        id=ref,
        kind=Kind(spec.kind),
        kernel=functools.partial(call_function, fn, ref, spec),
        description=spec.description or (doc[0] if doc else f"{qualname} of {module_name}"),
        params=params,
        class_names=(lambda _params: list(classes)) if classes else None,
        family="function",
        make_runner=functools.partial(FunctionRunner, fn, ref, spec),
        uses_gpu=spec.gpu,
        objects_default=spec.objects and Kind(spec.kind) is Kind.REGIONS,
        untiled_reason="a function segments whole images",
        origin=function_origin(module, qualname),
    )


def _resolve(ref: str) -> tuple[Callable[..., Any], Any]:
    """The function named ``ref`` and its module."""
    module_name, _, qualname = ref.partition(":")
    if not module_name or not qualname:
        raise UsageError(
            f"method {ref!r}: a function is named module:function, e.g. my_pkg.seg:segment"
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UsageError(
            f"method {ref}: cannot import module {module_name!r} ({one_line(exc)}); "
            "install its package or add its folder to PYTHONPATH"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed as it ran
        raise UsageError(f"method {ref}: importing {module_name} failed: {one_line(exc)}") from None
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise UsageError(f"method {ref}: module {module_name} has no {qualname!r}")
    if not callable(obj):
        raise UsageError(f"method {ref}: {qualname!r} of {module_name} is not a function")
    return obj, module


def prepared(image: np.ndarray, channels: int | None) -> np.ndarray:
    """``image`` as the function expects it (see :attr:`FunctionSpec.channels`)."""
    if channels == 1:
        return to_grey(image)
    if channels == 3:
        return to_rgb(image)
    return image


def checked_labels(labels: Any, shape: tuple[int, ...], ref: str, n_classes: int) -> np.ndarray:
    """``labels`` as returned by function ``ref`` for an image of ``shape``, or ImageError
    saying what is wrong with them (that image fails with it)."""
    if not isinstance(labels, np.ndarray):
        raise ImageError(f"{ref} returned {type(labels).__name__}, not a numpy label map")
    h, w = shape[:2]
    if labels.shape != (h, w):
        raise ImageError(
            f"{ref} returned labels of shape {labels.shape} for an image of {h}x{w}; "
            "a label map has the image's height and width"
        )
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ImageError(f"{ref} returned {labels.dtype} labels; labels must be integers")
    if labels.size and labels.min() < 0:
        raise ImageError(f"{ref} returned the negative label {labels.min()}; labels are >= 0")
    if n_classes and labels.size and labels.max() >= n_classes:
        raise ImageError(
            f"{ref} returned class {labels.max()}, but declares {n_classes} classes "
            f"(0 to {n_classes - 1})"
        )
    return labels


def call_function(
    fn: Callable[..., Any], ref: str, spec: FunctionSpec, image: np.ndarray, **params: Any
) -> np.ndarray:
    """Run function ``fn`` on one image and check what it returns."""
    ready = prepared(image, spec.channels)
    n_classes = len(spec.classes or ())
    if spec.batched:
        out = fn([ready], **params)
        if not isinstance(out, Sequence | np.ndarray) or len(out) != 1:
            raise ImageError(f"{ref} is batched but returned no list of one label map")
        return checked_labels(out[0], image.shape, ref, n_classes)
    return checked_labels(fn(ready, **params), image.shape, ref, n_classes)


class FunctionRunner:
    """Runs a function on batches: one image per call, or (batched) a list per call; every
    image fails alone when its labels are wrong."""

    def __init__(
        self, fn: Callable[..., Any], ref: str, spec: FunctionSpec, params: Mapping[str, Any]
    ) -> None:
        self.fn, self.ref, self.spec = fn, ref, spec
        self.params = dict(params)
        self.batch_size = spec.batch_size if spec.batched else 1

    def segment_batch(self, images: Sequence[np.ndarray]) -> list[Segmentation | Exception]:
        if not self.spec.batched:
            return [self._one(image) for image in images]
        n_classes = len(self.spec.classes or ())
        try:
            outs = self.fn([prepared(i, self.spec.channels) for i in images], **self.params)
            if len(outs) != len(images):
                raise ImageError(
                    f"{self.ref} returned {len(outs)} label maps for {len(images)} images"
                )
        except Exception as exc:  # noqa: BLE001 - every image of the batch records it
            return [exc for _ in images]
        results: list[Segmentation | Exception] = []
        for image, labels in zip(images, outs, strict=True):
            try:
                results.append(
                    Segmentation(checked_labels(labels, image.shape, self.ref, n_classes))
                )
            except ImageError as exc:
                results.append(exc)
        return results

    def _one(self, image: np.ndarray) -> Segmentation | Exception:
        try:
            return Segmentation(call_function(self.fn, self.ref, self.spec, image, **self.params))
        except Exception as exc:  # noqa: BLE001 - recorded per image
            return exc
