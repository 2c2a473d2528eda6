"""Segment Anything automatic mask generation (``sam.automatic``; ``batchseg[sam]``).

The library's ``SamAutomaticMaskGenerator`` runs on each image (a grid of ``points_per_side``
squared point prompts, ``points_per_batch`` prompts per forward pass on the worker's device,
masks kept where the predicted IoU is ``>= pred_iou_thresh`` and the stability score
``>= stability_score_thresh``, duplicates removed by box NMS at ``box_nms_thresh``). Masks of
fewer than ``min_area`` pixels are then dropped. SAM's masks overlap: as with Mask R-CNN, the
higher-scored mask (score: predicted IoU; ties keep the library's order) wins each pixel, a mask
left without a pixel is dropped and ids ``1..n`` follow descending score. Per instance:
``score`` (predicted IoU), ``predicted_iou``, ``stability_score`` and ``mask_area`` (the whole
mask). One class, ``object``. The checkpoint is a file (``sam_vit_b``/``_l``/``_h``; the
encoder's size is read from it). torch and segment_anything are imported lazily.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from batchseg.core.kinds import Kind
from batchseg.errors import UsageError
from batchseg.io.normalise import model_rgb
from batchseg.methods import models, sam_models
from batchseg.methods.base import Method, Param, Segmentation, one_image_kernel
from batchseg.methods.library_masks import paint_by_score, segmentation
from batchseg.methods.semantic import DEVICES

_NEEDS = "Segment Anything methods"
#: Options of ``SamAutomaticMaskGenerator`` that parameters of the same name set.
GENERATOR_OPTIONS = (
    "points_per_side", "points_per_batch", "pred_iou_thresh", "stability_score_thresh",
    "box_nms_thresh",
)  # fmt: skip

PARAMS: tuple[Param, ...] = (
    Param("checkpoint", str, "", "SAM checkpoint file (sam_vit_b/_l/_h_*.pth)"),
    Param("points_per_side", int, 32, "point prompts per image side", minimum=1, maximum=256),
    Param("points_per_batch", int, 64, "point prompts per forward pass", minimum=1, maximum=65536),
    Param(
        "pred_iou_thresh",
        float,
        0.88,
        "keep masks whose predicted IoU is >= this",
        minimum=0.0,
        maximum=1.0,
    ),  # fmt: skip
    Param(
        "stability_score_thresh",
        float,
        0.95,
        "keep masks whose stability score is >= this",
        minimum=0.0,
        maximum=1.0,
    ),  # fmt: skip
    Param(
        "box_nms_thresh",
        float,
        0.7,
        "box IoU above which the lower-scored duplicate goes",
        minimum=0.0,
        maximum=1.0,
    ),  # fmt: skip
    Param("min_area", int, 0, "drop masks of fewer pixels", minimum=0),
    Param("device", str, "auto", "auto (CUDA when available), cpu or cuda", DEVICES),
    Param(
        "threads", int, 0, "torch CPU threads (0 = leave torch's setting)", minimum=0, maximum=4096
    ),
)

_LOCK = threading.RLock()
_MODELS: dict[tuple[Any, ...], Any] = {}


def clear_cache() -> None:
    """Forget every cached SAM network of this process."""
    with _LOCK:
        _MODELS.clear()


def _identity(checkpoint: str) -> tuple[str, int, int]:
    if not checkpoint:
        raise UsageError("method sam.automatic needs checkpoint=PATH (a sam_vit_b/_l/_h file)")
    return models.file_identity(checkpoint, "SAM checkpoint")


def load_sam(checkpoint: str, device: str) -> Any:
    """The Sam network of ``checkpoint`` on ``device`` (cached per process and file identity)."""
    key = (_identity(checkpoint), device)
    with _LOCK:
        sam = _MODELS.get(key)
        if sam is None:
            sam = sam_models.build_sam(checkpoint)[0].to(device)
            _MODELS[key] = sam
        return sam


def sam_rgb(image: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 RGB, what ``SamAutomaticMaskGenerator.generate`` takes."""
    arr = model_rgb(image)
    if arr.dtype != np.uint8:
        arr = np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8)
    return arr


