"""Loading semantic-segmentation networks: torchvision builders and TorchScript files.

torch and torchvision are imported lazily, inside the functions, so that importing this
module (and registering the semantic methods) works where torch is not installed.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from batchseg.errors import UsageError, one_line

#: torchvision segmentation builders offered as ``torchvision.<builder>`` methods.
BUILDERS: tuple[str, ...] = (
    "fcn_resnet50",
    "fcn_resnet101",
    "deeplabv3_resnet50",
    "deeplabv3_resnet101",
    "deeplabv3_mobilenet_v3_large",
    "lraspp_mobilenet_v3_large",
)

IMAGENET_MEAN: tuple[float, ...] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, ...] = (0.229, 0.224, 0.225)

# state_dict key of the final classifier convolution (its weight is num_classes x C x 1 x 1)
# and of the auxiliary classifier's, per builder family.
_HEAD_KEYS: dict[str, tuple[str, str | None]] = {
    "fcn": ("classifier.4.weight", "aux_classifier.4.weight"),
    "deeplabv3": ("classifier.4.weight", "aux_classifier.4.weight"),
    "lraspp": ("classifier.high_classifier.weight", None),
}

#: How many networks this process has loaded, by source description (for tests, logs).
load_counts: Counter[str] = Counter()


@dataclass(frozen=True)
class Preprocess:
    """What is done to an RGB image before the network: resize, scale to [0, 1], normalise.

    ``resize_size`` follows torchvision's ``F.resize``: None (original size), ``[n]``
    (shorter edge to n, aspect kept) or ``[h, w]``.
    """

    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    resize_size: tuple[int, ...] | None = None
    antialias: bool = True


@dataclass
class LoadedModel:
    """A network ready for inference (eval mode, on its device) and what it needs."""

    model: Any
    num_classes: int
    categories: list[str] | None
    preprocess: Preprocess
    source: str


# --------------------------------------------------------------------------- helpers


def import_torch(what: str = "semantic methods") -> Any:
    """The torch module; UsageError naming ``what`` needs it when torch/torchvision are missing."""
    try:
        import torch
        import torchvision  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"{what} need torch and torchvision ({exc}); install batchseg[torch]"
        ) from None
    return torch


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a CUDA device, else ``cpu``; ``cuda`` is checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("device 'cuda' requested but torch sees no CUDA device")
    return device


def check_precision(precision: str, device: str) -> None:
    """UsageError for a precision the device cannot run (fp16 on the CPU)."""
    if precision == "fp16" and device == "cpu":
        raise UsageError(
            "precision 'fp16' needs a CUDA device; on the CPU use precision=bf16 or fp32"
        )


_FITTED: set[tuple[Any, ...]] = set()  # state_dict files known to fit their network
_FITTED_LOCK = threading.Lock()


def forget_fitted() -> None:
    """Forget which state_dict files were found to fit (tests; a file may have changed)."""
    with _FITTED_LOCK:
        _FITTED.clear()


def check_device(params: Mapping[str, Any], local_workers: bool) -> None:
    """Launcher check of ``device``/``precision``: CUDA asked for where the (local) workers have
    none, or fp16 on the CPU, is a UsageError. Remote workers may have GPUs this machine lacks."""
    if params["device"] == "cuda" and local_workers:
        resolve_device("cuda")
    if params["device"] == "cpu":
        check_precision(params["precision"], "cpu")


def check_weights(
    method_id: str,
    builder: str,
    weights: str,
    ident: tuple[Any, ...],
    fit: Callable[[str, str], Any],
) -> None:
    """Launcher check of a torchvision model's weights (``ident`` from
    :func:`weights_identity`): a weights name's file is cached (or downloaded) now; a
    state_dict is loaded into its network by ``fit(builder, path)`` once per process, so a
    checkpoint of another architecture or class count is one usage error naming the file."""
    if ident[0] == "weights":
        ensure_cached_weights(builder, resolve_weights(builder, weights))
        return
    if ident[0] != "state_dict":
        return
    key = (method_id, *ident)
    with _FITTED_LOCK:
        if key in _FITTED:
            return
    fit(builder, weights)
    with _FITTED_LOCK:
        _FITTED.add(key)


def is_weights_path(weights: str) -> bool:
    """True when ``weights`` names a state_dict file rather than a torchvision weights name."""
    if os.sep in weights or "/" in weights or (os.altsep and os.altsep in weights):
        return True
    if weights.lower().endswith((".pt", ".pth")):
        return True
    return os.path.exists(weights)


def file_identity(path: str, what: str = "file") -> tuple[str, int, int]:
    """(real path, mtime ns, size): changes when the file is replaced or rewritten."""
    real = os.path.realpath(os.path.expanduser(path))
    try:
        st = os.stat(real)
    except OSError:
        raise UsageError(f"{what} {path!r} does not exist") from None
    if not os.path.isfile(real):
        raise UsageError(f"{what} {path!r} is not a file")
    return real, st.st_mtime_ns, st.st_size


def read_classes_file(path: str) -> list[str]:
    """Class names, one per non-blank line."""
    file_identity(path, "classes file")
    with open(os.path.expanduser(path), encoding="utf-8") as fh:
        names = [line.strip() for line in fh]
    names = [n for n in names if n]
    if not names:
        raise UsageError(f"classes file {path!r} lists no class names")
    return names


def check_class_count(names: list[str], n: int, path: str, source: str) -> list[str]:
    """``names`` when it has ``n`` entries, else a clear UsageError."""
    if len(names) != n:
        raise UsageError(
            f"classes file {path!r} lists {len(names)} class names but {source} "
            f"predicts {n} classes"
        )
    return names


def _family(builder: str) -> str:
    return builder.split("_", 1)[0]


def resolve_weights(builder: str, name: str) -> Any:
    """The torchvision weights enum member ``name`` (``DEFAULT``, ``COCO_WITH_VOC_LABELS_V1``)."""
    from torchvision.models import get_model_weights

    enum = get_model_weights(builder)
    key = name.strip()
    if key.startswith(enum.__name__ + "."):
        key = key[len(enum.__name__) + 1 :]
    for candidate in (key, key.upper()):
        try:
            return enum[candidate]
        except KeyError:
            continue
    names = ", ".join(["DEFAULT", *enum.__members__])
    raise UsageError(
        f"unknown weights {name!r} for {builder}; use one of {names} or a state_dict file path"
    )


def cached_weights_file(member: Any) -> str:
    """Where torch hub keeps (or would download) the file of a torchvision weights member."""
    import torch

    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(member.url))


def weights_identity(builder: str, weights: str) -> tuple[Any, ...]:
    """What identifies the weights of a torchvision builder (cache keys).

    ``("state_dict", path, mtime, size)`` for a file; ``("weights", member, cached file,
    (mtime, size) or None)`` for a weights name, so that refilling the cache reloads.
    """
    if is_weights_path(weights):
        return ("state_dict", *file_identity(weights, "state_dict file"))
    member = resolve_weights(builder, weights)
    cached = cached_weights_file(member)
    try:
        st = os.stat(cached)
        stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = None
    return ("weights", repr(member), cached, stamp)


#: Seconds the launcher waits on the network when it fetches missing weights.
DOWNLOAD_TIMEOUT_S = 30.0


def ensure_cached_weights(builder: str, member: Any) -> str:
    """The cached file of weights ``member``, downloaded now (once, in the launcher) if missing.

    UsageError naming the expected file and how to fill it when it is absent and cannot be
    downloaded (e.g. offline), so the job fails once before any task instead of per image.
    """
    import socket

    import torch

    cached = cached_weights_file(member)
    if os.path.isfile(cached):
        return cached
    found = torch.hub.HASH_REGEX.search(os.path.basename(cached))
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        torch.hub.download_url_to_file(
            member.url, cached, hash_prefix=found.group(1) if found else None, progress=False
        )
    except Exception as exc:  # noqa: BLE001 - offline, proxy, disk: one usage error
        raise UsageError(
            f"weights {member!r} for {builder} are not in the torch hub cache and could not be "
            f"downloaded ({one_line(exc, 120)}); expected file: {cached} (download {member.url} "
            "there on a machine with network, or set TORCH_HOME to a cache that has it)"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    return cached


def _preprocess_from_transforms(member: Any) -> Preprocess:
    """Mean, std and resize of ``member.transforms()`` (torchvision's SemanticSegmentation)."""
    t = member.transforms()
    size = getattr(t, "resize_size", None)
    return Preprocess(
        mean=tuple(float(v) for v in getattr(t, "mean", IMAGENET_MEAN)),
        std=tuple(float(v) for v in getattr(t, "std", IMAGENET_STD)),
        resize_size=tuple(int(v) for v in size) if size else None,
        antialias=bool(getattr(t, "antialias", True)),
    )


def load_checkpoint(path: str) -> dict[str, Any]:
    """The state_dict in ``path`` (also unwraps {"model": sd} / {"state_dict": sd})."""
    import torch

    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) format cannot be memory-mapped
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a usage problem
        raise UsageError(f"cannot read state_dict {path!r}: {one_line(exc, 300)}") from None
    if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise UsageError(
            f"{path!r} is not a state_dict (save one with torch.save(model.state_dict(), path))"
        )
    return obj


