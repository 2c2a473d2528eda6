"""Export one image of a store as an OME-Zarr (OME-NGFF 0.5, Zarr v3) image for viewers.

Layout written (plain zarr-python; ome-zarr-py is not needed to write it)::

    OUT.zarr/                   attrs["ome"]: version "0.5", multiscales (axes c,y,x or y,x),
                                omero (RGB channel colours); attrs["batchseg"]: provenance
      0, 1, ...                 the source image, level k downsampled 2^k by 2x2 block means
      labels/                   attrs["ome"]["labels"] = ["segmentation"]
      labels/segmentation/      attrs["ome"]: multiscales + image-label (colors, properties,
                                source "../../")
        0, 1, ...               the label map, level k = level 0 [::2^k, ::2^k] (nearest;
                                label values are never interpolated)

For RGB images the label arrays carry a channel axis of size 1 (axes c,y,x), as the spec asks
label dimensions to equal the image's or be 1.

Ordinary images are read whole. Tiled images (a bucket with ``"tile"``: too big to hold in
memory) are written window by window, so memory is bounded by a few tiles: label level 0 is
copied tile by tile from ``labels/<bucket>``, levels ``1..L`` from the label pyramid the job
stored (``pyramid/<bucket>/<l>`` = level 0 ``[::2^l, ::2^l]``, the same stride slicing), further
levels from the level above in the output; the image is copied from the source in windows
(:func:`batchseg.io.windowed.open_source`) and each lower level is block-averaged from the level
above in the output, in windows aligned to even offsets. Both ways give the same arrays and
metadata (``tests/export/test_ome_zarr_tiled.py`` compares them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from batchseg import store
from batchseg.errors import BatchsegError, StoreError, UsageError
from batchseg.export import metadata as ngff
from batchseg.export import pyramid
from batchseg.export.metadata import LABEL_NAME, NGFF_VERSION, LabelTable
from batchseg.export.pyramid import Shapes

__all__ = ["LABEL_NAME", "MAX_LEVELS", "default_levels", "export_ome_zarr"]

SMALLEST = 256
"""Default pyramids stop once the longer side of the smallest level is at most this."""
MAX_LEVELS = 8
"""Most levels of a default pyramid."""
LEVELS_LIMIT = 16
"""Most levels ``--levels`` accepts."""


def default_levels(height: int, width: int) -> int:
    """Levels (factor 2 each) until the longer side is <= 256 px, at most 8."""
    levels, side = 1, max(height, width)
    while levels < MAX_LEVELS and side > SMALLEST:
        side = -(-side // 2)
        levels += 1
    return levels


def export_ome_zarr(
    store_path: str,
    image_id: str,
    output: str | os.PathLike[str],
    *,
    levels: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``image_id`` of the store at ``store_path`` as an OME-Zarr image with labels.

    Tiled images are written window by window (memory bounded by a few tiles), others whole.
    The output is written to a temporary folder beside ``output`` and moved into place last.

    Parameters
    ----------
    store_path : str
        The batchseg store (local path or fsspec URL).
    image_id : str
        The image to export, as listed by ``batchseg query``.
    output : str or os.PathLike
        The OME-Zarr folder to write (local).
    levels : int, optional
        Pyramid levels (1 to 16); by default halve until the longer side is <= 256 px, at
        most 8 levels.
    overwrite : bool
        Replace an existing Zarr group at ``output``.

    Returns
    -------
    dict
        ``output``, ``levels``, ``image_shapes``, ``label_shapes``, ``label_values_listed``
        and ``label_values_total``.

    Raises
    ------
    StoreError
        Unknown, failed, pending or damaged image (its label data missing or failing its
        checksum), unreadable or changed source image, or an existing ``output`` without
        ``overwrite``.
    UsageError
        ``levels`` out of range.
    """
    return _export(store_path, image_id, output, levels=levels, overwrite=overwrite)


