"""Pictures of one stored image for the report, the web app and ``batchseg mask``.

Source, colourised labels, overlay (region outlines drawn) and confidence map, optionally as a
thumbnail (longest side ``size``), encoded as PNG or JPEG bytes or a ``data:`` URI. The image is
found through the store's catalogue only: its source is read from the catalogue's ``uri``,
within ``max_pixels`` and the size its label map implies. Tiled images are drawn from the
deepest stored label level that still covers the requested size.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from batchseg import render
from batchseg.core.kinds import Kind
from batchseg.core.limits import DEFAULT_MAX_PIXELS
from batchseg.errors import UsageError
from batchseg.io.normalise import display_rgb
from batchseg.report.truth import IGNORED_COLOUR, TruthSource, truth_labels

#: The pictures one image has (``confidence`` only in stores of semantic methods).
KINDS = ("source", "mask", "overlay", "confidence")
#: Largest picture drawn at full size; larger (tiled) images use a coarser stored level.
MAX_PICTURE_PIXELS = 1 << 25
#: Default bound on decoded source images (as ``batchseg mask --max-pixels``).


def class_colours(view: Any) -> np.ndarray | None:
    """The store's class colour table (class maps only), None for region labels."""
    if not Kind(view.kind).class_map or not view.colours:
        return None
    return np.asarray(view.colours, dtype=np.uint8)


def legend_entries(
    view: Any, overlay: bool = False, hidden: Iterable[int] = ()
) -> list[tuple[str, tuple[int, int, int]]]:
    """``(name, colour)`` for each class of a class map (but the ``hidden`` ones); for region
    labels the two fixed colours (no region, outline on overlays): region colours themselves
    are arbitrary."""
    if Kind(view.kind).class_map:
        names = list(view.classes or [])
        table = class_colours(view)
        if table is None or len(table) < len(names):
            table = render.palette(len(names))
        hide = {int(h) for h in hidden}
        return [
            (n, (int(table[i][0]), int(table[i][1]), int(table[i][2])))
            for i, n in enumerate(names)
            if i not in hide
        ]
    entries = [("no region", (0, 0, 0))]
    if overlay:
        entries.append(("outline", render.BOUNDARY_COLOUR))
    return entries


def picture(
    view: Any,
    image_id: str,
    kind: str = "overlay",
    *,
    alpha: float = 0.5,
    size: int | None = None,
    hidden: Iterable[int] = (),
    outlines: bool = True,
    scale_bar: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    channels: str | None = None,
) -> np.ndarray:
    """One picture of ``image_id`` as an ``H x W x 3`` uint8 array.

    Parameters
    ----------
    view : StoreView
        The open store.
    kind : {"source", "mask", "overlay", "confidence"}
        What to draw.
    alpha : float
        Overlay opacity 0-1.
    size : int, optional
        Thumbnail: the longest side in pixels (never enlarged); None = full size.
    hidden : iterable of int
        Class ids drawn as background (class maps), for the app's class toggles.
    outlines : bool
        Draw region outlines on overlays of region labels.
    scale_bar : bool
        Add the scale bar beside a confidence map.
    max_pixels : int
        Largest source image decoded (decompression-bomb guard).
    channels : str, optional
        A stack's plane: the channel(s) drawn as the source (an index, three as RGB, ``mean``);
        default what the method saw.

    Raises
    ------
    StoreError
        The image is unknown or not done, or its data is damaged.
    ImageError
        The source image cannot be read.
    """
    if kind not in KINDS:
        raise UsageError(f"unknown picture {kind!r}; one of {', '.join(KINDS)}")
    if not 0.0 <= alpha <= 1.0:
        raise UsageError("alpha must be between 0 and 1")
    if size is not None and not 8 <= size <= 4096:
        raise UsageError("size must be between 8 and 4096")
    if kind == "confidence":
        conf = _shrink(view.confidence(image_id), size, nearest=True)
        return render.confidence_picture(conf, scale_bar=scale_bar)
    level = pick_level(view.locate(image_id), size)
    labels = None if kind == "source" else view.mask(image_id, level=level)
    hide = [int(h) for h in hidden] if Kind(view.kind).class_map else []
    if kind == "mask":
        assert labels is not None
        labels = _shrink(labels, size, nearest=True)
        return render.colourise(labels, class_colours(view), kind=view.kind, hidden=hide)
    image = _source(view, image_id, level, labels, max_pixels, channels)
    if labels is None:
        return _shrink(image, size, nearest=False)
    target = None if size is None else _fit(labels.shape, size)
    if target is not None:
        labels = _resize(labels, target, nearest=True)
        image = _resize(image, target, nearest=False)
    return render.overlay(
        image, labels, class_colours(view), view.kind, alpha, hidden=hide, outlines=outlines
    )


def triptych(
    view: Any,
    image_id: str,
    size: int,
    *,
    alpha: float = 0.5,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    truth: TruthSource | None = None,
) -> dict[str, np.ndarray]:
    """Thumbnails ``source``, ``mask`` and ``overlay`` of a done image (longest side ``size``),
    from one read of its labels and one decode of its source (the report's gallery); with
    ``truth``, also ``truth`` (its truth labels, colourised as ``mask``)."""
    level = pick_level(view.locate(image_id), size)
    labels = view.mask(image_id, level=level)
    image = _source(view, image_id, level, labels, max_pixels)
    target = _fit(labels.shape, size)
    if target is not None:
        labels = _resize(labels, target, nearest=True)
        image = _resize(image, target, nearest=False)
    colours = class_colours(view)
    out = {
        "source": image,
        "mask": render.colourise(labels, colours, kind=view.kind),
        "overlay": render.overlay(image, labels, colours, kind=view.kind, alpha=alpha),
    }
    truth_map = None if truth is None else truth_labels(view, truth, image_id)
    if truth is not None and truth_map is not None:  # images the truth lacks have none
        out["truth"] = truth_picture(view, truth, truth_map, level=level, target=target)
    return out


