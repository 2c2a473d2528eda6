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
import math
import os
import shutil
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from batchseg import store
from batchseg.errors import BatchsegError, StoreError, UsageError

__all__ = ["LABEL_NAME", "MAX_LEVELS", "default_levels", "export_ome_zarr"]

Shapes = list[tuple[int, ...]]
LabelTable = tuple[list[dict[str, Any]], list[dict[str, Any]], int, int]

NGFF_VERSION = "0.5"
LABEL_NAME = "segmentation"
CHUNK = 256
"""Chunk edge (y and x) of every level; smaller levels use their own size."""
SMALLEST = 256
"""Default pyramids stop once the longer side of the smallest level is at most this."""
MAX_LEVELS = 8
"""Most levels of a default pyramid."""
LEVELS_LIMIT = 16
"""Most levels ``--levels`` accepts."""
REGION_LIMIT = 10_000
"""Region ids (lowest first) listed in ``image-label`` colors/properties."""
_BINCOUNT_LIMIT = 1 << 24  # region ids below this are counted with np.bincount


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
    Returns a summary: ``output``, ``levels``, ``image_shapes``, ``label_shapes``.
    Raises StoreError (unknown, failed or pending image, unreadable source image, existing
    output without ``overwrite``) or UsageError (bad ``levels``).
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
        bucket = _tiled_bucket(view, image_id) if windowed else None
        content: _Whole | _Windowed
        if bucket is None:
            content = _Whole(view, image_id, uri)
        else:
            content = _Windowed(view, image_id, uri, bucket, stack)
        height, width = content.shape
        n_levels = default_levels(height, width) if levels is None else int(levels)
        rgb = content.rgb
        axes = _axes(rgb)

        tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
            image_shapes = content.write_image(root, n_levels, axes)
            label_group = root.create_group("labels")
            seg = label_group.create_group(LABEL_NAME)
            label_shapes = content.write_labels(seg, n_levels, axes)
            colors, properties, listed, total = content.label_table(view)
            ome: dict[str, Any] = {
                "version": NGFF_VERSION,
                "multiscales": [
                    _multiscale(
                        image_id,
                        axes,
                        n_levels,
                        translate=True,
                        kind="mean",
                        description="2x2 block mean of the level above "
                        "(edge pixels repeated at odd sizes)",
                    )
                ],
            }
            if rgb:  # channel colours for viewers; a grey image has no channel axis to describe
                ome["omero"] = _omero(image_id, content.value_range())
            root.attrs["ome"] = ome
            root.attrs["batchseg"] = {
                "store": store_path if "://" in store_path else os.path.abspath(store_path),
                "image_id": image_id,
                "uri": uri,
                "method": view.attrs["method"],
                "kind": view.kind,
                "classes": view.classes,
                "label_values_listed": listed,
                "label_values_total": total,
                "batchseg_version": batchseg.__version__,
            }
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
                    _multiscale(
                        LABEL_NAME,
                        axes,
                        n_levels,
                        translate=False,
                        kind="nearest",
                        description="every 2nd pixel of the level above (stride slicing); "
                        "label values are never interpolated",
                    )
                ],
                "image-label": image_label,
            }
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


# -------------------------------------------------------------------------- input


def _source_error(image_id: str, uri: str, exc: BaseException) -> StoreError:
    return StoreError(f"cannot read the source image of {image_id!r} ({uri}): {exc}")


def _shape_error(image_id: str, image: tuple[int, ...], labels: tuple[int, ...]) -> StoreError:
    return StoreError(
        f"the source image of {image_id!r} is {image[0]}x{image[1]} but its "
        f"labels are {labels[0]}x{labels[1]}; the file changed after the run"
    )


def _tiled_bucket(view: Any, image_id: str) -> dict[str, Any] | None:
    """The store bucket of ``image_id`` when it is a tiled image, else None.

    For a tiled image this also checks, like :func:`batchseg.store.read_labels`, that the
    image is done (StoreError naming its status and error otherwise).
    """
    root = view._root  # the view's open store group
    row = store.find_row(root, image_id)
    index = int(store.read_array(root, "catalogue/bucket", row))
    if index < 0:
        return None
    bucket = dict(view.attrs["buckets"][index])
    if not bucket.get("tile"):
        return None
    status = int(store.read_array(root, "catalogue/status", row))
    if status != store.DONE:
        error = store.read_array(root, "catalogue/error", row).item()
        detail = f": {error}" if error else ""
        raise StoreError(f"image {image_id!r} is {store.STATUS_NAMES[status]}{detail}")
    return bucket


