"""Colourising label maps: palettes, colour images of labels, overlays and PNG output.

Two kinds of label map exist (see ``Method.output``):

* ``"classes"``: each pixel holds a class id; class ``i`` is drawn with ``colours[i]``
  (a colour table indexed by class id). An id beyond the table is an error.
* ``"regions"``: each pixel holds a region id, 0 meaning "no region". Region 0 is
  black; other ids get a deterministic golden-ratio HSV colour, so neighbouring ids
  (which tend to be neighbouring regions) differ clearly. With an explicit colour table,
  ids beyond the table wrap around it (0 stays on entry 0).

:func:`overlay` blends the colours onto an image with ``alpha`` **where label != 0**
(for both kinds; label 0 is background or "no region" and the image shows through),
and, for regions, draws region boundaries opaque in a contrasting colour.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from batchseg.errors import ImageError, UsageError
from batchseg.io.normalise import display_rgb

__all__ = [
    "BOUNDARY_COLOUR",
    "colour_map",
    "colourise",
    "confidence_picture",
    "default_class_colours",
    "overlay",
    "palette",
    "region_colours",
    "save_png",
    "viridis",
    "with_legend",
]

BOUNDARY_COLOUR = (255, 255, 0)
"""Colour of region boundaries drawn by :func:`overlay` (yellow)."""
HIGHLIGHT_COLOUR = (255, 0, 255)
"""Outline of the object :func:`overlay` highlights (magenta)."""

_KINDS = ("classes", "regions", "instances", "panoptic")  # instance, panoptic ids: like regions
_LUT_LIMIT = 1 << 20  # region ids up to this use a lookup table, larger ones np.unique
_GOLDEN = 0.6180339887498949

# Well-separated colours for the first classes (after black for class 0).
_DISTINCT: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (255, 225, 25),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 250, 200),
    (128, 0, 0),
    (170, 255, 195),
    (128, 128, 0),
    (255, 215, 180),
    (0, 0, 128),
    (128, 128, 128),
    (255, 255, 255),
)


# ------------------------------------------------------------------------- palettes


def region_colours(ids: np.ndarray | Sequence[int]) -> np.ndarray:
    """Deterministic colour for each id, shape ``(len(ids), 3)`` uint8; id 0 is black.

    Hue steps by the golden ratio per id, so consecutive ids are far apart in hue;
    saturation and value vary a little on slower cycles so ids a hue-turn apart differ.
    """
    ids = np.asarray(ids, dtype=np.int64).ravel()
    f = ids.astype(np.float64)
    hue = np.mod(f * _GOLDEN, 1.0)
    sat = 0.65 + 0.35 * np.mod(f * 0.3819660112501051 * 0.5, 1.0)
    val = 0.80 + 0.20 * np.mod(f * 0.7548776662466927, 1.0)
    rgb = _hsv_to_rgb(hue, sat, val)
    out = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    out[ids == 0] = 0
    return out


def palette(n: int, class_colours: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """A colour table of ``n`` entries, shape ``(n, 3)`` uint8, indexed by class id.

    Without ``class_colours``: entry 0 is black, then a fixed set of well-separated
    colours, then golden-ratio colours. With ``class_colours``: those colours first
    (validated: three integers 0-255 each), extended the same way if ``n`` is larger.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise UsageError(f"palette size must be a non-negative integer, not {n!r}")
    n = int(n)
    given = _colour_table(class_colours) if class_colours is not None else None
    out = np.zeros((n, 3), dtype=np.uint8)
    start = 0
    if given is not None:
        start = min(n, len(given))
        out[:start] = given[:start]
    for i in range(start, min(n, len(_DISTINCT) + 1)):
        out[i] = (0, 0, 0) if i == 0 else _DISTINCT[i - 1]
    rest = max(start, len(_DISTINCT) + 1)
    if rest < n:
        out[rest:] = region_colours(np.arange(rest, n))
    return out


def default_class_colours(names: Sequence[str]) -> list[tuple[int, int, int]]:
    """One colour per class name, in order: ``background`` is black, the rest distinct.

    Deterministic: depends only on the names' order. Non-background classes never get
    black or a colour already used.
    """
    if isinstance(names, str):
        raise UsageError("class names must be a sequence of strings, not one string")
    used: set[tuple[int, int, int]] = {(0, 0, 0)}
    candidates = _candidate_colours()
    out: list[tuple[int, int, int]] = []
    for name in names:
        if str(name).strip().lower() == "background":
            out.append((0, 0, 0))
            continue
        colour = next(candidates)
        while colour in used:
            colour = next(candidates)
        used.add(colour)
        out.append(colour)
    return out


