"""Instance segmentation with torchvision Mask R-CNN (``torchvision.maskrcnn_resnet50_fpn``,
``torchvision.maskrcnn_resnet50_fpn_v2``).

:data:`METHODS` holds the methods (the registry registers them); torch is imported lazily.
Each image gives (:class:`batchseg.methods.instance_models.InstanceRunner`):

- ``labels``: instance ids ``1..n`` in descending score order (0: no instance), of the
  smallest unsigned dtype that holds ``max_detections``. Detections are those with
  ``score >= score_threshold`` (at most ``max_detections``, the highest-scored); a pixel
  belongs to a detection where its mask probability is ``> mask_threshold``. Where masks
  overlap, the higher-scored detection wins; a detection left without a visible pixel is
  dropped and the others renumbered, so ids stay contiguous and every id has pixels.
- ``classes``: the class index of every instance pixel (0 elsewhere), uint8 (uint16 above
  256 classes); class names (index 0 = background) come from the weights' categories, a
  ``classes`` file, or are ``class_<i>``.
- ``confidence``: uint8 ``round(255 * score)`` of the pixel's instance (0 elsewhere).
- ``instances``: per-instance columns (row i = id i + 1): ``class_index`` (int64),
  ``score`` (float64) and torchvision's box as ``box_min_row``, ``box_min_col``,
  ``box_max_row``, ``box_max_col`` (its y1, x1, y2, x2; float64 pixels).

Each worker process loads a network once: runners and networks are cached in module-level
dicts guarded by a lock, keyed by the method, the weights' identity, the device and the
settings that the network itself applies (:class:`~.instance_models.DetectorConfig`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from batchseg.core.kinds import Kind
from batchseg.methods import instance_models, models
from batchseg.methods.base import Method, Param, one_image_kernel
from batchseg.methods.instance_models import DetectorConfig, InstanceRunner
from batchseg.methods.semantic import DEVICES, PRECISIONS

#: torchvision instance-segmentation builders offered as ``torchvision.<builder>`` methods.
BUILDERS: tuple[str, ...] = ("maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2")

_NEEDS = "instance methods"

PARAMS: tuple[Param, ...] = (
    Param(
        "weights",
        str,
        "DEFAULT",
        "torchvision weights name (DEFAULT, COCO_V1) or a state_dict file",
    ),
    Param(
        "classes",
        str,
        "",
        "file with one class name per line, index 0 = background "
        "(default: the weights' categories, or class_<i>)",
    ),
    Param(
        "score_threshold",
        float,
        0.5,
        "keep detections whose score is >= this",
        minimum=0.0,
        maximum=1.0,
    ),
    Param(
        "mask_threshold",
        float,
        0.5,
        "a pixel belongs to a detection where its mask probability is > this",
        minimum=0.0,
        maximum=1.0,
    ),
    Param(
        "max_detections",
        int,
        100,
        "at most this many detections per image (the highest-scored)",
        minimum=1,
    ),
    Param(
        "min_size",
        int,
        800,
        "the network sees each image resized so that its shorter side is this",
        minimum=1,
    ),
    Param(
        "max_size",
        int,
        1333,
        "... unless its longer side would exceed this (then that side is this)",
        minimum=1,
    ),
    Param(
        "batch_size",
        int,
        0,
        "images per forward pass (0 = auto: 2 on CPU, 8 on CUDA)",
        minimum=0,
        maximum=4096,
    ),
    Param("precision", str, "fp32", "fp32, fp16 (CUDA only) or bf16 (autocast)", PRECISIONS),
    Param("device", str, "auto", "auto (CUDA when available), cpu or cuda", DEVICES),
    Param(
        "threads",
        int,
        0,
        "torch CPU threads (0 = leave torch's setting)",
        minimum=0,
        maximum=4096,
    ),
)

_LOCK = threading.RLock()
_MODELS: dict[tuple[Any, ...], models.LoadedModel] = {}
_RUNNERS: dict[tuple[Any, ...], InstanceRunner] = {}
_NUM_CLASSES: dict[tuple[Any, ...], int] = {}


def clear_cache() -> None:
    """Forget every cached runner and network of this process."""
    with _LOCK:
        _RUNNERS.clear()
        _MODELS.clear()
        _NUM_CLASSES.clear()
        models.forget_fitted()


def _builder(method: Method) -> str:
    return str(method.extra["builder"])


def _config(params: Mapping[str, Any]) -> DetectorConfig:
    return DetectorConfig(
        score_threshold=float(params["score_threshold"]),
        max_detections=int(params["max_detections"]),
        min_size=int(params["min_size"]),
        max_size=int(params["max_size"]),
    )


# --------------------------------------------------------------------------- classes


def _num_classes(method: Method, params: Mapping[str, Any]) -> tuple[int, list[str]]:
    """(num_classes incl. background, default names) without building the network."""
    models.import_torch(_NEEDS)
    builder = _builder(method)
    ident = models.weights_identity(builder, params["weights"])
    if ident[0] == "weights":
        member = models.resolve_weights(builder, params["weights"])
        cats = [str(c) for c in member.meta["categories"]]
        return len(cats), cats
    key = (method.id, *ident)
    with _LOCK:
        n = _NUM_CLASSES.get(key)
    if n is None:
        n = instance_models.state_dict_num_classes(builder, params["weights"])
        with _LOCK:
            _NUM_CLASSES[key] = n
    return n, [f"class_{i}" for i in range(n)]


def _class_names(method: Method, params: Mapping[str, Any]) -> list[str]:
    params = method.resolve_params(params)
    n, names = _num_classes(method, params)
    if params["classes"]:
        return models.check_class_count(
            models.read_classes_file(params["classes"]), n, params["classes"], method.id
        )
    return names


# --------------------------------------------------------------------------- launcher check


def _prepare(method: Method, params: Mapping[str, Any], local_workers: bool = True) -> None:
    """Launcher check, once per job: the weights are there and fit, the classes fit.

    A state_dict is loaded into its network here (strictly: every key and shape), so a
    checkpoint of another architecture or class count is one usage error naming the file,
    not a failure of every image inside the tasks; a weights name must be in the torch hub
    cache (or downloadable now).
    """
    params = method.resolve_params(params)
    models.import_torch(_NEEDS)
    models.check_device(params, local_workers)
    builder = _builder(method)
    ident = models.weights_identity(builder, params["weights"])
    _class_names(method, params)
    models.check_weights(
        method.id, builder, params["weights"], ident, instance_models.model_from_state_dict
    )


# --------------------------------------------------------------------------- runner


def _make_runner(method: Method, raw: Mapping[str, Any]) -> InstanceRunner:
    torch = models.import_torch(_NEEDS)
    params = method.resolve_params(raw)
    device = models.resolve_device(params["device"])
    precision = params["precision"]
    models.check_precision(precision, device)
    if params["threads"] > 0 and torch.get_num_threads() != params["threads"]:
        torch.set_num_threads(params["threads"])
    batch_size = params["batch_size"] or (8 if device.startswith("cuda") else 2)
    builder = _builder(method)
    ident = models.weights_identity(builder, params["weights"])
    config = _config(params)
    classes = params["classes"]
    classes_ident = models.file_identity(classes, "classes file") if classes else None
    model_key = (method.id, ident, device, config)
    runner_key = (
        *model_key,
        precision,
        batch_size,
        float(params["mask_threshold"]),
        classes_ident,
    )
    with _LOCK:
        runner = _RUNNERS.get(runner_key)
        if runner is not None:
            return runner
        loaded = _MODELS.get(model_key)
        if loaded is None:
            loaded = instance_models.load_detector(builder, params["weights"], device, config)
            _MODELS[model_key] = loaded
        names = loaded.categories or [f"class_{i}" for i in range(loaded.num_classes)]
        if classes:
            names = models.check_class_count(
                models.read_classes_file(classes), loaded.num_classes, classes, loaded.source
            )
        runner = InstanceRunner(
            loaded,
            device=device,
            precision=precision,
            batch_size=batch_size,
            score_threshold=config.score_threshold,
            mask_threshold=float(params["mask_threshold"]),
            max_detections=config.max_detections,
            class_names=names,
        )
        _RUNNERS[runner_key] = runner
        return runner


# --------------------------------------------------------------------------- registration


def _build(builder: str) -> Method:
    holder: dict[str, Method] = {}

    kernel = one_image_kernel(lambda kw: _make_runner(holder["m"], kw))

    method = Method(
        id=f"torchvision.{builder}",
        kind=Kind.INSTANCES,
        kernel=kernel,
        description=(
            f"torchvision {builder} instance segmentation (pretrained weights or a state_dict)"
        ),
        params=PARAMS,
        class_names=lambda p: _class_names(holder["m"], p),
        max_label=lambda p, h, w: int(p["max_detections"]),
        family="instance",
        make_runner=lambda p: _make_runner(holder["m"], p),
        has_confidence=True,
        runtime_params=frozenset({"batch_size", "device", "threads"}),
        extra={"builder": builder, "requires": "torch"},
        prepare=lambda p, local: _prepare(holder["m"], p, local),
        tiled=None,
        untiled_reason="sliding-window detection with cross-window NMS is a later step",
        uses_gpu=True,
        objects_default=True,
    )
    holder["m"] = method
    return method


METHODS: list[Method] = [_build(b) for b in BUILDERS]