def masks_segmentation(
    records: list[dict[str, Any]], shape: tuple[int, int], min_area: int
) -> Segmentation:
    """batchseg's instance output of the generator's records (overlaps resolved by score)."""
    records = [r for r in records if int(r["area"]) >= min_area]
    scores = np.array([float(r["predicted_iou"]) for r in records], dtype=np.float64)
    ids, kept = paint_by_score([r["segmentation"] for r in records], scores, shape)
    chosen = [records[int(k)] for k in kept]
    extra = {
        "predicted_iou": scores[kept],
        "stability_score": np.array([float(r["stability_score"]) for r in chosen]),
        "mask_area": np.array([int(r["area"]) for r in chosen], dtype=np.int64),
    }
    return segmentation(ids, scores[kept], np.dtype(np.uint32), extra)


class SamRunner:
    """Runs SAM's automatic mask generator image by image; failures stay per image."""

    batch_size = 1

    def __init__(self, sam: Any, params: Mapping[str, Any]) -> None:
        from segment_anything import SamAutomaticMaskGenerator

        options = {k: params[k] for k in GENERATOR_OPTIONS}
        self.generator = SamAutomaticMaskGenerator(sam, **options)
        self.min_area = int(params["min_area"])

    def segment_batch(self, images: Sequence[np.ndarray]) -> list[Segmentation | Exception]:
        import torch

        out: list[Segmentation | Exception] = []
        for image in images:
            try:
                rgb = sam_rgb(image)
                with torch.inference_mode():
                    records = self.generator.generate(rgb)
                out.append(masks_segmentation(records, rgb.shape[:2], self.min_area))
            except Exception as exc:  # noqa: BLE001 - recorded per image
                out.append(exc)
        return out


def _make_runner(method: Method, raw: Mapping[str, Any]) -> SamRunner:
    torch = models.import_torch(_NEEDS)
    sam_models.import_sam()
    params = method.resolve_params(raw)
    device = models.resolve_device(params["device"])
    if params["threads"] > 0 and torch.get_num_threads() != params["threads"]:
        torch.set_num_threads(params["threads"])
    return SamRunner(load_sam(params["checkpoint"], device), params)


def _prepare(method: Method, params: Mapping[str, Any], local_workers: bool = True) -> None:
    """Launcher check: segment_anything imports, the checkpoint is a SAM that loads, the
    device exists."""
    params = method.resolve_params(params)
    sam_models.import_sam()
    if params["device"] == "cuda" and local_workers:
        models.resolve_device("cuda")
    load_sam(params["checkpoint"], "cpu")


def _build() -> Method:
    holder: dict[str, Method] = {}

    kernel = one_image_kernel(lambda kw: _make_runner(holder["m"], kw))

    method = Method(
        id="sam.automatic",
        kind=Kind.INSTANCES,
        kernel=kernel,
        description="Segment Anything automatic masks (a sam_vit_b/_l/_h checkpoint; batchseg[sam])",
        params=PARAMS,
        class_names=lambda p: ["background", "object"],
        max_label=lambda p, h, w: 3 * int(p["points_per_side"]) ** 2,
        family="instance",
        make_runner=lambda p: _make_runner(holder["m"], p),
        has_confidence=True,
        runtime_params=frozenset({"points_per_batch", "device", "threads"}),
        extra={"requires": "segment-anything"},
        prepare=lambda p, local: _prepare(holder["m"], p, local),
        untiled_reason="SAM resizes each image to its input size itself",
        uses_gpu=True,
        objects_default=True,
    )
    holder["m"] = method
    return method


METHODS: list[Method] = [_build()]
