"""Pictures beside pictures: the viridis colour map, a confidence map with its scale bar, a
legend panel, pictures side by side, and PNG output."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from batchseg.errors import UsageError
from batchseg.render.colours import colour_table


def save_png(array: np.ndarray, path: str | os.PathLike[str]) -> None:
    """Write ``array`` as a lossless PNG: ``H x W`` uint8/uint16/bool or ``H x W x 3|4`` uint8."""
    from PIL import Image

    array = np.asarray(array)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    if array.ndim == 2 and array.dtype == np.uint8:
        img = Image.fromarray(np.ascontiguousarray(array))  # mode L
    elif array.ndim == 2 and array.dtype == np.uint16:
        img = Image.fromarray(np.ascontiguousarray(array, dtype="<u2"))  # mode I;16
    elif array.ndim == 3 and array.shape[2] in (3, 4) and array.dtype == np.uint8:
        img = Image.fromarray(np.ascontiguousarray(array))  # mode RGB / RGBA
    else:
        raise UsageError(
            "save_png needs H x W uint8/uint16 or H x W x 3/4 uint8, "
            f"not shape {array.shape} dtype {array.dtype}"
        )
    img.save(os.fspath(path), format="PNG")


# ------------------------------------------------------- colour map, scale bar, legend

# matplotlib's viridis (its ``_viridis_data``, 256 entries rounded to 8 bits), as hex RGB,
# so colouring a confidence map needs no matplotlib at run time.
_VIRIDIS_HEX = (
    "44015444025645045745055946075a46085c460a5d460b5e470d60470e614710634711644713654814674816"
    "6848176948186a481a6c481b6d481c6e481d6f481f7048207148217348237448247548257648267748287848"
    "2979472a7a472c7a472d7b472e7c472f7d46307e46327e46337f463480453581453781453882443983443a83"
    "443b84433d84433e85423f854240864241864142874144874045884046883f47883f48893e49893e4a893e4c"
    "8a3d4d8a3d4e8a3c4f8a3c508b3b518b3b528b3a538b3a548c39558c39568c38588c38598c375a8c375b8d36"
    "5c8d365d8d355e8d355f8d34608d34618d33628d33638d32648e32658e31668e31678e31688e30698e306a8e"
    "2f6b8e2f6c8e2e6d8e2e6e8e2e6f8e2d708e2d718e2c718e2c728e2c738e2b748e2b758e2a768e2a778e2a78"
    "8e29798e297a8e297b8e287c8e287d8e277e8e277f8e27808e26818e26828e26828e25838e25848e25858e24"
    "868e24878e23888e23898e238a8d228b8d228c8d228d8d218e8d218f8d21908d21918c20928c20928c20938c"
    "1f948c1f958b1f968b1f978b1f988b1f998a1f9a8a1e9b8a1e9c891e9d891f9e891f9f881fa0881fa1881fa1"
    "871fa28720a38620a48621a58521a68522a78522a88423a98324aa8325ab8225ac8226ad8127ad8128ae8029"
    "af7f2ab07f2cb17e2db27d2eb37c2fb47c31b57b32b67a34b67935b77937b87838b9773aba763bbb753dbc74"
    "3fbc7340bd7242be7144bf7046c06f48c16e4ac16d4cc26c4ec36b50c46a52c56954c56856c66758c7655ac8"
    "645cc8635ec96260ca6063cb5f65cb5e67cc5c69cd5b6ccd5a6ece5870cf5773d05675d05477d1537ad1517c"
    "d2507fd34e81d34d84d44b86d54989d5488bd6468ed64590d74393d74195d84098d83e9bd93c9dd93ba0da39"
    "a2da37a5db36a8db34aadc32addc30b0dd2fb2dd2db5de2bb8de29bade28bddf26c0df25c2df23c5e021c8e0"
    "20cae11fcde11dd0e11cd2e21bd5e21ad8e219dae319dde318dfe318e2e418e5e419e7e419eae51aece51bef"
    "e51cf1e51df4e61ef6e620f8e621fbe723fde725"
)
_PANEL_BACKGROUND = (255, 255, 255)
_TEXT_COLOUR = (0, 0, 0)


def viridis() -> np.ndarray:
    """The viridis colour map as a ``(256, 3)`` uint8 table (a perceptual, ordered map)."""
    return np.frombuffer(bytes.fromhex(_VIRIDIS_HEX), dtype=np.uint8).reshape(256, 3)


def colour_map(values: np.ndarray) -> np.ndarray:
    """``H x W`` uint8 values (0 low, 255 high) as an ``H x W x 3`` viridis colour image."""
    values = np.asarray(values)
    if values.ndim != 2 or values.dtype != np.uint8:
        raise UsageError(f"colour_map needs H x W uint8 values, not {values.shape} {values.dtype}")
    return viridis()[values]


def confidence_picture(confidence: np.ndarray, scale_bar: bool = True) -> np.ndarray:
    """A confidence map (uint8, 255 = certain) in viridis, with a labelled scale bar beside it."""
    picture = colour_map(confidence)
    if not scale_bar:
        return picture
    height = max(picture.shape[0], 120)
    bar_h = height - 24
    ramp = np.linspace(255, 0, bar_h).round().astype(np.uint8)
    bar = np.repeat(viridis()[ramp][:, None, :], 14, axis=1)
    panel = _panel(height, 64)
    panel[12 : 12 + bar_h, 6:20] = bar
    labels = [(4, "1.0"), (12 + bar_h // 2 - 6, "0.5"), (bar_h + 2, "0.0")]
    panel = _draw_text(panel, [(24, y, text) for y, text in labels])
    return beside(picture, panel)


def with_legend(
    picture: np.ndarray, entries: Sequence[tuple[str, Sequence[int]]], title: str = ""
) -> np.ndarray:
    """``picture`` with a legend panel on its right: one colour swatch and name per entry."""
    picture = np.asarray(picture)
    if picture.ndim != 3 or picture.shape[2] != 3 or picture.dtype != np.uint8:
        raise UsageError("with_legend needs an H x W x 3 uint8 picture")
    colours = colour_table([c for _, c in entries]) if entries else np.zeros((0, 3), np.uint8)
    names = [str(n)[:40] for n, _ in entries]
    lines = ([title] if title else []) + names
    width = 34 + 7 * max([len(t) for t in lines] + [4])
    top = 18 if title else 4
    panel = _panel(max(picture.shape[0], top + 18 * len(names) + 4), width)
    for i, colour in enumerate(colours):
        y = top + 18 * i
        panel[y + 2 : y + 16, 6:20] = (96, 96, 96)  # a grey rim shows black and white swatches
        panel[y + 3 : y + 15, 7:19] = colour
    texts = [(26, top + 18 * i + 2, name) for i, name in enumerate(names)]
    panel = _draw_text(panel, ([(6, 2, title)] if title else []) + texts)
    return beside(picture, panel)


def _panel(height: int, width: int) -> np.ndarray:
    panel = np.empty((height, width, 3), dtype=np.uint8)
    panel[...] = _PANEL_BACKGROUND
    return panel


def beside(picture: np.ndarray, panel: np.ndarray, gap: int = 0) -> np.ndarray:
    """``picture`` and ``panel`` side by side (``gap`` white columns between them) on a white
    canvas as tall as the taller one."""
    height = max(picture.shape[0], panel.shape[0])
    left = picture.shape[1] + gap
    out = _panel(height, left + panel.shape[1])
    out[: picture.shape[0], : picture.shape[1]] = picture
    out[: panel.shape[0], left:] = panel
    return out


def _draw_text(panel: np.ndarray, texts: Sequence[tuple[int, int, str]]) -> np.ndarray:
    """``panel`` with each ``(x, y, text)`` drawn in Pillow's built-in font."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.fromarray(panel)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    for x, y, text in texts:
        draw.text((x, y), text, fill=_TEXT_COLOUR, font=font)
    return np.asarray(img).copy()