def _export(
    store_path: str,
    image_id: str,
    output: str | os.PathLike[str],
    *,
    levels: int | None = None,
    overwrite: bool = False,
    windowed: bool = True,
) -> dict[str, Any]:
    """:func:`export_ome_zarr`; ``windowed=False`` reads a tiled image whole as well (tests)."""
    import batchseg

    if levels is not None and (isinstance(levels, bool) or not 1 <= int(levels) <= LEVELS_LIMIT):
        raise UsageError(f"--levels must be between 1 and {LEVELS_LIMIT}, got {levels}")
    out = Path(output)
    view = batchseg.open(store_path)
    uri = view.uri(image_id)  # StoreError: unknown image
    _check_output(out, Path(store_path), overwrite)
    with contextlib.ExitStack() as stack:
        tiled = _tiled_image(view, image_id) if windowed else None
        content: _Whole | _Windowed
        if tiled is None:
            content = _Whole(view, image_id, uri)
        else:
            content = _Windowed(view, tiled, uri, stack)
        height, width = content.shape
        n_levels = default_levels(height, width) if levels is None else int(levels)
        rgb = content.rgb
        axes = ngff.axes(rgb)

        tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
            image_shapes = content.write_image(root, n_levels, axes)
            label_group = root.create_group("labels")
            seg = label_group.create_group(LABEL_NAME)
            label_shapes = content.write_labels(seg, n_levels, axes)
            colors, properties, listed, total = content.label_table(view)
            meta = _Meta(store_path, image_id, uri, axes, n_levels, rgb)
            _write_image_attrs(root, view, content, meta, listed, total)
            _write_label_attrs(label_group, seg, meta, colors, properties)
            _replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return {
        "output": str(out),
        "levels": n_levels,
        "image_shapes": image_shapes,
        "label_shapes": label_shapes,
        "label_values_listed": listed,
        "label_values_total": total,
    }


@dataclass(frozen=True)
class _Meta:
    """What the metadata of one exported image names."""

    store_path: str
    image_id: str
    uri: str
    axes: Any
    n_levels: int
    rgb: bool


def _write_image_attrs(
    root: zarr.Group, view: Any, content: Any, meta: _Meta, listed: int, total: int
) -> None:
    """The image's NGFF multiscale (and omero channels for RGB) and batchseg's provenance."""
    import batchseg

    ome: dict[str, Any] = {
        "version": NGFF_VERSION,
        "multiscales": [
            ngff.multiscale(
                meta.image_id,
                meta.axes,
                meta.n_levels,
                translate=True,
                kind="mean",
                description="2x2 block mean of the level above (edge pixels repeated at odd sizes)",
            )
        ],
    }
    if meta.rgb:  # channel colours for viewers; a grey image has no channel axis to describe
        names = getattr(content, "channel_names", ())
        ome["omero"] = ngff.omero(meta.image_id, content.value_range(), names)
    root.attrs["ome"] = ome
    store_path = meta.store_path
    root.attrs["batchseg"] = {
        "store": store_path if "://" in store_path else os.path.abspath(store_path),
        "image_id": meta.image_id,
        "uri": meta.uri,
        "method": view.attrs["method"],
        "kind": view.kind,
        "classes": view.classes,
        "label_values_listed": listed,
        "label_values_total": total,
        "batchseg_version": batchseg.__version__,
    }


def _write_label_attrs(
    label_group: zarr.Group,
    seg: zarr.Group,
    meta: _Meta,
    colors: list[Any],
    properties: list[Any],
) -> None:
    """The labels group listing, and the label image's multiscale and image-label metadata."""
    label_group.attrs["ome"] = {"version": NGFF_VERSION, "labels": [LABEL_NAME]}
    image_label: dict[str, Any] = {"version": NGFF_VERSION}
    if colors:
        image_label["colors"] = colors
    if properties:
        image_label["properties"] = properties
    image_label["source"] = {"image": "../../"}
    seg.attrs["ome"] = {
        "version": NGFF_VERSION,
        "multiscales": [
            ngff.multiscale(
                LABEL_NAME,
                meta.axes,
                meta.n_levels,
                translate=False,
                kind="nearest",
                description="every 2nd pixel of the level above (stride slicing); "
                "label values are never interpolated",
            )
        ],
        "image-label": image_label,
    }


# -------------------------------------------------------------------------- input


def _source_error(image_id: str, uri: str, exc: BaseException) -> StoreError:
    return StoreError(f"cannot read the source image of {image_id!r} ({uri}): {exc}")


def _shape_error(image_id: str, image: tuple[int, ...], labels: tuple[int, ...]) -> StoreError:
    return StoreError(
        f"the source image of {image_id!r} is {image[0]}x{image[1]} but its "
        f"labels are {labels[0]}x{labels[1]}; the file changed after the run"
    )


def _tiled_image(view: Any, image_id: str) -> store.ImageInfo | None:
    """The catalogue entry of ``image_id`` when it is a tiled image, else None.

    For a tiled image this also checks, like :func:`batchseg.store.read_labels`, that the
    image is done (StoreError naming its status and error otherwise).
    """
    info: store.ImageInfo = view.locate(image_id)
    if not info.tiled:
        return None
    info.require_done()
    return info


