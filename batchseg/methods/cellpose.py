"""Cellpose 3 (``cellpose.cyto3``): a built-in model name or a model file (``batchseg[cellpose]``).

Each image is segmented by ``CellposeModel.eval`` exactly as the library's own loop does
(``channels``, ``diameter``, ``flow_threshold``, ``cellprob_threshold``, ``min_size``,
``bsize``); ``batch_size`` is how many tiles one forward pass takes on the worker's device.
Cellpose's masks do not overlap: ids are the library's own ``1..n``; the score of a cell is
the mean cell probability (sigmoid of the cell-probability map) over its pixels; one class,
``cell``. A built-in name is resolved in the launcher: the file in Cellpose's model folder
(``CELLPOSE_LOCAL_MODELS_PATH`` or ``~/.cellpose/models``), downloaded once when missing, or one
line naming the expected file and its URL when that fails (offline). torch and cellpose are
imported lazily.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from batchseg.core.kinds import Kind
from batchseg.errors import UsageError, one_line
from batchseg.methods import models
from batchseg.methods.base import Method, Param, Segmentation, one_image_kernel
from batchseg.methods.library_masks import renumbered, segmentation
from batchseg.methods.semantic import DEVICES

_NEEDS = "cellpose methods"
#: Where Cellpose 3 downloads its built-in models from (its ``models._MODEL_URL``).
MODEL_URL = "https://www.cellpose.org/models"

PARAMS: tuple[Param, ...] = (
    Param(
        "model",
        str,
        "cyto3",
        "a Cellpose 3 built-in model name (cyto3, nuclei, ...) or a model file",
    ),
    Param("diameter", float, 0.0, "cell diameter in pixels (0 = the model's own)", minimum=0.0),
    Param("flow_threshold", float, 0.4, "maximum flow error of a mask (0 = no check)", minimum=0.0),
    Param(
        "cellprob_threshold",
        float,
        0.0,
        "pixels above this cell probability (logit) are cells",
        minimum=-20.0,
        maximum=20.0,
    ),  # fmt: skip
    Param("min_size", int, 15, "masks with fewer pixels are dropped (-1: none)", minimum=-1),
    Param("channel", int, 0, "cytoplasm channel: 0 grey, 1 red, 2 green, 3 blue", (0, 1, 2, 3)),
    Param(
        "nuclear_channel", int, 0, "nuclear channel: 0 none, 1 red, 2 green, 3 blue", (0, 1, 2, 3)
    ),
    Param(
        "tile_size",
        int,
        224,
        "the network's tile size (Cellpose's bsize)",
        minimum=16,
        maximum=4096,
    ),
    Param("batch_size", int, 8, "tiles per forward pass", minimum=1, maximum=4096),
    Param("device", str, "auto", "auto (CUDA when available), cpu or cuda", DEVICES),
    Param(
        "threads", int, 0, "torch CPU threads (0 = leave torch's setting)", minimum=0, maximum=4096
    ),
)

_LOCK = threading.RLock()
_MODELS: dict[tuple[Any, ...], Any] = {}


def clear_cache() -> None:
    """Forget every cached Cellpose model of this process."""
    with _LOCK:
        _MODELS.clear()


def import_cellpose() -> Any:
    """The ``cellpose.models`` module; UsageError saying what to install when it is missing."""
    models.import_torch(_NEEDS)
    try:
        from cellpose import models as cp_models
    except ImportError as exc:
        raise UsageError(f"{_NEEDS} need cellpose 3 ({exc}); install batchseg[cellpose]") from None
    return cp_models


def builtin_file(name: str) -> tuple[str, str]:
    """(cached file, URL) of a built-in model name, as Cellpose itself names them."""
    cp_models = import_cellpose()
    base = f"{name}torch_0" if name in ("cyto", "cyto2", "nuclei") else name
    return os.fspath(cp_models.MODEL_DIR.joinpath(base)), f"{MODEL_URL}/{base}"


def model_identity(model: str) -> tuple[Any, ...]:
    """("file", path, mtime, size) of a model file or ("builtin", name, file, mtime, size)."""
    cp_models = import_cellpose()
    if model in cp_models.MODEL_NAMES and not os.path.exists(model):
        cached, url = builtin_file(model)
        if not os.path.isfile(cached):
            raise UsageError(
                f"Cellpose model {model!r} is not in Cellpose's model folder; expected file: "
                f"{cached} (download {url} there, or set CELLPOSE_LOCAL_MODELS_PATH)"
            )
        return ("builtin", model, *models.file_identity(cached, "Cellpose model file"))
    if not (os.sep in model or "/" in model or os.path.exists(model)):
        names = ", ".join(cp_models.MODEL_NAMES[:6])
        raise UsageError(
            f"Cellpose model {model!r} is neither a file nor a built-in name ({names}, ...)"
        )
    return ("file", *models.file_identity(model, "Cellpose model file"))


def ensure_builtin(model: str) -> None:
    """Launcher: a built-in model's file is cached, downloaded now (once) when missing."""
    cp_models = import_cellpose()
    if model not in cp_models.MODEL_NAMES or os.path.exists(model):
        return
    cached, url = builtin_file(model)
    if os.path.isfile(cached):
        return
    import socket

    import torch

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(models.DOWNLOAD_TIMEOUT_S)
    try:
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        torch.hub.download_url_to_file(url, cached, progress=False)
    except Exception as exc:  # noqa: BLE001 - offline, proxy, disk: one usage error
        raise UsageError(
            f"Cellpose model {model!r} is not cached and could not be downloaded "
            f"({one_line(exc, 120)}); expected file: {cached} (download {url} there on a "
            "machine with network, or set CELLPOSE_LOCAL_MODELS_PATH to a folder that has it)"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def load_model(model: str, device: str) -> Any:
    """A ``CellposeModel`` of ``model`` on ``device`` (cached per process and file identity)."""
    cp_models = import_cellpose()
    import torch

    ident = model_identity(model)
    key = (ident, device)
    with _LOCK:
        loaded = _MODELS.get(key)
        if loaded is None:
            try:
                loaded = cp_models.CellposeModel(
                    gpu=device.startswith("cuda"), pretrained_model=model,
                    device=torch.device(device),
                )  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - a file that is no Cellpose model
                raise UsageError(
                    f"cannot load Cellpose model {model!r}: {one_line(exc, 200)}"
                ) from None
            _MODELS[key] = loaded
        return loaded


def eval_kwargs(params: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``CellposeModel.eval`` that ``params`` set."""
    return {
        "batch_size": int(params["batch_size"]),
        "channels": [int(params["channel"]), int(params["nuclear_channel"])],
        "diameter": float(params["diameter"]) or None,
        "flow_threshold": float(params["flow_threshold"]),
        "cellprob_threshold": float(params["cellprob_threshold"]),
        "min_size": int(params["min_size"]),
        "bsize": int(params["tile_size"]),
    }


def cell_segmentation(masks: np.ndarray, cellprob: np.ndarray) -> Segmentation:
    """batchseg's instance output of Cellpose's masks and cell-probability logits."""
    ids = renumbered(np.asarray(masks))
    n = int(ids.max()) if ids.size else 0
    prob = 1.0 / (1.0 + np.exp(-np.asarray(cellprob, dtype=np.float64)))
    sums = np.bincount(ids.ravel(), weights=prob.ravel(), minlength=n + 1)[1:]
    counts = np.bincount(ids.ravel(), minlength=n + 1)[1:]
    return segmentation(ids, sums / np.maximum(counts, 1), np.dtype(np.uint32))


class CellposeRunner:
    """Segments images one by one with a loaded Cellpose model; failures stay per image."""

    def __init__(self, model: Any, kwargs: dict[str, Any]) -> None:
        self.model = model
        self.kwargs = kwargs
        self.batch_size = 1 if model.device.type == "cpu" else 8

    def segment_batch(self, images: Sequence[np.ndarray]) -> list[Segmentation | Exception]:
        out: list[Segmentation | Exception] = []
        for image in images:
            try:
                masks, flows, _ = self.model.eval(np.asarray(image), **self.kwargs)
                out.append(cell_segmentation(masks, flows[2]))
            except Exception as exc:  # noqa: BLE001 - recorded per image
                out.append(exc)
        return out


def _make_runner(method: Method, raw: Mapping[str, Any]) -> CellposeRunner:
    torch = models.import_torch(_NEEDS)
    params = method.resolve_params(raw)
    device = models.resolve_device(params["device"])
    if params["threads"] > 0 and torch.get_num_threads() != params["threads"]:
        torch.set_num_threads(params["threads"])
    return CellposeRunner(load_model(params["model"], device), eval_kwargs(params))


def _prepare(method: Method, params: Mapping[str, Any], local_workers: bool = True) -> None:
    """Launcher check: cellpose imports, the model file is there (downloaded when a built-in
    name is missing) and loads, the device exists."""
    params = method.resolve_params(params)
    import_cellpose()
    if params["device"] == "cuda" and local_workers:
        models.resolve_device("cuda")
    ensure_builtin(params["model"])
    load_model(params["model"], "cpu")


def _build() -> Method:
    holder: dict[str, Method] = {}

    kernel = one_image_kernel(lambda kw: _make_runner(holder["m"], kw))

    method = Method(
        id="cellpose.cyto3",
        kind=Kind.INSTANCES,
        kernel=kernel,
        description="Cellpose 3 cells (cyto3, nuclei, ... or a model file; batchseg[cellpose])",
        params=PARAMS,
        class_names=lambda p: ["background", "cell"],
        family="instance",
        make_runner=lambda p: _make_runner(holder["m"], p),
        has_confidence=True,
        runtime_params=frozenset({"batch_size", "device", "threads"}),
        extra={"requires": "cellpose"},
        prepare=lambda p, local: _prepare(holder["m"], p, local),
        untiled_reason="Cellpose tiles each image itself (tile_size)",
        uses_gpu=True,
        objects_default=True,
    )
    holder["m"] = method
    return method


METHODS: list[Method] = [_build()]