def _head_shape(builder: str, state: dict[str, Any], path: str) -> tuple[int, bool]:
    head, aux = _HEAD_KEYS[_family(builder)]
    weight = state.get(head)
    if weight is None or getattr(weight, "ndim", 0) != 4:
        raise UsageError(
            f"state_dict {path!r} does not fit {builder}: it has no classifier weight "
            f"{head!r}; was it saved from a {builder} model?"
        )
    return int(weight.shape[0]), aux is not None and aux in state


def inspect_state_dict(builder: str, path: str) -> tuple[int, bool]:
    """(num_classes, has auxiliary classifier) read from the checkpoint's tensor shapes."""
    return _head_shape(builder, load_checkpoint(path), path)


def _finish(model: Any, device: str, channels_last: bool) -> Any:
    import torch

    model.eval()
    model.to(device)
    if channels_last and device.startswith("cuda"):
        model.to(memory_format=torch.channels_last)
    return model


# --------------------------------------------------------------------------- loaders


def model_from_state_dict(builder: str, weights: str) -> tuple[Any, int, str]:
    """(model, num_classes, path): ``builder`` with the state_dict file ``weights`` loaded.

    UsageError naming the file and the mismatch when its tensors do not fit the network
    (missing or unexpected keys, wrong shapes).
    """
    from torchvision.models import get_model

    path = file_identity(weights, "state_dict file")[0]
    state = load_checkpoint(path)
    n, has_aux = _head_shape(builder, state, weights)
    kwargs: dict[str, Any] = {"num_classes": n}
    if _family(builder) != "lraspp":
        kwargs["aux_loss"] = has_aux
    model = get_model(builder, weights=None, weights_backbone=None, **kwargs)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UsageError(
            f"state_dict {weights!r} does not fit {builder} "
            f"(num_classes={n}, aux_loss={has_aux}): {one_line(exc, 300)}"
        ) from None
    return model, n, path