class _Whole:
    """An image and its label map read whole into memory (ordinary images)."""

    def __init__(self, view: Any, image_id: str, uri: str) -> None:
        from batchseg.io import read as readers
        from batchseg.io.planes import plane_channels

        labels = view.mask(image_id)  # StoreError: failed / pending image
        stacks = view.stack_view() if hasattr(view, "stack_view") else None
        #: a stack's plane: every channel, named (axes c, y, x)
        self.channel_names: tuple[str, ...] = ()
        try:
            if stacks is not None:
                names = tuple(view.attrs.get("channels") or ())
                image, self.channel_names = plane_channels(uri, stacks, labels.size, names)
            else:
                image = readers.read_image(uri, max_pixels=max(1, labels.size))
        except (BatchsegError, OSError) as exc:
            raise _source_error(image_id, uri, exc) from None
        if image.shape[:2] != labels.shape:
            raise _shape_error(image_id, image.shape, labels.shape)
        self.shape: tuple[int, int] = (int(labels.shape[0]), int(labels.shape[1]))
        self.rgb = image.ndim == 3
        self.image = image
        self.image_dtype = image.dtype
        self.labels = labels
        self.table = ngff.label_table(view, ngff.LabelCounts.of(labels))

    def value_range(self) -> tuple[float, float]:
        return ngff.value_range(self.image)

    def write_image(self, root: zarr.Group, n_levels: int, axes: list[dict[str, str]]) -> Shapes:
        pixels = np.moveaxis(self.image, -1, 0) if self.rgb else self.image  # channel first
        return pyramid.write_pyramid(
            root, pixels, n_levels, pyramid.image_codec(pixels.dtype), pyramid.block_mean, axes
        )

    def write_labels(self, seg: zarr.Group, n_levels: int, axes: list[dict[str, str]]) -> Shapes:
        data = self.labels[None] if self.rgb else self.labels
        return pyramid.write_pyramid(
            seg, data, n_levels, pyramid.label_codec(data.dtype), pyramid.nearest, axes
        )

    def label_table(self, view: Any) -> LabelTable:
        return self.table


