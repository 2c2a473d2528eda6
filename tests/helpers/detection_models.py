"""Detection models for tests: a tiny Mask R-CNN trained in seconds, a seeded random one.

The tiny detector is torchvision's :class:`MaskRCNN` on a small backbone whose output also
carries the (pooled) input colours, so that two colour-coded classes are told apart after
a few dozen steps on the CPU; the resnet50-FPN builders themselves would take minutes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign

SIZE = 96  # tiny detector images are SIZE x SIZE
#: class index -> colour: 1 red squares, 2 green discs (0 is the background)
COLOURS = {1: (220, 40, 40), 2: (40, 200, 60)}
CLASS_NAMES = ["background", "square", "disc"]


def synth(rng: np.random.Generator, n: int, size: int = SIZE) -> tuple[np.ndarray, list[dict]]:
    """Images (n, size, size, 3) uint8 of dark noise with non-overlapping red squares and
    green discs, and their torchvision targets (boxes x1 y1 x2 y2, labels, masks)."""
    imgs = rng.integers(0, 60, (n, size, size, 3)).astype(np.uint8)
    yy, xx = np.mgrid[:size, :size]
    targets = []
    for i in range(n):
        boxes, labels, masks = [], [], []
        taken = np.zeros((size, size), bool)
        for _ in range(5):
            cls = int(rng.integers(1, 3))
            r = int(rng.integers(size // 10, size // 7))
            cy, cx = (int(v) for v in rng.integers(r, size - r, 2))
            if cls == 1:
                m = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
            else:
                m = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            if (m & taken).any():
                continue
            taken |= m
            noise = rng.integers(-25, 25, (int(m.sum()), 3))
            imgs[i][m] = np.clip(np.array(COLOURS[cls]) + noise, 0, 255)
            ys, xs = np.nonzero(m)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            labels.append(cls)
            masks.append(m)
        targets.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32),
                "labels": torch.tensor(labels, dtype=torch.int64),
                "masks": torch.from_numpy(np.stack(masks).astype(np.uint8)),
            }
        )
    return imgs, targets


def as_tensors(imgs: np.ndarray) -> list[torch.Tensor]:
    """What torchvision detectors take: CHW float tensors in [0, 1]."""
    return [torch.from_numpy(im).permute(2, 0, 1).float() / 255 for im in imgs]


class _Body(nn.Module):
    """Five convolutions (stride 8) plus the input colours pooled to the same grid."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels - 3
        layers: list[nn.Module] = []
        for cin, cout, stride, dil in ((3, 16, 2, 1), (16, c, 2, 1), (c, c, 2, 1), (c, c, 1, 2)):
            layers += [nn.Conv2d(cin, cout, 3, stride, dil, dilation=dil), nn.ReLU()]
        layers += [nn.Conv2d(c, c, 3, 1, 4, dilation=4), nn.ReLU()]
        self.convs = nn.Sequential(*layers)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.convs(x), nn.functional.avg_pool2d(x, 8)], 1)


def tiny_maskrcnn(num_classes: int = 3, channels: int = 32) -> MaskRCNN:
    """A small Mask R-CNN for SIZE x SIZE images (one feature level, light heads)."""
    a = SIZE // 8
    return MaskRCNN(
        _Body(channels),
        min_size=SIZE,
        max_size=SIZE,
        rpn_anchor_generator=AnchorGenerator(((a, 2 * a, 3 * a),), ((1.0,),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], 7, 1),
        mask_roi_pool=MultiScaleRoIAlign(["0"], 14, 1),
        box_head=TwoMLPHead(channels * 49, 128),
        box_predictor=FastRCNNPredictor(128, num_classes),
        mask_head=MaskRCNNHeads(channels, (32,), 1),
        mask_predictor=MaskRCNNPredictor(32, 32, num_classes),
        rpn_batch_size_per_image=32,
        box_batch_size_per_image=32,
        rpn_pre_nms_top_n_train=200,
        rpn_post_nms_top_n_train=50,
        rpn_pre_nms_top_n_test=200,
        rpn_post_nms_top_n_test=50,
    )


def train_tiny_detector(steps: int = 40) -> MaskRCNN:
    """The tiny detector trained for ``steps`` Adam steps on :func:`synth` (eval mode).

    One torch thread: its operations are small, and on a busy 2-core machine two threads
    waiting on each other made this ~15x slower (80 s instead of 5 s).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        model = tiny_maskrcnn()
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        model.train()
        for _ in range(steps):
            imgs, targets = synth(rng, 4)
            loss = sum(model(as_tensors(imgs), targets).values())
            opt.zero_grad()
            loss.backward()  # type: ignore[union-attr]
            opt.step()
    finally:
        torch.set_num_threads(previous)
    return model.eval()


def random_maskrcnn(num_classes: int = 4, seed: int = 0, **kwargs: Any) -> MaskRCNN:
    """A seeded, randomly initialised ``maskrcnn_resnet50_fpn`` (eval mode).

    Its batch norms keep their initial statistics, so activations grow layer by layer and
    the box scores spread out (many above 0.5): varied enough to compare outputs.
    """
    torch.manual_seed(seed)
    model = maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=num_classes, **kwargs
    )
    return model.eval()