def read_class_colours(path: str, names: Sequence[str]) -> list[tuple[int, int, int]]:
    """Class colours from a CSV (``class,r,g,b`` or ``class,color`` with ``#rrggbb``), in the
    order of ``names``; classes the file does not list keep :func:`default_class_colours`.
    A class the store does not have, or a bad colour, is a UsageError naming the line."""
    import csv

    colours = default_class_colours(names)
    index = {str(n).strip().lower(): i for i, n in enumerate(names)}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise UsageError(f"cannot read colours {path}: {exc.strerror or exc}") from None
    if rows and rows[0] and rows[0][0].strip().lower() in ("class", "name"):
        rows = rows[1:]
    for line, row in enumerate(rows, start=2):
        cells = [c.strip() for c in row if c.strip()]
        if not cells:
            continue
        name = cells[0].lower()
        if name not in index:
            raise UsageError(
                f"{path}:{line}: class {cells[0]!r} is not a class of the method "
                f"({', '.join(map(str, names))})"
            )
        colours[index[name]] = _parse_colour(cells[1:], path, line)
    return colours


def _parse_colour(cells: Sequence[str], path: str, line: int) -> tuple[int, int, int]:
    try:
        if len(cells) == 1 and cells[0].startswith("#") and len(cells[0]) == 7:
            h = cells[0]
            return (int(h[1:3], 16), int(h[3:5], 16), int(h[5:7], 16))
        if len(cells) == 3:
            r, g, b = (int(c) for c in cells)
            if all(0 <= v <= 255 for v in (r, g, b)):
                return (r, g, b)
    except ValueError:
        pass
    raise UsageError(f"{path}:{line}: colour must be r,g,b (0-255) or #rrggbb, got {cells}")


def _candidate_colours():
    yield from _DISTINCT
    i = len(_DISTINCT) + 1
    while True:
        r, g, b = region_colours([i])[0]
        yield (int(r), int(g), int(b))
        i += 1


# ------------------------------------------------------------------------ colourise


def colourise(
    labels: np.ndarray, colours: np.ndarray | None = None, kind: str = "classes"
) -> np.ndarray:
    """Colour image ``H x W x 3`` uint8 of a label map (see the module doc for kinds).

    ``colours`` is a colour table ``(n, 3)`` indexed by label id; ``None`` uses
    :func:`palette` for classes and :func:`region_colours` for regions.
    """
    labels = _check_labels(labels)
    kind = _check_kind(kind)
    table = _colour_table(colours) if colours is not None else None
    if labels.size == 0:
        return np.zeros((*labels.shape, 3), dtype=np.uint8)
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise UsageError(f"labels must be non-negative; found {low}")
    if kind == "classes":
        if table is None:
            table = palette(high + 1)
        if high >= len(table):
            raise UsageError(
                f"class id {high} has no colour: the colour table has {len(table)} entries "
                f"(ids 0-{len(table) - 1})"
            )
        return table[labels]
    if table is not None:
        if len(table) < 2:
            raise UsageError("a region colour table needs at least 2 entries (0 and one more)")
        index = np.where(labels == 0, 0, (labels.astype(np.int64) - 1) % (len(table) - 1) + 1)
        return table[index]
    if high < _LUT_LIMIT:
        return region_colours(np.arange(high + 1))[labels]
    ids, inverse = np.unique(labels, return_inverse=True)
    return region_colours(ids)[inverse.reshape(labels.shape)]


def overlay(
    image: np.ndarray,
    labels: np.ndarray,
    colours: np.ndarray | None = None,
    kind: str = "classes",
    alpha: float = 0.5,
    boundary_colour: Sequence[int] = BOUNDARY_COLOUR,
    highlight: int | None = None,
) -> np.ndarray:
    """Blend the colourised ``labels`` onto ``image``; ``H x W x 3`` uint8.

    ``image`` is grey (``H x W``) or RGB(A) ``H x W x 3|4`` of any integer or float dtype,
    scaled to uint8 by :func:`batchseg.io.normalise.display_rgb` (the rule every kernel uses:
    uint8/uint16 by their range, wider integers as 16-bit, floats as 0-1).
    Blending is ``(1 - alpha) * image + alpha * colour`` where label != 0; elsewhere
    the image is unchanged. For ``kind="regions"`` region (object) outlines are drawn opaque
    in ``boundary_colour``. ``highlight`` (regions only) picks one object by label: only it is
    filled, outlined thick in :data:`HIGHLIGHT_COLOUR`; the others keep their thin outline.
    """
    labels = _check_labels(labels)
    kind = _check_kind(kind)
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise UsageError(f"alpha must be between 0 and 1, not {alpha}")
    rgb = _to_rgb_uint8(image)
    if rgb.shape[:2] != labels.shape:
        raise UsageError(
            f"image and labels differ in size: image is {rgb.shape[0]}x{rgb.shape[1]}, "
            f"labels are {labels.shape[0]}x{labels.shape[1]} (height x width)"
        )
    edge = np.asarray(_colour_table([boundary_colour])[0])
    colour = colourise(labels, colours, kind)
    out = rgb.copy()
    mask = labels != 0
    if highlight is not None:
        if kind != "regions":
            raise UsageError("only region label maps have objects to highlight")
        mask = labels == highlight
        if not mask.any():
            raise UsageError(f"object {highlight} is not in this label map")
    if mask.any():
        blended = (1.0 - alpha) * rgb[mask].astype(np.float32) + alpha * colour[mask]
        out[mask] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    if kind == "regions" and labels.size:
        from skimage.segmentation import find_boundaries

        out[find_boundaries(labels, mode="inner")] = edge
        if highlight is not None:
            ring = find_boundaries(labels == highlight, mode="thick")
            out[ring] = np.asarray(_colour_table([HIGHLIGHT_COLOUR])[0])
    return out