def truth_picture(
    view: Any,
    source: TruthSource,
    labels: np.ndarray,
    *,
    level: int = 0,
    target: tuple[int, int] | None = None,
    image: np.ndarray | None = None,
    alpha: float = 0.5,
    hidden: Iterable[int] = (),
    outlines: bool = True,
) -> np.ndarray:
    """Truth ``labels`` (full size, from :func:`batchseg.report.truth.truth_labels`) drawn as the
    prediction is: at ``level`` (every ``2^level``-th pixel), shrunk to ``target``, colourised,
    or overlaid on ``image`` when given. Truth pixels left out of scoring are grey
    (colourised) or show the image (overlaid)."""
    step = 1 << level
    labels = labels[::step, ::step]
    if target is not None:
        labels = _resize(labels, target, nearest=True)
    hide = [int(h) for h in hidden] if Kind(view.kind).class_map else []
    colours = None
    if Kind(view.kind).class_map:
        table = class_colours(view)
        n = source.ignored
        table = table if table is not None and len(table) >= n else render.palette(n)
        colours = np.vstack([table[:n], np.asarray([IGNORED_COLOUR], dtype=np.uint8)])
    if image is None:
        return render.colourise(labels, colours, kind=view.kind, hidden=hide)
    if Kind(view.kind).class_map:
        hide = [*hide, source.ignored]
    return render.overlay(image, labels, colours, view.kind, alpha, hidden=hide, outlines=outlines)


def pick_level(info: Any, size: int | None) -> int:
    """The stored label level to draw an image at: 0 for ordinary images; for tiled ones the
    coarsest level whose longest side still covers ``size`` among those within
    :data:`MAX_PICTURE_PIXELS` (else the finest such level, else the coarsest level)."""
    if not info.tiled:
        return 0
    height, width = int(info.bucket["height"]), int(info.bucket["width"])
    levels = sorted({0, *(int(v) for v in info.bucket.get("levels") or [])})
    shapes = {lv: (-(-height // (1 << lv)), -(-width // (1 << lv))) for lv in levels}
    fitting = [lv for lv in levels if shapes[lv][0] * shapes[lv][1] <= MAX_PICTURE_PIXELS]
    if not fitting:
        return levels[-1]
    covering = [lv for lv in fitting if size is not None and max(shapes[lv]) >= size]
    return covering[-1] if covering else fitting[0]


def encode(array: np.ndarray, fmt: str = "png", quality: int = 85) -> bytes:
    """``array`` (``H x W x 3`` uint8) as PNG (fast, lossless) or JPEG bytes."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(array))
    buffer = io.BytesIO()
    if fmt == "jpeg":
        img.save(buffer, format="JPEG", quality=quality)
    else:
        img.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def data_uri(array: np.ndarray, fmt: str = "png") -> str:
    """``array`` encoded as a ``data:image/...;base64,`` URI (for a self-contained page)."""
    payload = base64.b64encode(encode(array, fmt)).decode("ascii")
    return f"data:image/{fmt};base64,{payload}"


def _source(
    view: Any,
    image_id: str,
    level: int,
    labels: np.ndarray | None,
    max_pixels: int,
    channels: str | None = None,
) -> np.ndarray:
    """The decoded source (RGB uint8) behind ``labels`` (or the whole image at ``level``)."""
    from batchseg.io.windowed import read_overlay_source

    if labels is None:
        info = view.locate(image_id)
        if info.bucket is None:  # its header could not be read: there is nothing to show
            info.require_done()
        step = 1 << level
        shape = (-(-int(info.bucket["height"]) // step), -(-int(info.bucket["width"]) // step))
    else:
        shape = labels.shape
    stacks = view.stack_view(channels) if hasattr(view, "stack_view") else None
    image = read_overlay_source(view.uri(image_id), shape, level, max_pixels, stacks=stacks)
    return display_rgb(image)


def _fit(shape: Sequence[int], size: int) -> tuple[int, int] | None:
    """(height, width) with the longest side ``size``; None when already that small."""
    height, width = int(shape[0]), int(shape[1])
    if max(height, width) <= size:
        return None
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _shrink(array: np.ndarray, size: int | None, nearest: bool) -> np.ndarray:
    target = None if size is None else _fit(array.shape, size)
    return array if target is None else _resize(array, target, nearest)


def _resize(array: np.ndarray, target: tuple[int, int], nearest: bool) -> np.ndarray:
    """``array`` at ``target`` (height, width): labels by nearest pixel (values never mixed),
    pictures with Pillow's box filter."""
    height, width = array.shape[:2]
    if nearest:
        rows = (np.arange(target[0]) * height // target[0]).astype(np.intp)
        cols = (np.arange(target[1]) * width // target[1]).astype(np.intp)
        return array[rows[:, None], cols[None, :]]
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(array))
    return np.asarray(img.resize((target[1], target[0]), Image.Resampling.BOX))
