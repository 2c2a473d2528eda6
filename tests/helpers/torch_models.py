"""Small trained torchvision models for tests: varied predictions, no download."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.segmentation import lraspp_mobilenet_v3_large

from batchseg.methods import models

H, W = 64, 80
MEAN = torch.tensor(models.IMAGENET_MEAN).view(-1, 1, 1)
STD = torch.tensor(models.IMAGENET_STD).view(-1, 1, 1)


def synth(rng: np.random.Generator, n: int, h: int = H, w: int = W):
    """Images (n, h, w, 3) uint8 and labels: 0 dark noise, 1 red squares, 2 green discs."""
    imgs = rng.integers(0, 50, (n, h, w, 3)).astype(np.uint8)
    labs = np.zeros((n, h, w), np.int64)
    yy, xx = np.mgrid[:h, :w]
    for i in range(n):
        for cls, colour in ((1, (220, 30, 30)), (2, (30, 200, 40))):
            for _ in range(int(rng.integers(1, 3))):
                s = int(rng.integers(12, 24))
                cy = int(rng.integers(s // 2, h - s // 2))
                cx = int(rng.integers(s // 2, w - s // 2))
                if cls == 1:
                    m = (abs(yy - cy) <= s // 2) & (abs(xx - cx) <= s // 2)
                else:
                    m = (yy - cy) ** 2 + (xx - cx) ** 2 <= (s // 2) ** 2
                noise = rng.integers(-25, 25, (int(m.sum()), 3))
                imgs[i][m] = np.clip(np.array(colour) + noise, 0, 255)
                labs[i][m] = cls
    return imgs, labs


def normalise(imgs: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float() / 255
    return (x - MEAN) / STD


def train_lraspp(path: Path) -> tuple[torch.nn.Module, str]:
    """LR-ASPP with 3 classes trained briefly on :func:`synth` images, BN recalibrated."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(20):
        imgs, labs = synth(rng, 6)
        loss = F.cross_entropy(model(normalise(imgs))["out"], torch.from_numpy(labs))
        opt.zero_grad()
        loss.backward()
        opt.step()
    # recalibrate batch-norm statistics (cumulative average) in train mode
    for mod in model.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.reset_running_stats()
            mod.momentum = None
    with torch.no_grad():
        for _ in range(4):
            model(normalise(synth(rng, 8)[0]))
    model.eval()
    torch.save(model.state_dict(), path)
    return model, str(path)
