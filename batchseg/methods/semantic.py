"""Semantic segmentation with torchvision models and TorchScript files.

:data:`METHODS` holds the methods ``torchvision.<builder>`` and ``torchscript`` (the registry
registers them); torch is imported lazily (inside functions), so listing works without torch.

Each worker process loads a network once: :func:`make_runner` caches runners (and the
loaded networks behind them) in module-level dicts guarded by a lock, keyed by the method,
the weights' identity (file path, mtime and size), the device and the precision.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from batchseg.core.kinds import Kind
from batchseg.errors import UsageError
from batchseg.methods import models
from batchseg.methods.base import Method, Param, one_image_kernel
from batchseg.methods.inference import SemanticRunner
from batchseg.methods.tiled import SEMANTIC

PRECISIONS = ("fp32", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda")

_COMMON_PARAMS: tuple[Param, ...] = (
    Param(
        "classes",
        str,
        "",
        "file with one class name per line (default: the weights' categories, or class_<i>)",
    ),
    Param(
        "batch_size",
        int,
        0,
        "images per forward pass (0 = auto: 4 on CPU, where larger batches measured slower, "
        "16 on CUDA)",
        minimum=0,
        maximum=4096,
    ),
    Param("precision", str, "fp32", "fp32, fp16 (CUDA only) or bf16 (autocast)", PRECISIONS),
    Param("device", str, "auto", "auto (CUDA when available), cpu or cuda", DEVICES),
    Param(
        "resize",
        str,
        "",
        "run the model at 'H,W' / 'HxW' (or shorter edge N; 'original' = no resize); "
        "logits are upsampled back to the image size. Empty: the weights' own preprocessing",
    ),
    Param("channels_last", bool, True, "channels-last memory format (used on CUDA only)"),
    Param(
        "threads",
        int,
        0,
        "torch CPU threads (0 = leave torch's setting)",
        minimum=0,
        maximum=4096,
    ),
    Param(
        "window",
        int,
        512,
        "tiled (huge) images: side of the sliding inference window, pixels",
        minimum=16,
    ),
    Param(
        "overlap",
        int,
        128,
        "tiled images: overlap of neighbouring windows (logits are blended across it)",
        minimum=0,
    ),
)

_TORCHVISION_PARAMS: tuple[Param, ...] = (
    Param(
        "weights",
        str,
        "DEFAULT",
        "torchvision weights name (DEFAULT, COCO_WITH_VOC_LABELS_V1, ...) or a state_dict file",
    ),
    *_COMMON_PARAMS,
)

_TORCHSCRIPT_PARAMS: tuple[Param, ...] = (
    Param(
        "model",
        str,
        "",
        "TorchScript file: ImageNet-normalised RGB (N,3,H,W) in, logits (N,C,H,W) "
        "or {'out': logits} out",
    ),
    *_COMMON_PARAMS,
)

_LOCK = threading.RLock()
_MODELS: dict[tuple[Any, ...], models.LoadedModel] = {}
_RUNNERS: dict[tuple[Any, ...], SemanticRunner] = {}
_NUM_CLASSES: dict[tuple[Any, ...], int] = {}


def clear_cache() -> None:
    """Forget every cached runner and network of this process."""
    with _LOCK:
        _RUNNERS.clear()
        _MODELS.clear()
        _NUM_CLASSES.clear()
        models.forget_fitted()


# --------------------------------------------------------------------------- params


def parse_resize(value: str) -> tuple[int, ...] | None | str:
    """'' -> None (weights' default), 'original', 'H,W'/'HxW' -> (H, W), 'N' -> (N,)."""
    text = (value or "").strip().lower()
    if not text:
        return None
    if text in ("original", "orig", "none"):
        return "original"
    parts = text.replace("x", ",").replace("*", ",").split(",")
    try:
        size = tuple(int(p.strip()) for p in parts)
    except ValueError:
        size = ()
    if len(size) not in (1, 2) or min(size, default=0) < 1:
        raise UsageError(f"parameter 'resize' expects 'H,W', 'HxW', N or 'original'; got {value!r}")
    return size


# --------------------------------------------------------------------------- model identity


def _model_identity(method: Method, params: Mapping[str, Any]) -> tuple[Any, ...]:
    """What identifies the network's weights: file identity, or weights member + cache file."""
    if method.id == "torchscript":
        if not params["model"]:
            raise UsageError("method torchscript needs model=PATH (a TorchScript file)")
        return ("torchscript", *models.file_identity(params["model"], "TorchScript model"))
    return models.weights_identity(method.extra["builder"], params["weights"])


def _load(method: Method, params: Mapping[str, Any], device: str, cl: bool) -> models.LoadedModel:
    if method.id == "torchscript":
        return models.load_torchscript(params["model"], device, cl)
    return models.load_torchvision(method.extra["builder"], params["weights"], device, cl)


def _num_classes_on_client(method: Method, params: Mapping[str, Any]) -> tuple[int, list[str]]:
    """(num_classes, default names) without building the network where possible."""
    models.import_torch()
    ident = _model_identity(method, params)
    if ident[0] == "weights":
        member = models.resolve_weights(method.extra["builder"], params["weights"])
        cats = list(member.meta["categories"])
        return len(cats), cats
    key = (method.id, *ident)
    with _LOCK:
        n = _NUM_CLASSES.get(key)
    if n is None:
        if ident[0] == "state_dict":
            n = models.inspect_state_dict(method.extra["builder"], params["weights"])[0]
        else:
            n = models.torchscript_num_classes(params["model"])
        with _LOCK:
            _NUM_CLASSES[key] = n
    return n, [f"class_{i}" for i in range(n)]


def _class_names(method: Method, params: Mapping[str, Any]) -> list[str]:
    params = method.resolve_params(params)
    if method.id == "torchscript" and not params["model"]:
        return []  # nothing to describe yet (listings call this with the defaults)
    if method.id == "torchscript" and params["classes"]:
        # the runner checks the count against the model's output when it loads it
        return models.read_classes_file(params["classes"])
    n, names = _num_classes_on_client(method, params)
    if params["classes"]:
        return models.check_class_count(
            models.read_classes_file(params["classes"]), n, params["classes"], method.id
        )
    return names


def _prepare(method: Method, params: Mapping[str, Any], local_workers: bool = True) -> None:
    """Launcher check, once per job: the weights load into the network, classes fit.

    A state_dict is loaded into its network here (strictly: every key and shape), so a
    checkpoint saved from another network or class count is one usage error naming the
    file and the mismatch, not a failure of every image inside the tasks.
    """
    params = method.resolve_params(params)
    parse_resize(params["resize"])
    models.import_torch()
    models.check_device(params, local_workers)
    ident = _model_identity(method, params)
    _class_names(method, params)
    if method.id != "torchscript":
        models.check_weights(
            method.id, method.extra["builder"], params["weights"], ident,
            models.model_from_state_dict,
        )  # fmt: skip


# --------------------------------------------------------------------------- runner


def _make_runner(method: Method, raw: Mapping[str, Any]) -> SemanticRunner:
    torch = models.import_torch()
    params = method.resolve_params(raw)
    device = models.resolve_device(params["device"])
    precision = params["precision"]
    models.check_precision(precision, device)
    resize = parse_resize(params["resize"])
    if params["threads"] > 0 and torch.get_num_threads() != params["threads"]:
        torch.set_num_threads(params["threads"])
    cl = bool(params["channels_last"]) and device.startswith("cuda")
    batch_size = params["batch_size"] or (16 if device.startswith("cuda") else 4)
    ident = _model_identity(method, params)
    classes = params["classes"]
    classes_ident = models.file_identity(classes, "classes file") if classes else None
    runner_key = (
        method.id,
        ident,
        device,
        precision,
        resize,
        cl,
        batch_size,
        classes_ident,
    )
    with _LOCK:
        runner = _RUNNERS.get(runner_key)
        if runner is not None:
            return runner
        model_key = (method.id, ident, device, cl)
        loaded = _MODELS.get(model_key)
        if loaded is None:
            loaded = _load(method, params, device, cl)
            _MODELS[model_key] = loaded
        names = loaded.categories
        if classes:
            names = models.check_class_count(
                models.read_classes_file(classes), loaded.num_classes, classes, loaded.source
            )
        pp = loaded.preprocess
        if resize == "original":
            pp = models.Preprocess(pp.mean, pp.std, None, pp.antialias)
        elif isinstance(resize, tuple):
            pp = models.Preprocess(pp.mean, pp.std, resize, pp.antialias)
        runner = SemanticRunner(
            loaded,
            device=device,
            precision=precision,
            preprocess=pp,
            batch_size=batch_size,
            channels_last=cl,
            class_names=names,
        )
        _RUNNERS[runner_key] = runner
        return runner


# --------------------------------------------------------------------------- registration


def _build(method_id: str, description: str, params: tuple[Param, ...], **extra: Any) -> Method:
    holder: dict[str, Method] = {}

    kernel = one_image_kernel(lambda kw: _make_runner(holder["m"], kw))

    method = Method(
        id=method_id,
        kind=Kind.CLASSES,
        kernel=kernel,
        description=description,
        params=params,
        class_names=lambda p: _class_names(holder["m"], p),
        family="semantic",
        make_runner=lambda p: _make_runner(holder["m"], p),
        has_confidence=True,
        runtime_params=frozenset({"batch_size", "device", "threads", "channels_last"}),
        extra=dict(extra),
        prepare=lambda p, local: _prepare(holder["m"], p, local),
        tiled=SEMANTIC,
        uses_gpu=True,
    )
    holder["m"] = method
    return method


METHODS: list[Method] = [
    _build(
        f"torchvision.{b}",
        f"torchvision {b} semantic segmentation (pretrained weights or a state_dict)",
        _TORCHVISION_PARAMS,
        builder=b,
        requires="torch",
    )
    for b in models.BUILDERS
]
METHODS.append(
    _build(
        "torchscript",
        "TorchScript semantic segmentation model (logits or {'out': logits})",
        _TORCHSCRIPT_PARAMS,
        requires="torch",
    )
)