class _Windowed:
    """A tiled image written window by window: memory bounded by a few tiles.

    Label level 0 is copied tile by tile from ``labels/<bucket>`` (counting label values on
    the way), levels the job stored are copied from ``pyramid/<bucket>/<l>``, and every other
    level (image levels >= 1, label levels past the stored ones) is computed from the level
    above in the output, in windows that start at even offsets there, so the result equals
    the whole-array downsampling.
    """

    def __init__(
        self,
        view: Any,
        info: store.ImageInfo,
        uri: str,
        stack: contextlib.ExitStack,
    ) -> None:
        from batchseg.io import windowed

        assert info.bucket is not None  # a tiled image has a bucket
        bucket = info.bucket
        self.root: zarr.Group = view.group
        self.info = info
        name = str(bucket["name"])
        image_id = info.image_id
        self.image_id, self.uri = image_id, uri
        self.tile = int(bucket["tile"])
        self.shape = (int(bucket["height"]), int(bucket["width"]))
        self.labels = store.label_array(self.root, name)
        self.stored: dict[int, zarr.Array] = {}
        for level in bucket.get("levels") or []:
            f = 1 << int(level)
            want = (1, -(-self.shape[0] // f), -(-self.shape[1] // f))
            arr = store.pyramid_array(self.root, name, int(level))
            if arr is not None and tuple(arr.shape) == want and arr.dtype == self.labels.dtype:
                self.stored[int(level)] = arr
        try:
            self.source = stack.enter_context(windowed.open_source(uri))
        except (BatchsegError, OSError) as exc:
            raise _source_error(image_id, uri, exc) from None
        source_shape = tuple(int(s) for s in self.source.shape)
        if source_shape != self.shape:
            raise _shape_error(image_id, source_shape, self.shape)
        probe = self._read(0, 1, 0, 1, check=False)
        self.rgb = probe.ndim == 3
        self.image_dtype = probe.dtype
        self.counts = ngff.LabelCounts()
        self.range = ngff.RangeTracker(self.image_dtype)

    def _read(self, y0: int, y1: int, x0: int, x1: int, *, check: bool = True) -> np.ndarray:
        try:
            window = np.asarray(self.source.read(y0, y1, x0, x1))
        except (BatchsegError, OSError) as exc:
            raise _source_error(self.image_id, self.uri, exc) from None
        if not check:
            return window
        want = (y1 - y0, x1 - x0, *((3,) if self.rgb else ()))
        if window.shape != want or window.dtype != self.image_dtype:
            raise StoreError(
                f"the source image of {self.image_id!r} changed after the run (window "
                f"{y0}:{y1}, {x0}:{x1} reads {window.shape} {window.dtype})"
            )
        return window

    def value_range(self) -> tuple[float, float]:
        return self.range.result()

    def write_image(self, root: zarr.Group, n_levels: int, axes: list[dict[str, str]]) -> Shapes:
        lead = (3,) if self.rgb else ()
        codec = pyramid.image_codec(self.image_dtype)
        level = pyramid.create_level(root, 0, (*lead, *self.shape), self.image_dtype, codec, axes)
        for ys, xs in pyramid.windows(self.shape, (self.tile, self.tile)):
            window = self._read(ys.start, ys.stop, xs.start, xs.stop)
            self.range.add(window)
            level[(..., ys, xs)] = np.moveaxis(window, -1, 0) if self.rgb else window
        shapes = [pyramid.shape_of(level)]
        for k in range(1, n_levels):
            level = self._downsample(root, k, level, pyramid.block_mean, codec, axes)
            shapes.append(pyramid.shape_of(level))
        return shapes

    def write_labels(self, seg: zarr.Group, n_levels: int, axes: list[dict[str, str]]) -> Shapes:
        lead = (1,) if self.rgb else ()
        dtype = self.labels.dtype
        codec = pyramid.label_codec(dtype)
        level = pyramid.create_level(seg, 0, (*lead, *self.shape), dtype, codec, axes)
        for ys, xs in pyramid.windows(self.shape, (self.tile, self.tile)):
            block = store.read_checked(self.root, self.labels, (0, ys, xs), self.info)
            self.counts.add(block)
            level[(..., ys, xs)] = block[None] if self.rgb else block
        shapes = [pyramid.shape_of(level)]
        for k in range(1, n_levels):
            if k in self.stored:
                level = self._copy_stored(seg, k, self.stored[k], lead, codec, axes)
            else:
                level = self._downsample(seg, k, level, pyramid.nearest, codec, axes)
            shapes.append(pyramid.shape_of(level))
        return shapes

    def _copy_stored(
        self,
        seg: zarr.Group,
        k: int,
        stored: zarr.Array,
        lead: tuple[int, ...],
        codec: BloscCodec,
        axes: list[dict[str, str]],
    ) -> zarr.Array:
        """Label level ``k`` from the job's pyramid (level 0 ``[::2^k, ::2^k]``, as pyramid.nearest)."""
        plane = (int(stored.shape[1]), int(stored.shape[2]))
        level = pyramid.create_level(seg, k, (*lead, *plane), stored.dtype, codec, axes)
        step = tuple(
            pyramid.aligned_step(int(c), int(o), self.tile)
            for c, o in zip(stored.chunks[1:], level.chunks[-2:], strict=True)
        )
        for ys, xs in pyramid.windows(plane, (step[0], step[1])):
            block = store.read_checked(
                self.root, stored, (0, ys, xs), self.info, "label pyramid data"
            )
            level[(..., ys, xs)] = block[None] if lead else block
        return level

    def _downsample(
        self,
        group: zarr.Group,
        k: int,
        above: zarr.Array,
        downsample: Any,
        codec: BloscCodec,
        axes: list[dict[str, str]],
    ) -> zarr.Array:
        """Level ``k`` from level ``k - 1`` of the output, window by window.

        A window ``[y0:y1]`` of level ``k`` comes from rows ``[2*y0 : 2*y1]`` of the level
        above (fewer at its end): windows start at even rows, so an odd size only ever
        meets the last window, exactly as when the whole level is downsampled at once.
        """
        lead = tuple(int(s) for s in above.shape[:-2])
        plane = (-(-int(above.shape[-2]) // 2), -(-int(above.shape[-1]) // 2))
        level = pyramid.create_level(group, k, (*lead, *plane), above.dtype, codec, axes)
        step = pyramid.half_step(self.tile)
        for ys, xs in pyramid.windows(plane, (step, step)):
            block = np.asarray(
                above[(..., slice(2 * ys.start, 2 * ys.stop), slice(2 * xs.start, 2 * xs.stop))]
            )
            level[(..., ys, xs)] = downsample(block)
        return level

    def label_table(self, view: Any) -> LabelTable:
        return ngff.label_table(view, self.counts)


# ------------------------------------------------------------------------- output


def _check_output(out: Path, store: Path, overwrite: bool) -> None:
    target, source = out.resolve(), store.resolve()
    if target == source or source in target.parents or target in source.parents:
        raise StoreError(f"--output {out} would overlap the store {store}")
    if not out.exists() and not out.is_symlink():
        if not out.parent.is_dir():
            raise StoreError(f"cannot write {out}: folder {out.parent} does not exist")
        return
    if not overwrite:
        raise StoreError(f"{out} exists; pass --overwrite to replace it")
    if out.is_dir() and not out.is_symlink():
        if not (out / "zarr.json").is_file() and any(out.iterdir()):
            raise StoreError(f"{out} is a folder but not a Zarr group; refusing to replace it")
    from batchseg.store.replace import check_replaceable  # the one rule for --overwrite

    check_replaceable(str(out), inputs=[str(store)], kind="export")


def _replace(tmp: Path, out: Path) -> None:
    if out.is_dir() and not out.is_symlink():
        shutil.rmtree(out)
    elif out.exists() or out.is_symlink():
        out.unlink()
    os.replace(tmp, out)
