"""Colour images of label maps, and overlays of them on their source image.

Two kinds of label map exist (see ``Method.output``):

* ``"classes"``: each pixel holds a class id; class ``i`` is drawn with ``colours[i]``
  (a colour table indexed by class id). An id beyond the table is an error. Every class is
  drawn, class 0 included (CamVid's "Sky", k-means' ``cluster_0``), unless it is ``hidden``.
* ``"regions"``: each pixel holds a region id, 0 meaning "no region". Region 0 is
  black; other ids get a deterministic golden-ratio HSV colour, so neighbouring ids
  (which tend to be neighbouring regions) differ clearly. With an explicit colour table,
  ids beyond the table wrap around it (0 stays on entry 0).

:func:`overlay` blends the colours onto an image with ``alpha``: for class maps every pixel
whose class is not hidden, for region maps every pixel with a region (label 0, "no region",
shows the image). For regions it also draws region outlines (:func:`outline_mask`), whose
width follows the picture's size and which are left out where regions are too small for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from batchseg.core.kinds import Kind
from batchseg.errors import ImageError, UsageError
from batchseg.io.normalise import display_rgb
from batchseg.render.colours import colour_table, palette, region_colours

BOUNDARY_COLOUR = (255, 255, 0)
"""Colour of region boundaries drawn by :func:`overlay` (yellow)."""
HIGHLIGHT_COLOUR = (255, 0, 255)
"""Outline of the object :func:`overlay` highlights (magenta)."""
HIDDEN_COLOUR = (0, 0, 0)
"""Colour of hidden classes in :func:`colourise` (on overlays they show the image)."""
MAX_OUTLINE_SHARE = 0.25
"""Largest share of the labelled pixels that outlines may cover: wider outlines are thinned to
one pixel, and outlines that would still cover more (regions a few pixels wide, as hundreds of
regions in a thumbnail) are left out."""
OUTLINE_STEP = 1024
"""Outlines are one pixel wide, plus one per further ``OUTLINE_STEP`` pixels of the picture's
longest side (a 6000-pixel picture seen whole still shows them)."""

_KINDS = ("classes", "regions", "instances", "panoptic")  # instance, panoptic ids: like regions
_LUT_LIMIT = 1 << 20  # region ids up to this use a lookup table, larger ones np.unique


def colourise(
    labels: np.ndarray,
    colours: np.ndarray | None = None,
    kind: str = "classes",
    hidden: Iterable[int] = (),
) -> np.ndarray:
    """Colour image ``H x W x 3`` uint8 of a label map (see the module doc for kinds).

    ``colours`` is a colour table ``(n, 3)`` indexed by label id; ``None`` uses
    :func:`palette` for classes and :func:`region_colours` for regions. ``hidden`` (class
    maps only) are class ids drawn in :data:`HIDDEN_COLOUR`.
    """
    labels = _check_labels(labels)
    kind = _check_kind(kind)
    hide = _check_hidden(hidden, kind)
    table = colour_table(colours) if colours is not None else None
    if labels.size == 0:
        return np.zeros((*labels.shape, 3), dtype=np.uint8)
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise UsageError(f"labels must be non-negative; found {low}")
    if Kind(kind).class_map:
        if table is None:
            table = palette(high + 1)
        if high >= len(table):
            raise UsageError(
                f"class id {high} has no colour: the colour table has {len(table)} entries "
                f"(ids 0-{len(table) - 1})"
            )
        out = table[labels]
        if hide:
            out[np.isin(labels, hide)] = HIDDEN_COLOUR
        return out
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
    *,
    hidden: Iterable[int] = (),
    outlines: bool = True,
) -> np.ndarray:
    """Blend the colourised ``labels`` onto ``image``; ``H x W x 3`` uint8.

    ``image`` is grey (``H x W``) or RGB(A) ``H x W x 3|4`` of any integer or float dtype,
    scaled to uint8 by :func:`batchseg.io.normalise.display_rgb` (the rule every kernel uses:
    uint8/uint16 by their range, wider integers as 16-bit, floats as 0-1).
    Blending is ``(1 - alpha) * image + alpha * colour`` on every pixel of a class map whose
    class is not in ``hidden``, and on every pixel of a region map with a region (label != 0);
    elsewhere the image is unchanged. For region maps, ``outlines`` draws region outlines
    opaque in ``boundary_colour`` (see :func:`outline_mask`). ``highlight`` (regions only)
    picks one object by label: only it is filled, outlined thick in :data:`HIGHLIGHT_COLOUR`.
    """
    labels = _check_labels(labels)
    kind = _check_kind(kind)
    hide = _check_hidden(hidden, kind)
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise UsageError(f"alpha must be between 0 and 1, not {alpha}")
    rgb = _to_rgb_uint8(image)
    if rgb.shape[:2] != labels.shape:
        raise UsageError(
            f"image and labels differ in size: image is {rgb.shape[0]}x{rgb.shape[1]}, "
            f"labels are {labels.shape[0]}x{labels.shape[1]} (height x width)"
        )
    edge = np.asarray(colour_table([boundary_colour])[0])
    colour = colourise(labels, colours, kind)
    out = rgb.copy()
    if Kind(kind).class_map:
        mask = ~np.isin(labels, hide) if hide else np.ones(labels.shape, dtype=bool)
    else:
        mask = labels != 0
    if highlight is not None:
        if Kind(kind) is not Kind.REGIONS:
            raise UsageError("only region label maps have objects to highlight")
        mask = labels == highlight
        if not mask.any():
            raise UsageError(f"object {highlight} is not in this label map")
    if mask.any():
        blended = (1.0 - alpha) * rgb[mask].astype(np.float32) + alpha * colour[mask]
        out[mask] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    if Kind(kind) is Kind.REGIONS and labels.size:
        if outlines:
            out[outline_mask(labels)] = edge
        if highlight is not None:
            from skimage.segmentation import find_boundaries

            ring = find_boundaries(labels == highlight, mode="thick")
            out[ring] = np.asarray(colour_table([HIGHLIGHT_COLOUR])[0])
    return out


def outline_mask(labels: np.ndarray) -> np.ndarray:
    """Where :func:`overlay` draws region outlines: a boolean ``H x W`` mask.

    A pixel is on an outline when a 4-neighbour has another label and its own label is the
    larger (so outlines lie inside regions, one pixel wide, never on "no region"). The width
    grows with the picture (:data:`OUTLINE_STEP`); outlines covering more than
    :data:`MAX_OUTLINE_SHARE` of the labelled pixels are thinned to one pixel, then left out:
    at that size the regions are too small to show anything but their outlines.
    """
    labels = _check_labels(labels)
    edges = np.zeros(labels.shape, dtype=bool)
    if labels.size == 0:
        return edges
    for a, b, ea, eb in (
        (labels[:, :-1], labels[:, 1:], edges[:, :-1], edges[:, 1:]),
        (labels[:-1, :], labels[1:, :], edges[:-1, :], edges[1:, :]),
    ):
        ea |= a > b
        eb |= b > a
    limit = MAX_OUTLINE_SHARE * max(1, int(np.count_nonzero(labels)))
    thin = int(np.count_nonzero(edges))
    if thin > limit:
        return np.zeros(labels.shape, dtype=bool)
    width = 1 + (max(labels.shape) - 1) // OUTLINE_STEP
    if width > 1:
        from scipy.ndimage import maximum_filter

        thick = maximum_filter(edges, size=width) & (labels != 0)
        if int(np.count_nonzero(thick)) <= limit:
            return thick
    return edges


def _check_kind(kind: str) -> str:
    """``kind``, with instance and panoptic ids drawn as regions; UsageError for an unknown
    kind."""
    if kind not in _KINDS:
        raise UsageError(
            f"unknown label kind {kind!r}; expected 'classes', 'regions', 'instances' or 'panoptic'"
        )
    return "regions" if Kind(kind).object_classes else kind


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise UsageError(f"labels must be a 2-D array (H x W), not shape {labels.shape}")
    if labels.dtype == np.bool_:
        return labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise UsageError(f"labels must be an integer array, not {labels.dtype}")
    return labels


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


def _check_hidden(hidden: Iterable[int], kind: str) -> list[int]:
    """``hidden`` as a list of ints; UsageError when hiding on a region map."""
    hide = [int(h) for h in hidden]
    if hide and not Kind(kind).class_map:
        raise UsageError("only class maps have classes to hide")
    return hide
