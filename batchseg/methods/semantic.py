"""Semantic segmentation with torchvision models and TorchScript files.

Importing this module registers the methods ``torchvision.<builder>`` and ``torchscript``;
torch is imported lazily (inside functions), so registration works without torch.

Each worker process loads a network once: :func:`make_runner` caches runners (and the
loaded networks behind them) in module-level dicts guarded by a lock, keyed by the method,
the weights' identity (file path, mtime and size), the device and the precision.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from batchseg.errors import ImageError, UsageError
from batchseg.methods import models
from batchseg.methods.base import Method, Param, Segmentation
from batchseg.methods.registry import register

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
    Param("threads", int, 0, "torch CPU threads (0 = leave torch's setting)", minimum=0),
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


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("device 'cuda' requested but torch sees no CUDA device")
    return device


def _check_precision(precision: str, device: str) -> None:
    if precision == "fp16" and device == "cpu":
        raise UsageError(
            "precision 'fp16' needs a CUDA device; on the CPU use precision=bf16 or fp32"
        )


def _import_torch() -> Any:
    try:
        import torch
        import torchvision  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"semantic methods need torch and torchvision ({exc}); install batchseg[torch]"
        ) from None
    return torch


# --------------------------------------------------------------------------- model identity


def _model_identity(method: Method, params: Mapping[str, Any]) -> tuple[Any, ...]:
    """What identifies the network's weights: file identity, or weights member + cache file."""
    if method.id == "torchscript":
        if not params["model"]:
            raise UsageError("method torchscript needs model=PATH (a TorchScript file)")
        return ("torchscript", *models.file_identity(params["model"], "TorchScript model"))
    builder = method.extra["builder"]
    weights = params["weights"]
    if models.is_weights_path(weights):
        return ("state_dict", *models.file_identity(weights, "state_dict file"))
    member = models.resolve_weights(builder, weights)
    cached = models.cached_weights_file(member)
    try:
        st = os.stat(cached)
        stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = None
    return ("weights", repr(member), cached, stamp)


def _load(method: Method, params: Mapping[str, Any], device: str, cl: bool) -> models.LoadedModel:
    if method.id == "torchscript":
        return models.load_torchscript(params["model"], device, cl)
    return models.load_torchvision(method.extra["builder"], params["weights"], device, cl)


def _num_classes_on_client(method: Method, params: Mapping[str, Any]) -> tuple[int, list[str]]:
    """(num_classes, default names) without building the network where possible."""
    _import_torch()
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