class _Whole:
    """An image and its label map read whole into memory (ordinary images)."""

    def __init__(self, view: Any, image_id: str, uri: str) -> None:
        from batchseg.io import read as readers

        labels = view.mask(image_id)  # StoreError: failed / pending image
        try:
            image = readers.read_image(uri, max_pixels=None)
        except (BatchsegError, OSError) as exc:
            raise _source_error(image_id, uri, exc) from None
        if image.shape[:2] != labels.shape:
            raise _shape_error(image_id, image.shape, labels.shape)
        self.shape: tuple[int, int] = (int(labels.shape[0]), int(labels.shape[1]))
        self.rgb = image.ndim == 3
        self.image = image
        self.image_dtype = image.dtype
        self.labels = labels
        self.table = _label_table(view, _LabelCounts.of(labels))

    def value_range(self) -> tuple[float, float]:
        return _value_range(self.image)

    def write_image(self, root: zarr.Group, n_levels: int, axes: list[dict[str, str]]) -> Shapes:
        pixels = np.moveaxis(self.image, -1, 0) if self.rgb else self.image  # channel first
        return _write_pyramid(root, pixels, n_levels, _image_codec(pixels.dtype), _block_mean, axes)

    def write_labels(self, seg: zarr.Group, n_levels: int, axes: list[dict[str, str]]) -> Shapes:
        data = self.labels[None] if self.rgb else self.labels
        return _write_pyramid(seg, data, n_levels, _label_codec(data.dtype), _nearest, axes)

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
        image_id: str,
        uri: str,
        bucket: dict[str, Any],
        stack: contextlib.ExitStack,
    ) -> None:
        from batchseg.io import windowed

        root = view._root
        name = str(bucket["name"])
        self.image_id, self.uri = image_id, uri
        self.tile = int(bucket["tile"])
        self.shape = (int(bucket["height"]), int(bucket["width"]))
        self.labels = store.array(root, f"labels/{name}")
        self.stored: dict[int, zarr.Array] = {}
        for level in bucket.get("levels") or []:
            path = f"pyramid/{name}/{int(level)}"
            f = 1 << int(level)
            want = (1, -(-self.shape[0] // f), -(-self.shape[1] // f))
            if path in root:
                arr = store.array(root, path)
                if tuple(arr.shape) == want and arr.dtype == self.labels.dtype:
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
        self.counts = _LabelCounts()
        self.range = _RangeTracker(self.image_dtype)

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
        codec = _image_codec(self.image_dtype)
        level = _create_level(root, 0, (*lead, *self.shape), self.image_dtype, codec, axes)
        for ys, xs in _windows(self.shape, (self.tile, self.tile)):
            window = self._read(ys.start, ys.stop, xs.start, xs.stop)
            self.range.add(window)
            level[(..., ys, xs)] = np.moveaxis(window, -1, 0) if self.rgb else window
        shapes = [_shape(level)]
        for k in range(1, n_levels):
            level = self._downsample(root, k, level, _block_mean, codec, axes)
            shapes.append(_shape(level))
        return shapes

    def write_labels(self, seg: zarr.Group, n_levels: int, axes: list[dict[str, str]]) -> Shapes:
        lead = (1,) if self.rgb else ()
        dtype = self.labels.dtype
        codec = _label_codec(dtype)
        level = _create_level(seg, 0, (*lead, *self.shape), dtype, codec, axes)
        for ys, xs in _windows(self.shape, (self.tile, self.tile)):
            block = np.asarray(self.labels[0, ys, xs])
            self.counts.add(block)
            level[(..., ys, xs)] = block[None] if self.rgb else block
        shapes = [_shape(level)]
        for k in range(1, n_levels):
            if k in self.stored:
                level = self._copy_stored(seg, k, self.stored[k], lead, codec, axes)
            else:
                level = self._downsample(seg, k, level, _nearest, codec, axes)
            shapes.append(_shape(level))
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
        """Label level ``k`` from the job's pyramid (level 0 ``[::2^k, ::2^k]``, as _nearest)."""
        plane = (int(stored.shape[1]), int(stored.shape[2]))
        level = _create_level(seg, k, (*lead, *plane), stored.dtype, codec, axes)
        step = tuple(
            _aligned_step(int(c), int(o), self.tile)
            for c, o in zip(stored.chunks[1:], level.chunks[-2:], strict=True)
        )
        for ys, xs in _windows(plane, (step[0], step[1])):
            block = np.asarray(stored[0, ys, xs])
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
        level = _create_level(group, k, (*lead, *plane), above.dtype, codec, axes)
        step = _half_step(self.tile)
        for ys, xs in _windows(plane, (step, step)):
            block = np.asarray(
                above[(..., slice(2 * ys.start, 2 * ys.stop), slice(2 * xs.start, 2 * xs.stop))]
            )
            level[(..., ys, xs)] = downsample(block)
        return level

    def label_table(self, view: Any) -> LabelTable:
        return _label_table(view, self.counts)


def _windows(shape: tuple[int, int], step: tuple[int, int]) -> Iterator[tuple[slice, slice]]:
    """``(rows, columns)`` slices covering ``shape`` in row-major windows of ``step``."""
    (h, w), (sy, sx) = shape, step
    for y0 in range(0, h, sy):
        for x0 in range(0, w, sx):
            yield slice(y0, min(y0 + sy, h)), slice(x0, min(x0 + sx, w))


def _half_step(tile: int) -> int:
    """Window side of a computed level: a multiple of the chunk side, about half a tile.

    The window reads twice that side from the level above, so at most ``max(tile, 512)``
    squared pixels.
    """
    return max(CHUNK, (tile // 2) // CHUNK * CHUNK)


def _aligned_step(stored_chunk: int, out_chunk: int, tile: int) -> int:
    """Window side that is whole chunks of both the stored and the output level."""
    step = math.lcm(stored_chunk, out_chunk)
    return step if step <= max(tile, out_chunk) else out_chunk


def _shape(array: zarr.Array) -> tuple[int, ...]:
    return tuple(int(s) for s in array.shape)


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


def _replace(tmp: Path, out: Path) -> None:
    if out.is_dir() and not out.is_symlink():
        shutil.rmtree(out)
    elif out.exists() or out.is_symlink():
        out.unlink()
    os.replace(tmp, out)


# ----------------------------------------------------------------------- pyramids


def _write_pyramid(
    group: zarr.Group,
    data: np.ndarray,
    n_levels: int,
    codec: BloscCodec,
    downsample: Any,
    axes: list[dict[str, str]],
) -> Shapes:
    shapes = []
    level = data
    for k in range(n_levels):
        if k:
            level = downsample(level)
        array = _create_level(group, k, level.shape, level.dtype, codec, axes)
        array[...] = level
        shapes.append(tuple(int(s) for s in level.shape))
    return shapes


def _create_level(
    group: zarr.Group,
    k: int,
    shape: tuple[int, ...],
    dtype: Any,
    codec: BloscCodec,
    axes: list[dict[str, str]],
) -> zarr.Array:
    """The empty array of level ``k``: chunks of ``CHUNK`` (y, x), 1 on the leading axis."""
    chunks = (1,) * (len(shape) - 2) + tuple(min(CHUNK, s) for s in shape[-2:])
    return group.create_array(
        name=str(k),
        shape=shape,
        dtype=dtype,
        chunks=chunks,
        compressors=codec,
        fill_value=0,
        dimension_names=[a["name"] for a in axes],
    )


def _nearest(labels: np.ndarray) -> np.ndarray:
    """Every 2nd pixel along y and x (top-left of each 2x2 block): values stay label values."""
    return np.ascontiguousarray(labels[..., ::2, ::2])


def _block_mean(image: np.ndarray) -> np.ndarray:
    """2x2 block means along the last two axes, rounded for integer images.

    Odd sizes repeat the last row/column, so the result has ``ceil(n / 2)`` pixels per axis
    like :func:`_nearest`.
    """
    h, w = image.shape[-2:]
    if h % 2 or w % 2:
        pad = [(0, 0)] * (image.ndim - 2) + [(0, h % 2), (0, w % 2)]
        image = np.pad(image, pad, mode="edge")
    if np.issubdtype(image.dtype, np.floating):
        acc: type = np.float64 if image.dtype == np.float64 else np.float32
    elif image.dtype == np.uint8:
        acc = np.uint16
    elif image.dtype == np.uint16:
        acc = np.uint32
    else:
        acc = np.int64
    total: np.ndarray = image[..., 0::2, 0::2].astype(acc)
    total += image[..., 1::2, 0::2]
    total += image[..., 0::2, 1::2]
    total += image[..., 1::2, 1::2]
    if np.issubdtype(image.dtype, np.floating):
        return (total / 4).astype(image.dtype)
    total += 2  # round half up
    return (total // 4).astype(image.dtype)


def _image_codec(dtype: np.dtype) -> BloscCodec:
    if np.dtype(dtype).itemsize == 1:
        return BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")
    return BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")


def _label_codec(dtype: np.dtype) -> BloscCodec:
    return store.label_codec(dtype)


# ----------------------------------------------------------------------- metadata


def _axes(rgb: bool) -> list[dict[str, str]]:
    space = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    return ([{"name": "c", "type": "channel"}] if rgb else []) + space


def _multiscale(
    name: str,
    axes: list[dict[str, str]],
    n_levels: int,
    *,
    translate: bool,
    kind: str,
    description: str,
) -> dict[str, Any]:
    lead = [1.0] * (len(axes) - 2)
    datasets = []
    for k in range(n_levels):
        s = float(2**k)
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": [*lead, s, s]}]
        if translate and k:
            # a block mean of 2^k pixels is centred (2^k - 1) / 2 pixels in from the block corner
            t = (s - 1.0) / 2.0
            transforms.append({"type": "translation", "translation": [*[0.0] * len(lead), t, t]})
        datasets.append({"path": str(k), "coordinateTransformations": transforms})
    return {
        "name": name,
        "axes": axes,
        "datasets": datasets,
        "type": kind,
        "metadata": {"description": description, "method": f"batchseg.export.ome_zarr ({kind})"},
    }


def _value_range(image: np.ndarray) -> tuple[float, float]:
    """Display window of an image: its dtype's range, or (<= 0, >= 1) for floats."""
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        return float(info.min), float(info.max)
    low = min(0.0, float(np.nanmin(image))) if image.size else 0.0
    high = max(1.0, float(np.nanmax(image))) if image.size else 1.0
    return low, high


class _RangeTracker:
    """:func:`_value_range` of an image read window by window."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self.low, self.high = 0.0, 1.0

    def add(self, window: np.ndarray) -> None:
        if np.issubdtype(self.dtype, np.integer) or not window.size:
            return
        with warnings.catch_warnings():  # an all-NaN window says nothing, like NaN overall
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = float(np.nanmin(window)), float(np.nanmax(window))
        # min/max keep the first argument when the other is NaN
        self.low, self.high = min(self.low, low), max(self.high, high)

    def result(self) -> tuple[float, float]:
        if np.issubdtype(self.dtype, np.integer):
            info = np.iinfo(self.dtype)
            return float(info.min), float(info.max)
        return self.low, self.high


def _omero(name: str, value_range: tuple[float, float]) -> dict[str, Any]:
    low, high = value_range
    window = {"min": low, "max": high, "start": low, "end": high}
    names = [("red", "FF0000"), ("green", "00FF00"), ("blue", "0000FF")]
    channels = [
        {
            "label": label,
            "color": colour,
            "window": dict(window),
            "active": True,
            "coefficient": 1.0,
            "family": "linear",
            "inverted": False,
        }
        for label, colour in names
    ]
    return {"name": name, "channels": channels, "rdefs": {"model": "color"}}


class _LabelCounts:
    """Pixels per label value, summed over blocks (a whole label map, or its tiles).

    Values below ``_BINCOUNT_LIMIT`` are counted in one growing array (as ``np.bincount`` of
    the whole map would), larger ones per block with ``np.unique`` and merged at the end.
    """

    def __init__(self) -> None:
        self.small = np.zeros(0, dtype=np.int64)
        self.big: list[tuple[np.ndarray, np.ndarray]] = []
        self.size = 0
        self.top = -1  # largest value seen
        self.dtype: np.dtype | None = None

    @classmethod
    def of(cls, labels: np.ndarray) -> _LabelCounts:
        counts = cls()
        counts.add(labels)
        return counts

    def add(self, block: np.ndarray) -> None:
        flat = block.ravel()
        self.dtype = block.dtype
        self.size += int(flat.size)
        if not flat.size:
            return
        top = int(flat.max())
        self.top = max(self.top, top)
        if top < _BINCOUNT_LIMIT and top < max(64 * flat.size, 1 << 16):
            all_counts = np.bincount(flat)
            ids = np.flatnonzero(all_counts)
            counts = all_counts[ids]
        else:  # sparse or huge ids: sort instead of a long count array per block
            ids, counts = np.unique(flat, return_counts=True)
        small = ids < _BINCOUNT_LIMIT
        if not small.all():
            self.big.append((ids[~small], counts[~small].astype(np.int64)))
            ids, counts = ids[small], counts[small]
        if ids.size:
            need = int(ids[-1]) + 1
            if need > self.small.size:  # grow geometrically: tiles add ids in raster order
                grown = np.zeros(min(_BINCOUNT_LIMIT, max(need, 2 * self.small.size)), np.int64)
                grown[: self.small.size] = self.small
                self.small = grown
            self.small[ids] += counts

    def classes(self, n: int) -> np.ndarray:
        """Pixels of values ``0..n-1`` (``n`` above the largest value)."""
        counts = np.zeros(n, dtype=np.int64)
        used = min(n, self.small.size)
        counts[:used] = self.small[:used]
        for ids, c in self.big:
            np.add.at(counts, ids.astype(np.int64), c)
        return counts

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        """Every value present (ascending) and its pixels."""
        ids = np.flatnonzero(self.small)
        counts = self.small[ids]
        if not self.big:
            return ids, counts
        big_ids = np.concatenate([b[0] for b in self.big])
        unique, inverse = np.unique(big_ids, return_inverse=True)
        sums = np.zeros(unique.size, dtype=np.int64)
        np.add.at(sums, inverse, np.concatenate([b[1] for b in self.big]))
        return np.concatenate([ids.astype(unique.dtype), unique]), np.concatenate([counts, sums])


def _label_table(view: Any, counted: _LabelCounts) -> LabelTable:
    """``image-label`` colors and properties; also how many values are listed / exist."""
    from batchseg import render

    total_pixels = max(1, counted.size)
    if view.kind == "classes":
        names = list(view.classes or [])
        n = max(len(names), counted.top + 1 if counted.size else 0)
        names += [f"class_{i}" for i in range(len(names), n)]
        counts = counted.classes(n)
        table = render.palette(n, view.colours) if view.colours else render.palette(n)
        colors = [{"label-value": i, "rgba": [*(int(c) for c in table[i]), 255]} for i in range(n)]
        properties = [
            {
                "label-value": i,
                "class": names[i],
                "pixels": int(counts[i]),
                "fraction": float(counts[i] / total_pixels),
            }
            for i in range(n)
        ]
        return colors, properties, n, n
    ids, counts = counted.values()
    keep = ids != 0
    ids, counts = ids[keep], counts[keep]
    total = int(ids.size)
    ids, counts = ids[:REGION_LIMIT], counts[:REGION_LIMIT]
    if (
        view.colours and len(view.colours) >= 2
    ):  # an explicit table wraps around for ids beyond it, as render does
        given = render.palette(len(view.colours), view.colours)
        table = given[(ids.astype(np.int64) - 1) % (len(given) - 1) + 1]
    else:
        table = render.region_colours(ids)
    colors = [
        {"label-value": int(i), "rgba": [*(int(c) for c in rgb), 255]}
        for i, rgb in zip(ids, table, strict=True)
    ]
    properties = [
        {
            "label-value": int(i),
            "class": "region",
            "pixels": int(a),
            "fraction": float(a / total_pixels),
        }
        for i, a in zip(ids, counts, strict=True)
    ]
    return colors, properties, int(ids.size), total
