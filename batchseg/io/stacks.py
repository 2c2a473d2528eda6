"""Stacks in a collection: each file's axes read on the launcher, its planes made images.

With a :class:`~batchseg.io.planes.StackView` (``--planes``, ``--channels``, ``--project``,
``--axes``), every TIFF and Zarr image of the collection has its header read here, before any
cluster starts: a stack becomes one :class:`~batchseg.core.refs.ImageRef` per plane (id and
uri with the plane fragment, ``embryo.tif#t=3,z=12``, its size known so the header scan skips
it), and what no plane could be read with is refused in one line (a stack without
``--planes``, a channel index beyond every file's channels, channels that differ between
files when they are measured). Only headers are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from batchseg.core.refs import ImageRef, paused_gc
from batchseg.errors import ImageError, UsageError
from batchseg.io.axes import Layout, channels_refusal, stack_refusal
from batchseg.io.planes import StackReader, StackView, plane_uri


@dataclass(frozen=True)
class Expansion:
    """A collection's images after splitting stacks into planes."""

    refs: list[ImageRef]
    #: names of the channels measured (empty: none measured)
    channels: tuple[str, ...]
    #: ``axes sizes`` -> files of that layout (for ``run --dry-run``)
    layouts: dict[str, int] = field(default_factory=dict)
    #: ``axes sizes`` -> the (height, width) of its planes
    plane_shapes: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: GeoTIFF tags of the first geo-referenced file (provenance)
    geo: dict[str, object] = field(default_factory=dict)

    def axes_of(self, height: int, width: int) -> dict[str, int]:
        """The layouts (``axes sizes`` -> files) whose planes are ``height x width``."""
        return {k: n for k, n in self.layouts.items() if self.plane_shapes[k] == (height, width)}


def expand_refs(refs: Sequence[ImageRef], view: StackView) -> Expansion:
    """``refs`` with every stack split into planes as ``view`` asks (see the module)."""
    reader = StackReader(view)
    out: list[ImageRef] = []
    layouts: dict[str, int] = {}
    shapes: dict[str, tuple[int, int]] = {}
    seen: list[tuple[str, Layout]] = []
    try:
        with paused_gc():
            for ref in refs:
                layout = _layout(reader, ref)
                reader.close()  # one file open at a time on the launcher
                if layout is None:  # not a stack format: read as a picture later
                    out.append(ref)
                    continue
                _check(ref, layout, view)
                layouts[layout.describe()] = layouts.get(layout.describe(), 0) + 1
                shapes[layout.describe()] = (layout.height, layout.width)
                seen.append((ref.image_id, layout))
                out.extend(planes_of(ref, layout, view))
    finally:
        reader.close()
    names = _channel_names(seen, view)
    geo = next((layout.geo for _, layout in seen if layout.geo), {})
    refs_sorted = sorted(out, key=lambda r: r.image_id)
    return Expansion(refs_sorted, names, layouts, shapes, dict(geo))


def refuse_first_stack(refs: Sequence[ImageRef]) -> None:
    """Without stack options: the collection's first TIFF or Zarr image (by name, local files
    only; one header read) is refused in one line when it is a stack or has several channels,
    before any cluster starts. Later stacks fail alone, with the same line."""
    from batchseg.io.formats import is_zarr

    first = next(
        (r for r in refs if "://" not in r.uri and (r.uri.lower().endswith((".tif", ".tiff"))
                                                  or is_zarr(r.uri))),
        None,
    )  # fmt: skip
    if first is None:
        return
    reader = StackReader(StackView())
    try:
        layout = reader.layout(first.uri)
    except ImageError:
        return  # unreadable: the header scan records it
    finally:
        reader.close()
    refusal = stack_refusal(layout) or (None if layout.rgb else channels_refusal(layout))
    if refusal is not None:
        raise UsageError(f"{first.image_id}: {refusal}")


def _layout(reader: StackReader, ref: ImageRef) -> Layout | None:
    from batchseg.io.formats import TIFF_MAGIC, is_zarr, open_binary, sniff

    path = ref.uri
    try:
        if not is_zarr(path):
            with open_binary(path) as fh:
                if sniff(fh)[:4] not in TIFF_MAGIC:
                    return None
        return reader.layout(path)
    except ImageError as exc:
        raise UsageError(f"{ref.image_id}: {exc}") from None


def _check(ref: ImageRef, layout: Layout, view: StackView) -> None:
    refusal = stack_refusal(layout, view.planes, bool(view.project))
    if refusal is None and not view.channels:
        refusal = channels_refusal(layout) if not layout.rgb else None
    if refusal is None and view.channels and view.channels != "mean":
        assert isinstance(view.channels, tuple)
        n = 3 if layout.rgb else layout.channels
        bad = [i for i in view.channels if i >= n]
        if bad:
            refusal = (
                f"channel {bad[0]} is out of range: the image has {n} channel(s) "
                f"({', '.join(layout.names)}; --channels counts from 0)"
            )
    if refusal is not None:
        raise UsageError(f"{ref.image_id}: {refusal}")


def planes_of(ref: ImageRef, layout: Layout, view: StackView) -> list[ImageRef]:
    """The images of one file: a ref per plane of the axes ``view`` splits, sizes known."""
    times = range(layout.size("T")) if "t" in view.planes else [None]
    depths = range(layout.size("Z")) if "z" in view.planes else [None]
    h, w = layout.height, layout.width
    out = []
    for t in times:
        for z in depths:
            out.append(ImageRef(plane_uri(ref.image_id, t, z), plane_uri(ref.uri, t, z), h, w))
    return out


def _channel_names(seen: list[tuple[str, Layout]], view: StackView) -> tuple[str, ...]:
    """The channels measured: every file's, which must agree; none where one channel."""
    if view.measure_channels is False or not seen:
        return ()
    first_id, first = seen[0]
    for image_id, layout in seen[1:]:
        if layout.names != first.names:
            raise UsageError(
                f"channels differ between files: {first_id} has {', '.join(first.names)}, "
                f"{image_id} has {', '.join(layout.names)} (--measure-channels none to skip "
                "per-channel measurements)"
            )
    if first.channels <= 1 and not view.measure_channels:
        return ()
    return first.names
