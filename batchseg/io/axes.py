"""The axes of an image file: what its dimensions mean, read from the file's own metadata.

A :class:`Layout` names every dimension with one letter of ``TZCYX`` (time, depth, channel,
rows, columns) plus ``S`` for the colour samples of an RGB picture. Sources:

* TIFF (tifffile's first series): ImageJ hyperstacks and OME-TIFF carry their axes (OME channel
  names too); a plain multi-page TIFF's page axis (``I``/``Q``) counts as ``Z``; the samples of
  a picture that is not RGB (a 4-band GeoTIFF, grey + markers) are channels, and alpha is
  dropped. GeoTIFF tags are kept (:attr:`Layout.geo`) for the provenance.
* OME-Zarr (``multiscales`` axes of level 0, ``omero`` channel labels), a Zarr v3 array's
  ``dimension_names``, or a plain Zarr array with an axes hint (``--axes tczyx``).

No pixels are read here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from batchseg.errors import ImageError, UsageError

#: Axis letters of a layout (``S``: the samples of an RGB picture, not channels).
AXES = "TZCYXS"
#: GeoTIFF tags kept in the provenance (pixel scale, tie points, transformation, key directory).
GEO_TAGS: dict[int, str] = {
    33550: "ModelPixelScale",
    33922: "ModelTiepoint",
    34264: "ModelTransformation",
    34735: "GeoKeyDirectory",
    34736: "GeoDoubleParams",
    34737: "GeoAsciiParams",
}
_TIFF_AXES = {"T": "T", "Z": "Z", "C": "C", "Y": "Y", "X": "X", "S": "S", "I": "Z", "Q": "Z"}


@dataclass(frozen=True)
class Layout:
    """What each dimension of an image's array means (``axes``, letters of :data:`AXES`)."""

    axes: str
    shape: tuple[int, ...]
    channel_names: tuple[str, ...] = ()
    geo: dict[str, Any] = field(default_factory=dict, compare=False)

    def size(self, axis: str) -> int:
        """Entries along ``axis`` (1 when the file has no such axis)."""
        return self.shape[self.axes.index(axis)] if axis in self.axes else 1

    @property
    def height(self) -> int:
        return self.size("Y")

    @property
    def width(self) -> int:
        return self.size("X")

    @property
    def channels(self) -> int:
        """Channels (bands); an RGB picture has none beyond its colour (1)."""
        return self.size("C")

    @property
    def rgb(self) -> bool:
        return self.size("S") == 3

    @property
    def is_stack(self) -> bool:
        """More than one plane along T or Z."""
        return self.size("T") > 1 or self.size("Z") > 1

    @property
    def names(self) -> tuple[str, ...]:
        """A name per channel: the file's own, else ``band1``... (GeoTIFF) or ``c0``..."""
        if len(self.channel_names) == self.channels:
            return self.channel_names
        if self.geo:
            return tuple(f"band{i + 1}" for i in range(self.channels))
        return tuple(f"c{i}" for i in range(self.channels))

    def describe(self) -> str:
        """``TZCYX 3x4x2x32x40``: axes and sizes, for messages and dry runs."""
        return f"{self.axes} {'x'.join(str(n) for n in self.shape)}"


def stack_refusal(layout: Layout, planes: str = "", project: bool = False) -> str | None:
    """Why ``layout`` cannot be read as it is (one line naming the option), or None: planes
    of T or Z that ``planes`` does not split (``project``: z is projected to one)."""
    depth, times = (1 if project else layout.size("Z")), layout.size("T")
    if times > 1 and "t" not in planes:
        want = "--planes zt" if depth > 1 else "--planes t"
        return f"image is a time-lapse ({layout.describe()}): segment its planes with {want}"
    if depth > 1 and "z" not in planes:
        return (
            f"image is a z-stack ({layout.describe()}): segment its planes with --planes z "
            "(or zt), or project them with --project max|mean"
        )
    return None


def channels_refusal(layout: Layout) -> str | None:
    """Why a picture of several channels cannot be read without ``--channels``, or None."""
    if layout.channels <= 1:
        return None
    return (
        f"image has {layout.channels} channels ({', '.join(layout.names)}); choose what the "
        "method sees with --channels (an index, three as RGB, or mean)"
    )


def parse_axes_hint(text: str | None) -> str | None:
    """``--axes`` (``tczyx``, ``zyx``, ``cyx``, ``yxc``...) as upper-case letters; None: none."""
    if text is None or text == "":
        return None
    axes = str(text).strip().upper()
    if (
        not axes
        or any(a not in "TZCYX" for a in axes)
        or len(set(axes)) != len(axes)
        or "Y" not in axes
        or "X" not in axes
    ):
        raise UsageError(
            f"--axes expects distinct letters of t, z, c, y, x with y and x (e.g. tczyx), "
            f"got {text!r}"
        )
    return axes


def _checked(axes: str, shape: tuple[int, ...], names: tuple[str, ...], where: str) -> Layout:
    if len(axes) != len(shape):
        raise ImageError(f"{where} axes {axes} do not match its {len(shape)} dimensions {shape}")
    if "Y" not in axes or "X" not in axes or len(set(axes)) != len(axes):
        raise ImageError(f"{where} axes {axes} are not usable (need distinct Y and X)")
    if math.prod(shape) == 0:
        raise ImageError(f"{where} has an empty dimension {shape}")
    n_channels = shape[axes.index("C")] if "C" in axes else None
    return Layout(axes, shape, names if len(names) == n_channels else ())


# --------------------------------------------------------------------------- TIFF


