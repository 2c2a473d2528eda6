"""Mask R-CNN networks for the instance methods: loading, and batched inference.

:func:`load_detector` builds a torchvision Mask R-CNN from a weights name (through
:func:`batchseg.methods.models.load_torchvision`, i.e. torchvision's own loading from the
torch hub cache) or from a ``state_dict`` file, and sets its inference settings
(:class:`DetectorConfig`). :class:`InstanceRunner` runs it on batches of images and turns
each image's detections into an instance-id map, a class map, a confidence map and a
per-instance table (:func:`paint_instances` resolves overlaps). torch is imported lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from batchseg.errors import UsageError, one_line
from batchseg.methods import models
from batchseg.methods.base import INSTANCE_FIELDS, Segmentation, smallest_uint
from batchseg.methods.inference import BatchRunner

#: state_dict key of the box classifier (num_classes x 1024; rows include the background).
HEAD_KEY = "roi_heads.box_predictor.cls_score.weight"

#: Columns of :attr:`batchseg.methods.base.Segmentation.instances` (row i: instance id i + 1).
INSTANCE_COLUMNS = INSTANCE_FIELDS


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of the network itself: what it returns, and the size it runs at."""

    score_threshold: float
    max_detections: int
    min_size: int
    max_size: int


def head_rows(builder: str, state: dict[str, Any], path: str) -> int:
    """Number of classes (background included) of a Mask R-CNN state_dict."""
    weight = state.get(HEAD_KEY)
    if weight is None or getattr(weight, "ndim", 0) != 2:
        raise UsageError(
            f"state_dict {path!r} does not fit {builder}: it has no box classifier weight "
            f"{HEAD_KEY!r}; was it saved from a Mask R-CNN model?"
        )
    return int(weight.shape[0])


def state_dict_num_classes(builder: str, path: str) -> int:
    """Number of classes (background included) read from a checkpoint's tensor shapes."""
    return head_rows(builder, models.load_checkpoint(path), path)


def model_from_state_dict(builder: str, weights: str) -> tuple[Any, int, str]:
    """(model, num_classes, path): ``builder`` with the state_dict file ``weights`` loaded.

    UsageError naming the file and the mismatch when its tensors do not fit the network.
    """
    from torchvision.models import get_model

    path = models.file_identity(weights, "state_dict file")[0]
    state = models.load_checkpoint(path)
    n = head_rows(builder, state, weights)
    model = get_model(builder, weights=None, weights_backbone=None, num_classes=n)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UsageError(
            f"state_dict {weights!r} does not fit {builder} (num_classes={n}): {one_line(exc, 300)}"
        ) from None
    return model, n, path


def model_score_threshold(score_threshold: float) -> float:
    """The network's own (strict ``>``) score cut that keeps every score ``>= score_threshold``.

    Scores are float32: the largest float32 below ``score_threshold`` lets through exactly
    the float32 scores at or above it; the runner then applies ``>=`` itself.
    """
    below = np.nextafter(np.float32(score_threshold), np.float32(-np.inf))
    return float(below)


def configure(model: Any, config: DetectorConfig) -> None:
    """Set the inference settings of a torchvision Mask R-CNN (what its builder kwargs set)."""
    model.roi_heads.score_thresh = model_score_threshold(config.score_threshold)
    model.roi_heads.detections_per_img = int(config.max_detections)
    model.transform.min_size = (int(config.min_size),)
    model.transform.max_size = int(config.max_size)


def load_detector(
    builder: str, weights: str, device: str, config: DetectorConfig
) -> models.LoadedModel:
    """A Mask R-CNN in eval mode on ``device``: a weights name or a state_dict file."""
    if models.is_weights_path(weights):
        model, n, path = model_from_state_dict(builder, weights)
        model.eval().to(device)
        models.load_counts[f"{builder}:{path}"] += 1
        loaded = models.LoadedModel(model, n, None, models.Preprocess(), f"{builder}({path})")
    else:
        loaded = models.load_torchvision(builder, weights, device)
    configure(loaded.model, config)
    return loaded


def paint_instances(masks: Any) -> tuple[Any, Any]:
    """(ids, visible) of boolean masks ``(n, H, W)`` sorted by descending score.

    ``ids`` (int64 ``H x W``): where masks overlap the first (highest-scored) one wins;
    masks left without a pixel are dropped and the others renumbered ``1..k`` in their
    order, so ids stay contiguous. ``visible`` (bool ``n``) says which masks kept an id.
    """
    import torch

    n, height, width = int(masks.shape[0]), int(masks.shape[1]), int(masks.shape[2])
    ids = torch.zeros((height, width), dtype=torch.int64, device=masks.device)
    for k in range(n - 1, -1, -1):  # lowest score first: higher scores overwrite
        ids.masked_fill_(masks[k], k + 1)
    counts = torch.bincount(ids.flatten(), minlength=n + 1)
    visible = counts[1:] > 0
    lut = torch.zeros(n + 1, dtype=torch.int64, device=masks.device)
    kept = int(visible.sum())
    lut[1:][visible] = torch.arange(1, kept + 1, device=masks.device)
    return lut[ids], visible


