"""Inference of a loaded segmentation network: batches in, labels and confidence out.

:class:`SemanticRunner` is what :mod:`batchseg.methods.semantic` builds (once per worker
process and parameters): it normalises images (:func:`batchseg.io.normalise.model_rgb`),
batches images of one shape, runs the network (torch, imported lazily) and turns logits
into class labels and a 0-255 confidence map. A batch that fails is retried image by image
(:class:`BatchRunner`, which the instance runner of :mod:`batchseg.methods.instance` shares).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from batchseg.errors import ImageError
from batchseg.io.normalise import model_rgb
from batchseg.methods import models
from batchseg.methods.base import Segmentation

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


class BatchRunner:
    """Batches images of one shape through ``_infer``; a failed batch is retried image by image.

    Subclasses implement ``_infer`` (same-shape arrays of
    :func:`batchseg.io.normalise.model_rgb` in, one Segmentation each).
    """

    def __init__(
        self,
        loaded: models.LoadedModel,
        *,
        device: str,
        precision: str,
        batch_size: int,
        class_names: list[str] | None = None,
    ) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.num_classes = loaded.num_classes
        self.device = device
        self.precision = precision
        self.batch_size = int(batch_size)
        self.class_names = class_names

    def _infer(self, arrays: list[np.ndarray]) -> list[Segmentation]:
        raise NotImplementedError

    # one result per image; exceptions are returned, never raised
    def segment_batch(self, images: Sequence[np.ndarray]) -> list[Segmentation | Exception]:
        results: list[Segmentation | Exception | None] = [None] * len(images)
        groups: dict[tuple[Any, ...], list[tuple[int, np.ndarray]]] = {}
        for i, image in enumerate(images):
            try:
                arr = model_rgb(image)
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


class SemanticRunner(BatchRunner):
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
        super().__init__(
            loaded, device=device, precision=precision, batch_size=batch_size,
            class_names=class_names,
        )  # fmt: skip
        self.preprocess = preprocess
        self.channels_last = channels_last and device.startswith("cuda")

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

        arrays = [model_rgb(image) for image in images]
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