# --------------------------------------------------------------------------- runner


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """H x W x 3 array: uint8 kept as is (scaled by the runner), others float32 in [0, 1]."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = arr[:, :, :3]
    else:
        raise ImageError(f"expected an H x W or H x W x 3 image, got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"empty image of shape {arr.shape}")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer):
        top = float(np.iinfo(arr.dtype).max)
        out = arr.astype(np.float32) / np.float32(top)
        return np.clip(out, 0.0, 1.0) if np.issubdtype(arr.dtype, np.signedinteger) else out
    if np.issubdtype(arr.dtype, np.floating):
        return np.ascontiguousarray(arr, dtype=np.float32)
    raise ImageError(f"unsupported image dtype {arr.dtype}")


#: Up to this many classes the label / confidence maps are computed class by class.
_PER_CLASS_MAX = 64


def _labels_and_confidence(logits: Any) -> tuple[Any, Any]:
    """(argmax over classes, max softmax probability) of (N, C, H, W) float logits.

    The max softmax probability is 1 / sum_c exp(logit_c - max logit). On the CPU,
    ``argmax(1)`` over the class axis of an NCHW tensor is a strided reduction that took
    ~3x the time of everything else here (51 ms per 480x360 image, 11 classes, one thread);
    for a modest class count this walks the classes as contiguous (N, H, W) planes instead
    (same result: the first maximal class wins, as with ``argmax``).
    """
    import torch

    n_classes = int(logits.shape[1])
    if logits.device.type != "cpu" or n_classes > _PER_CLASS_MAX:
        top, labels = logits.max(1)
        conf = torch.exp(logits - top.unsqueeze(1)).sum(1).reciprocal_()
        return labels, conf
    top = logits[:, 0].clone()
    labels = torch.zeros(top.shape, dtype=torch.uint8)
    for c in range(1, n_classes):
        plane = logits[:, c]
        labels.masked_fill_(plane > top, c)
        torch.maximum(top, plane, out=top)
    total = torch.zeros_like(top)
    tmp = torch.empty_like(top)
    for c in range(n_classes):
        torch.sub(logits[:, c], top, out=tmp)
        total.add_(tmp.exp_())
    return labels, total.reciprocal_()


class SemanticRunner:
    """Segments batches with one loaded network; built once per process per parameters."""

    def __init__(
        self,
        loaded: models.LoadedModel,
        *,
        device: str,
        precision: str,
        preprocess: models.Preprocess,
        batch_size: int,
        channels_last: bool,
        class_names: list[str] | None = None,
    ) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.num_classes = loaded.num_classes
        self.device = device
        self.precision = precision
        self.preprocess = preprocess
        self.batch_size = int(batch_size)
        self.channels_last = channels_last and device.startswith("cuda")
        self.class_names = class_names

    # one result per image; exceptions are returned, never raised
    def segment_batch(self, images: Sequence[np.ndarray]) -> list[Segmentation | Exception]:
        results: list[Segmentation | Exception | None] = [None] * len(images)
        groups: dict[tuple[Any, ...], list[tuple[int, np.ndarray]]] = {}
        for i, image in enumerate(images):
            try:
                arr = _as_rgb(image)
            except Exception as exc:  # noqa: BLE001 - recorded per image
                results[i] = exc
                continue
            groups.setdefault((arr.shape, arr.dtype.str), []).append((i, arr))
        for items in groups.values():
            for start in range(0, len(items), self.batch_size):
                self._run_chunk(items[start : start + self.batch_size], results)
        return [r if r is not None else ImageError("image was not segmented") for r in results]

    def _run_chunk(
        self,
        chunk: list[tuple[int, np.ndarray]],
        results: list[Segmentation | Exception | None],
    ) -> None:
        try:
            segs = self._infer([arr for _, arr in chunk])
        except Exception as exc:  # noqa: BLE001 - retried image by image, then recorded
            self._recover()
            if len(chunk) == 1:
                results[chunk[0][0]] = exc
                return
            for item in chunk:
                self._run_chunk([item], results)
            return
        for (i, _), seg in zip(chunk, segs, strict=True):
            results[i] = seg

    def _recover(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            with contextlib.suppress(Exception):
                torch.cuda.empty_cache()

    def _autocast(self) -> Any:
        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        return torch.autocast(
            device_type="cuda" if self.device.startswith("cuda") else "cpu", dtype=dtype
        )

    def _forward(self, arrays: list[np.ndarray]) -> Any:
        """Float logits (N, C, H, W) of same-shape RGB arrays at their own size (no grad)."""
        import torch
        import torch.nn.functional as F
        from torchvision.transforms.functional import InterpolationMode, resize

        cuda = self.device.startswith("cuda")
        pp = self.preprocess
        host = torch.from_numpy(np.stack(arrays))  # N, H, W, 3
        if cuda:
            x = host.pin_memory().to(self.device, non_blocking=True)
        else:
            x = host
        x = x.permute(0, 3, 1, 2)
        if not self.channels_last:
            # the NCHW copy the network needs, made while the pixels are still 1 byte
            x = x.contiguous()
        height, width = int(x.shape[-2]), int(x.shape[-1])
        if pp.resize_size:
            x = resize(
                x,
                list(pp.resize_size),
                interpolation=InterpolationMode.BILINEAR,
                antialias=pp.antialias,
            )
        is_uint8 = x.dtype == torch.uint8
        # np.stack copied the caller's arrays, so in-place work never touches them
        x = x.float()
        # (x / 255 - mean) / std as one scale and one shift, in place
        std = torch.as_tensor(pp.std, dtype=torch.float64)
        mean = torch.as_tensor(pp.mean, dtype=torch.float64)
        scale = (1.0 / (std * 255.0) if is_uint8 else 1.0 / std).to(torch.float32)
        shift = (-mean / std).to(torch.float32)
        x = x.mul_(scale.to(x.device).view(-1, 1, 1)).add_(shift.to(x.device).view(-1, 1, 1))
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        x = x.contiguous(memory_format=fmt)
        with self._autocast():
            out = self.model(x)
        logits = models.logits_of(out).float()
        if tuple(logits.shape[-2:]) != (height, width):
            logits = F.interpolate(
                logits, size=(height, width), mode="bilinear", align_corners=False
            )
        return logits

    def logits(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Float32 logits (N, C, H, W) of same-shape images, in batches of ``batch_size``."""
        import torch

        arrays = [_as_rgb(image) for image in images]
        out = []
        with torch.inference_mode():
            for start in range(0, len(arrays), self.batch_size):
                out.append(self._forward(arrays[start : start + self.batch_size]).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.num_classes, 0, 0), np.float32)

    def _infer(self, arrays: list[np.ndarray]) -> list[Segmentation]:
        import torch

        with torch.inference_mode():
            logits = self._forward(arrays)
            big = logits.shape[1] > 256
            labels, conf = _labels_and_confidence(logits)
            conf = conf.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
            labels = labels.to(torch.int32 if big else torch.uint8)
            labels_np = labels.cpu().numpy()
            conf_np = conf.cpu().numpy()
        if big:
            labels_np = labels_np.astype(np.uint16)
        return [Segmentation(labels_np[k], conf_np[k]) for k in range(len(arrays))]


def _make_runner(method: Method, raw: Mapping[str, Any]) -> SemanticRunner:
    torch = _import_torch()
    params = method.resolve_params(raw)
    device = _resolve_device(params["device"])
    precision = params["precision"]
    _check_precision(precision, device)
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

    def kernel(image: np.ndarray, **kw: Any) -> np.ndarray:
        result = _make_runner(holder["m"], kw).segment_batch([image])[0]
        if isinstance(result, Exception):
            raise result
        return result.labels

    method = Method(
        id=method_id,
        kind="classes",
        kernel=kernel,
        description=description,
        params=params,
        class_names=lambda p: _class_names(holder["m"], p),
        family="semantic",
        make_runner=lambda p: _make_runner(holder["m"], p),
        has_confidence=True,
        runtime_params=frozenset({"batch_size", "device", "threads", "channels_last"}),
        extra=dict(extra),
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
for _m in METHODS:
    register(_m)
