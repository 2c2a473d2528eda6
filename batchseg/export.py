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
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from batchseg.errors import BatchsegError, StoreError, UsageError

__all__ = ["LABEL_NAME", "MAX_LEVELS", "default_levels", "export_ome_zarr"]

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

    Returns a summary: ``output``, ``levels``, ``image_shapes``, ``label_shapes``.
    Raises StoreError (unknown, failed or pending image, unreadable source image, existing
    output without ``overwrite``) or UsageError (bad ``levels``).
    """
    import batchseg
    from batchseg import readers

    if levels is not None and (isinstance(levels, bool) or not 1 <= int(levels) <= LEVELS_LIMIT):
        raise UsageError(f"--levels must be between 1 and {LEVELS_LIMIT}, got {levels}")
    out = Path(output)
    view = batchseg.open(store_path)
    uri = view.uri(image_id)  # StoreError: unknown image
    _check_output(out, Path(store_path), overwrite)
    labels = view.mask(image_id)  # StoreError: failed / pending image
    try:
        image = readers.read_image(uri, max_pixels=None)
    except BatchsegError as exc:
        raise StoreError(f"cannot read the source image of {image_id!r} ({uri}): {exc}") from None
    except OSError as exc:
        raise StoreError(f"cannot read the source image of {image_id!r} ({uri}): {exc}") from None
    if image.shape[:2] != labels.shape:
        raise StoreError(
            f"the source image of {image_id!r} is {image.shape[0]}x{image.shape[1]} but its "
            f"labels are {labels.shape[0]}x{labels.shape[1]}; the file changed after the run"
        )
    n_levels = default_levels(*labels.shape) if levels is None else int(levels)
    rgb = image.ndim == 3
    pixels = np.moveaxis(image, -1, 0) if rgb else image  # channel first
    label_data = labels[None] if rgb else labels
    axes = _axes(rgb)
    colors, properties, listed, total = _label_table(view, labels)

    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        image_shapes = _write_pyramid(
            root, pixels, n_levels, _image_codec(pixels.dtype), _block_mean, axes
        )
        label_group = root.create_group("labels")
        seg = label_group.create_group(LABEL_NAME)
        label_shapes = _write_pyramid(
            seg, label_data, n_levels, _label_codec(label_data.dtype), _nearest, axes
        )
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
            ome["omero"] = _omero(image_id, image)
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
) -> list[tuple[int, ...]]:
    shapes = []
    level = data
    for k in range(n_levels):
        if k:
            level = downsample(level)
        chunks = (1,) * (level.ndim - 2) + tuple(min(CHUNK, s) for s in level.shape[-2:])
        array = group.create_array(
            name=str(k),
            shape=level.shape,
            dtype=level.dtype,
            chunks=chunks,
            compressors=codec,
            fill_value=0,
            dimension_names=[a["name"] for a in axes],
        )
        array[...] = level
        shapes.append(tuple(int(s) for s in level.shape))
    return shapes


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
    from batchseg.store import label_codec

    return label_codec(dtype)


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
        "metadata": {"description": description, "method": f"batchseg.export ({kind})"},
    }


def _omero(name: str, image: np.ndarray) -> dict[str, Any]:
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        low, high = float(info.min), float(info.max)
    else:
        low = min(0.0, float(np.nanmin(image))) if image.size else 0.0
        high = max(1.0, float(np.nanmax(image))) if image.size else 1.0
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


def _label_table(
    view: Any, labels: np.ndarray
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, int]:
    """``image-label`` colors and properties; also how many values are listed / exist."""
    from batchseg import render

    total_pixels = max(1, labels.size)
    if view.kind == "classes":
        names = list(view.classes or [])
        n = max(len(names), int(labels.max()) + 1 if labels.size else 0)
        names += [f"class_{i}" for i in range(len(names), n)]
        counts = np.bincount(labels.ravel(), minlength=n) if labels.size else np.zeros(n, int)
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
    if labels.size and int(labels.max()) < _BINCOUNT_LIMIT:
        all_counts = np.bincount(labels.ravel())
        ids = np.flatnonzero(all_counts)
        counts = all_counts[ids]
    else:
        ids, counts = np.unique(labels, return_counts=True)
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
