"""Colourising label maps: palettes, colour images of labels, overlays and PNG output.

:mod:`~batchseg.render.colours` (palettes, colour tables checked wherever they come from),
:mod:`~batchseg.render.labels` (colour images of label maps, overlays, outlines) and
:mod:`~batchseg.render.panels` (confidence maps, legends, pictures side by side, PNG). Used by
``batchseg mask``, the report's gallery and the web app alike.
"""

from __future__ import annotations

from batchseg.render.colours import (
    colour_table,
    default_class_colours,
    palette,
    parse_colour,
    read_class_colours,
    region_colours,
    stored_colours,
)
from batchseg.render.labels import (
    BOUNDARY_COLOUR,
    HIDDEN_COLOUR,
    HIGHLIGHT_COLOUR,
    MAX_OUTLINE_SHARE,
    colourise,
    outline_mask,
    overlay,
)
from batchseg.render.panels import (
    beside,
    colour_map,
    confidence_picture,
    save_png,
    viridis,
    with_legend,
)

__all__ = [
    "BOUNDARY_COLOUR",
    "HIDDEN_COLOUR",
    "HIGHLIGHT_COLOUR",
    "MAX_OUTLINE_SHARE",
    "beside",
    "colour_map",
    "colour_table",
    "colourise",
    "confidence_picture",
    "default_class_colours",
    "outline_mask",
    "overlay",
    "palette",
    "parse_colour",
    "read_class_colours",
    "region_colours",
    "save_png",
    "stored_colours",
    "viridis",
    "with_legend",
]
