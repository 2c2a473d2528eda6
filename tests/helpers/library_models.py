"""Small random models of Cellpose and Segment Anything saved to files, and blob images."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def blob_images(n: int, size: int = 64, seed: int = 0) -> list[np.ndarray]:
    """``n`` grey uint8 images of bright discs on a noisy dark ground."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = []
    for _ in range(n):
        img = np.zeros((size, size), np.float32)
        for _ in range(5):
            cy, cx = rng.uniform(8, size - 8, 2)
            r = rng.uniform(4, 7)
            img += (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        noisy = np.clip(img, 0, 1) * 200 + rng.normal(20, 5, (size, size))
        out.append(noisy.clip(0, 255).astype(np.uint8))
    return out


def random_cellpose(path: Path, seed: int = 0) -> str:
    """A randomly initialised Cellpose 3 network (CPnet) saved as a model file."""
    import torch
    from cellpose.resnet_torch import CPnet

    torch.manual_seed(seed)
    net = CPnet([2, 32, 64, 128, 256], 3, sz=3, mkldnn=False, max_pool=True, diam_mean=30.0)
    net.save_model(str(path))
    return str(path)


def random_sam(path: Path, seed: int = 0) -> str:
    """A small random SAM checkpoint: a 2-block ViT (width 64, 2 heads, 256-pixel input)."""
    from functools import partial

    import torch
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    torch.manual_seed(seed)
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=2, embed_dim=64, img_size=256, mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=2, patch_size=16,
            qkv_bias=True, use_rel_pos=True, rel_pos_zero_init=False,
            global_attn_indexes=(1,), window_size=4, out_chans=256,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=256, image_embedding_size=(16, 16), input_image_size=(256, 256),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )  # fmt: skip
    torch.save(sam.state_dict(), path)
    return str(path)