def tiff_layout(tif: Any, hint: str | None = None) -> Layout:
    """The layout of the first series of an open ``tifffile.TiffFile``."""
    try:
        series = tif.series[0]
        raw_axes, shape = str(series.axes), tuple(int(n) for n in series.shape)
        page = series.keyframe
    except Exception as exc:  # noqa: BLE001 - a malformed file
        raise ImageError(f"corrupt TIFF file ({type(exc).__name__}: {exc})") from exc
    if hint is not None and len(hint) == len(shape) and "S" not in raw_axes:
        axes = hint
    else:
        unknown = sorted({a for a in raw_axes if a not in _TIFF_AXES})
        if unknown:
            raise ImageError(
                f"TIFF axes {raw_axes} {shape}: axis {unknown[0]} is not one of T, Z, C, Y, X "
                "(give --axes)"
            )
        axes = "".join(_TIFF_AXES[a] for a in raw_axes)
    geo = _geo_tags(page)
    if "S" in axes:
        axes, shape = _samples(axes, shape, page, bool(geo))
    if axes.count("Z") > 1:  # I/Q pages beside a Z axis
        raise ImageError(f"TIFF axes {raw_axes} have two plane axes; give --axes")
    names = _ome_channel_names(tif) if getattr(tif, "is_ome", False) else ()
    layout = _checked(axes, shape, names, "TIFF image")
    return Layout(layout.axes, layout.shape, layout.channel_names, geo)


def _samples(
    axes: str, shape: tuple[int, ...], page: Any, geo: bool
) -> tuple[str, tuple[int, ...]]:
    """Samples of a page: an RGB picture's colour stays ``S`` (alpha dropped by the reader);
    the samples of any other picture are channels ``C`` (alpha not counted)."""
    photometric = int(getattr(page, "photometric", -1))
    n, i = shape[axes.index("S")], axes.index("S")
    if photometric == 2 and not geo and n >= 3:  # RGB: colour, not channels (alpha dropped)
        return axes, shape[:i] + (3,) + shape[i + 1 :]
    extra = tuple(int(e) for e in (getattr(page, "extrasamples", ()) or ()))
    alpha = sum(1 for e in extra if e in (1, 2))
    if "C" in axes:
        if n - alpha > 1:
            raise ImageError(f"TIFF axes {axes} have channels both in pages and in samples")
        return axes[:i] + axes[i + 1 :], shape[:i] + shape[i + 1 :]
    return axes[:i] + "C" + axes[i + 1 :], shape[:i] + (n - alpha,) + shape[i + 1 :]


def _geo_tags(page: Any) -> dict[str, Any]:
    """The GeoTIFF tags of a page, as plain JSON values."""
    out: dict[str, Any] = {}
    tags = getattr(page, "tags", None)
    if tags is None:
        return out
    for code, name in GEO_TAGS.items():
        tag = tags.get(code)
        if tag is None:
            continue
        value = tag.value
        out[name] = value if isinstance(value, str) else [_plain(v) for v in value]
    return out


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, float) else int(value)


def _ome_channel_names(tif: Any) -> tuple[str, ...]:
    """Channel names of the first OME image (``Channel/@Name``), empty where any is missing."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(tif.ome_metadata)
    except Exception:  # noqa: BLE001 - malformed OME-XML: no names
        return ()
    image = next((e for e in root if e.tag.endswith("Image")), None)
    if image is None:
        return ()
    pixels = next((e for e in image if e.tag.endswith("Pixels")), None)
    channels = [e for e in (pixels if pixels is not None else []) if e.tag.endswith("Channel")]
    names = tuple(str(c.get("Name") or "") for c in channels)
    return names if names and all(names) else ()


# --------------------------------------------------------------------------- Zarr


def ome_level0(group: Any) -> tuple[Any, list[str] | None, tuple[str, ...]]:
    """The first multiscale's level 0 array of an OME-Zarr group (OME-NGFF 0.4/0.5), its
    axis names and its channel labels (omero; empty unless every channel has one)."""
    attrs = dict(group.attrs)
    ome = attrs.get("ome", attrs)
    scales = ome.get("multiscales") if isinstance(ome, dict) else None
    if not scales:
        raise ImageError("Zarr group is not an OME-Zarr image (no multiscales)")
    first = scales[0]
    axes = [a["name"] if isinstance(a, dict) else str(a) for a in first.get("axes", [])]
    names: tuple[str, ...] = ()
    omero = ome.get("omero")
    if isinstance(omero, dict):
        labels = [c.get("label") for c in omero.get("channels", []) if isinstance(c, dict)]
        names = tuple(str(n) for n in labels) if labels and all(labels) else ()
    return group[first["datasets"][0]["path"]], axes or None, names


def zarr_layout(node: Any, hint: str | None = None) -> tuple[Any, Layout]:
    """The array to read and its layout, from an opened Zarr group (OME-Zarr) or array."""
    import zarr

    names: tuple[str, ...] = ()
    axes: str | None = None
    if isinstance(node, zarr.Group):
        node, found, names = ome_level0(node)
        axes = "".join(str(a).upper() for a in found or []) or None
    else:
        dims = getattr(node.metadata, "dimension_names", None)
        if dims and all(dims):
            axes = "".join(str(d).upper() for d in dims)
    shape = tuple(int(n) for n in node.shape)
    if hint is not None:
        axes = hint
    if axes is None:
        raise ImageError(
            f"Zarr array of shape {shape} has no axis names; give them with --axes (e.g. zyx)"
        )
    if any(a not in "TZCYX" for a in axes):
        raise ImageError(f"Zarr axes {axes} are not letters of t, z, c, y, x")
    return node, _checked(axes, shape, names, "Zarr image")