# ----------------------------------------------------------------------------- PNG


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
    return _beside(picture, panel)


def with_legend(
    picture: np.ndarray, entries: Sequence[tuple[str, Sequence[int]]], title: str = ""
) -> np.ndarray:
    """``picture`` with a legend panel on its right: one colour swatch and name per entry."""
    picture = np.asarray(picture)
    if picture.ndim != 3 or picture.shape[2] != 3 or picture.dtype != np.uint8:
        raise UsageError("with_legend needs an H x W x 3 uint8 picture")
    colours = _colour_table([c for _, c in entries]) if entries else np.zeros((0, 3), np.uint8)
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
    return _beside(picture, panel)


def _panel(height: int, width: int) -> np.ndarray:
    panel = np.empty((height, width, 3), dtype=np.uint8)
    panel[...] = _PANEL_BACKGROUND
    return panel


def _beside(picture: np.ndarray, panel: np.ndarray) -> np.ndarray:
    """``picture`` and ``panel`` side by side on a white canvas as tall as the taller one."""
    height = max(picture.shape[0], panel.shape[0])
    out = _panel(height, picture.shape[1] + panel.shape[1])
    out[: picture.shape[0], : picture.shape[1]] = picture
    out[: panel.shape[0], picture.shape[1] :] = panel
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


# ------------------------------------------------------------------------- helpers


def _check_kind(kind: str) -> str:
    """``kind``, with instance and panoptic ids drawn as regions; UsageError for an unknown
    kind."""
    if kind not in _KINDS:
        raise UsageError(
            f"unknown label kind {kind!r}; expected 'classes', 'regions', 'instances' or 'panoptic'"
        )
    return "regions" if kind in ("instances", "panoptic") else kind


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise UsageError(f"labels must be a 2-D array (H x W), not shape {labels.shape}")
    if labels.dtype == np.bool_:
        return labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise UsageError(f"labels must be an integer array, not {labels.dtype}")
    return labels


def _colour_table(colours: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    """Validate a colour table: ``(n, 3)`` integers 0-255 -> uint8 array."""
    try:
        table = np.asarray(colours)
    except (TypeError, ValueError):
        raise UsageError("colours must be a table of (r, g, b) triples") from None
    if table.ndim != 2 or table.shape[1] != 3:
        raise UsageError(f"colours must have shape (n, 3), not {table.shape}")
    if table.dtype == np.uint8:
        return table
    if table.size and not np.issubdtype(table.dtype, np.integer):
        if not np.issubdtype(table.dtype, np.floating) or not np.all(table == np.rint(table)):
            raise UsageError("colours must be integers 0-255")
    if table.size and (table.min() < 0 or table.max() > 255):
        raise UsageError("colours must be integers 0-255")
    return table.astype(np.uint8)


def _to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Grey or RGB(A) image of any numeric dtype -> ``H x W x 3`` uint8 (the one normaliser)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise UsageError(f"image must be grey (H x W) or RGB (H x W x 3), not shape {image.shape}")
    if not (np.issubdtype(image.dtype, np.number) or image.dtype == np.bool_):
        raise UsageError(f"image must be numeric, not {image.dtype}")
    if np.issubdtype(image.dtype, np.floating) and image.size:
        low, high = float(np.nanmin(image)), float(np.nanmax(image))
        if low < -1.0 or high > 1.0:
            raise UsageError(
                f"cannot convert image to 8 bits: float values must lie in [0, 1], "
                f"found {low:g} to {high:g}"
            )
    try:
        return display_rgb(image)
    except ImageError as exc:
        raise UsageError(f"cannot convert image to 8 bits: {exc}") from None


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV (each 0-1) to RGB floats 0-1, shape ``(n, 3)``."""
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    p = v * (1.0 - s)
    q = v * (1.0 - s * f)
    t = v * (1.0 - s * (1.0 - f))
    i = i.astype(np.int64) % 6
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1)