def load_torchvision(
    builder: str, weights: str, device: str = "cpu", channels_last: bool = False
) -> LoadedModel:
    """Build ``builder`` with a torchvision weights name or from a state_dict file."""
    from torchvision.models import get_model

    if is_weights_path(weights):
        model, n, path = model_from_state_dict(builder, weights)
        load_counts[f"{builder}:{path}"] += 1
        return LoadedModel(
            _finish(model, device, channels_last), n, None, Preprocess(), f"{builder}({path})"
        )

    member = resolve_weights(builder, weights)
    try:
        model = get_model(builder, weights=member, progress=False)
    except Exception as exc:  # noqa: BLE001 - download / cache failures become usage errors
        cached = cached_weights_file(member)
        if not os.path.exists(cached):
            raise UsageError(
                f"weights {member!r} for {builder} are not in the torch hub cache and could not "
                f"be downloaded ({one_line(exc, 120)}); expected file: {cached}"
            ) from None
        raise UsageError(
            f"cannot load cached weights {cached} for {builder}: {one_line(exc, 300)}"
        ) from None
    categories = list(member.meta["categories"])
    load_counts[f"{builder}:{member!r}"] += 1
    return LoadedModel(
        _finish(model, device, channels_last),
        len(categories),
        categories,
        _preprocess_from_transforms(member),
        f"{builder}({member!r})",
    )


def _load_script_module(path: str) -> Any:
    import torch

    try:
        return torch.jit.load(path, map_location="cpu")
    except Exception as exc:  # noqa: BLE001
        raise UsageError(f"cannot load TorchScript model {path!r}: {one_line(exc, 300)}") from None


def logits_of(output: Any) -> Any:
    """The (N, C, H, W) logits of a model output: the tensor, or ``output["out"]``."""
    if isinstance(output, dict):
        if "out" not in output:
            raise UsageError(f"model output dict has no 'out' entry (keys: {sorted(output)})")
        output = output["out"]
    elif isinstance(output, (tuple, list)) and output:
        output = output[0]
    if getattr(output, "ndim", 0) != 4:
        raise UsageError(
            f"model must return (N, C, H, W) logits or a dict with 'out'; got {type(output)}"
        )
    return output


def probe_num_classes(model: Any, device: str = "cpu") -> int:
    """Number of classes of a model, by a dry forward of a 1x3x64x64 input."""
    import torch

    with torch.inference_mode():
        out = logits_of(model(torch.zeros(1, 3, 64, 64, device=device)))
    return int(out.shape[1])


def load_torchscript(path: str, device: str = "cpu", channels_last: bool = False) -> LoadedModel:
    """A TorchScript segmentation model: ImageNet-normalised RGB in, logits out."""
    real = file_identity(path, "TorchScript model")[0]
    module = _finish(_load_script_module(real), device, channels_last)
    try:
        n = probe_num_classes(module, device)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise UsageError(
            f"TorchScript model {path!r} fails on a 1x3x64x64 input: {one_line(exc, 300)}"
        ) from None
    load_counts[f"torchscript:{real}"] += 1
    return LoadedModel(module, n, None, Preprocess(), f"torchscript({real})")


def torchscript_num_classes(path: str) -> int:
    """Number of classes of a TorchScript model file (loaded on the CPU, dry forward)."""
    return load_torchscript(path, "cpu").num_classes