class InstanceRunner(BatchRunner):
    """Runs a loaded Mask R-CNN on batches of same-shape images; built once per process."""

    def __init__(
        self,
        loaded: models.LoadedModel,
        *,
        device: str,
        precision: str,
        batch_size: int,
        score_threshold: float,
        mask_threshold: float,
        max_detections: int,
        class_names: list[str] | None = None,
    ) -> None:
        super().__init__(
            loaded, device=device, precision=precision, batch_size=batch_size,
            class_names=class_names,
        )  # fmt: skip
        self.score_threshold = float(score_threshold)
        self.mask_threshold = float(mask_threshold)
        self.label_dtype = smallest_uint(max_detections)
        self.class_dtype = smallest_uint(max(loaded.num_classes - 1, 0))

    def _tensors(self, arrays: list[np.ndarray]) -> list[Any]:
        """CHW float tensors in [0, 1] on the device (what torchvision detectors take)."""
        import torch

        host = torch.from_numpy(np.stack(arrays))  # N, H, W, 3; uint8 or float32 in [0, 1]
        if self.device.startswith("cuda"):
            x = host.pin_memory().to(self.device, non_blocking=True)
        else:
            x = host
        is_uint8 = x.dtype == torch.uint8
        x = x.permute(0, 3, 1, 2).contiguous().float()  # NCHW copy while still 1 byte
        if is_uint8:
            x = x.div_(255.0)
        return list(x.unbind(0))

    def _infer(self, arrays: list[np.ndarray]) -> list[Segmentation]:
        import torch

        with torch.inference_mode():
            batch = self._tensors(arrays)
            with self._autocast():
                detections = self.model(batch)
            return [
                self._segmentation(det, arr.shape[0], arr.shape[1])
                for det, arr in zip(detections, arrays, strict=True)
            ]

    def _segmentation(self, det: dict[str, Any], height: int, width: int) -> Segmentation:
        """One image's detections as maps (instance id, class, confidence) and a table."""
        import torch

        scores = det["scores"].float()
        keep = torch.nonzero(scores.double() >= self.score_threshold).flatten()
        order = keep[torch.argsort(scores[keep], descending=True, stable=True)]
        masks = det["masks"]
        if masks.ndim == 4:  # (n, 1, H, W) probabilities pasted at the image's size
            masks = masks[:, 0]
        if tuple(masks.shape[-2:]) != (height, width):
            raise RuntimeError(f"masks of shape {tuple(masks.shape)} for a {height}x{width} image")
        binary = masks[order] > self.mask_threshold
        ids, visible = paint_instances(binary)
        # each kept instance's whole thresholded mask, before higher scores took their pixels
        # (the panoptic merge's overlap test needs it)
        mask_area = binary.flatten(1).sum(dim=1)[visible].cpu().numpy().astype(np.int64)
        order = order[visible]
        dev = ids.device
        conf = (scores[order].double() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
        conf_lut = torch.cat([torch.zeros(1, dtype=torch.uint8, device=dev), conf])
        labels = det["labels"][order].to(torch.int64)
        class_lut = torch.cat([torch.zeros(1, dtype=torch.int64, device=dev), labels])
        small = torch.uint8 if self.label_dtype.itemsize == 1 else torch.int32
        class_small = torch.uint8 if self.class_dtype.itemsize == 1 else torch.int32
        boxes = det["boxes"][order].double().cpu().numpy().reshape(-1, 4)  # x1, y1, x2, y2
        instances = {
            "class_index": labels.cpu().numpy().astype(np.int64),
            "score": scores[order].double().cpu().numpy(),
            "box_min_row": boxes[:, 1].copy(),
            "box_min_col": boxes[:, 0].copy(),
            "box_max_row": boxes[:, 3].copy(),
            "box_max_col": boxes[:, 2].copy(),
            "mask_area": mask_area,
        }
        return Segmentation(
            labels=ids.to(small).cpu().numpy().astype(self.label_dtype, copy=False),
            confidence=conf_lut[ids].cpu().numpy(),
            classes=class_lut[ids].to(class_small).cpu().numpy().astype(self.class_dtype),
            instances=instances,
        )
