"""Segment Anything networks from checkpoint files (``sam_vit_b``/``_l``/``_h`` or smaller).

:func:`architecture` reads the image encoder's shape from the checkpoint's tensors (width,
depth, heads, global-attention blocks, window and input size), so the official ViT-B/L/H
files and smaller ones load the same way; :func:`build_sam` builds the ``Sam`` of
``segment_anything`` as its ``build_sam`` does and loads the checkpoint strictly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from batchseg.errors import UsageError, one_line
from batchseg.methods import models

_PATCH = "image_encoder.patch_embed.proj.weight"
_BLOCK = re.compile(r"image_encoder\.blocks\.(\d+)\.attn\.rel_pos_h$")


@dataclass(frozen=True)
class SamArchitecture:
    """The image encoder's shape (what differs between ViT-B, -L, -H)."""

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    window_size: int
    image_size: int
    prompt_dim: int


def import_sam() -> Any:
    """The ``segment_anything`` module; UsageError saying what to install when missing."""
    models.import_torch("Segment Anything methods")
    try:
        import segment_anything
    except ImportError as exc:
        raise UsageError(
            f"Segment Anything methods need segment-anything ({exc}); install batchseg[sam]"
        ) from None
    return segment_anything


def architecture(state: dict[str, Any], path: str) -> SamArchitecture:
    """The encoder shape of a SAM checkpoint; UsageError when it is no SAM checkpoint."""
    try:
        dim = int(state[_PATCH].shape[0])
        grid = int(state["image_encoder.pos_embed"].shape[1])
        rel = {int(m.group(1)): state[k].shape for k in state if (m := _BLOCK.match(k))}
        prompt_dim = int(state["image_encoder.neck.0.weight"].shape[0])
        head_dim = int(rel[0][1])
    except (KeyError, IndexError, AttributeError):
        raise UsageError(
            f"{path!r} is not a Segment Anything checkpoint (no ViT image encoder with "
            "relative positions; use a sam_vit_b/_l/_h file)"
        ) from None
    depth = len(rel)
    glob = tuple(i for i in range(depth) if int(rel[i][0]) == 2 * grid - 1)
    windowed = [int(rel[i][0]) for i in range(depth) if i not in glob]
    window = (windowed[0] + 1) // 2 if windowed else 14
    return SamArchitecture(dim, depth, dim // head_dim, glob, window, grid * 16, prompt_dim)


def build_sam(path: str) -> tuple[Any, SamArchitecture]:
    """(Sam in eval mode on the CPU, its architecture) of the checkpoint file ``path``."""
    import_sam()
    from functools import partial

    import torch
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )  # fmt: skip

    state = models.load_checkpoint(path)
    arch = architecture(state, path)
    grid = arch.image_size // 16
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=arch.depth, embed_dim=arch.embed_dim, img_size=arch.image_size, mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=arch.num_heads,
            patch_size=16, qkv_bias=True, use_rel_pos=True,
            global_attn_indexes=arch.global_attn_indexes, window_size=arch.window_size,
            out_chans=arch.prompt_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=arch.prompt_dim, image_embedding_size=(grid, grid),
            input_image_size=(arch.image_size, arch.image_size), mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=2, embedding_dim=arch.prompt_dim, mlp_dim=2048, num_heads=8
            ),
            transformer_dim=arch.prompt_dim, iou_head_depth=3, iou_head_hidden_dim=256,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )  # fmt: skip
    try:
        sam.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UsageError(
            f"checkpoint {path!r} does not fit Segment Anything: {one_line(exc, 300)}"
        ) from None
    return sam.eval(), arch
