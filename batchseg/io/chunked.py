"""Images stored in segments that can be read a rectangle at a time: TIFF and Zarr.

* TIFF / BigTIFF, tiled or stripped: tifffile's Zarr view of the first page, so a window
  decodes only the segments (tiles or strips) it touches. A segment larger than
  :data:`MAX_SEGMENT_PIXELS` (e.g. a TIFF written as one strip) cannot be read in windows.
* Zarr arrays (v2 or v3; a ``.zarr`` folder or URL), including OME-Zarr images (level 0 of
  the first multiscale).

Windows are normalised like :func:`batchseg.io.read.read_image`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import numpy as np
import tifffile

from batchseg.errors import ImageError
from batchseg.io.axes import ome_level0
from batchseg.io.formats import (
    TIFF_MAGIC,
    describe,
    is_zarr,
    native,
    open_binary,
    os_error_message,
    sniff,
    tiff_geometry,
    tiff_normalise,
    tiff_open,
    tiff_orientation,
    tiff_page,
)

#: Largest TIFF segment / Zarr chunk (pixels) that a windowed read may decode.
MAX_SEGMENT_PIXELS = 1 << 24


class TiffSource:
    def __init__(self, tif: tifffile.TiffFile) -> None:
        page = tiff_page(tif)
        self.page = page
        self.stored = tiff_geometry(page)
        orientation = tiff_orientation(page)
        if orientation != 1:
            raise ImageError(
                f"TIFF orientation {orientation} is not supported for tiled reading; "
                "rewrite the image upright or raise --tile-threshold"
            )
        self.shape = self.stored
        axes = str(page.axes)
        self.axes = axes
        try:
            self.zarr = _open_zarr_store(page.aszarr())
        except Exception as exc:  # noqa: BLE001 - unusual layouts: no windowed view
            raise ImageError(f"TIFF cannot be read in windows ({describe(exc)})") from exc
        chunks = self.zarr.chunks
        seg = chunks[axes.index("Y")] * chunks[axes.index("X")]
        self.windowed = seg <= MAX_SEGMENT_PIXELS

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        sel = tuple(
            slice(y0, y1) if ax == "Y" else slice(x0, x1) if ax == "X" else slice(None)
            for ax in self.axes
        )
        try:
            arr = np.asarray(self.zarr[sel])
        except Exception as exc:
            text = str(exc)
            if "imagecodecs" in text:
                compression = getattr(self.page.compression, "name", self.page.compression)
                raise ImageError(
                    f"unsupported TIFF compression {compression} (install imagecodecs to read it)"
                ) from exc
            raise ImageError(f"corrupt TIFF tile ({describe(exc)})") from exc
        return tiff_normalise(arr, self.page, y1 - y0, x1 - x0)


def _open_zarr_store(store: Any) -> Any:
    import zarr

    return zarr.open_array(store, mode="r")


class ZarrSource:
    def __init__(self, uri: str) -> None:
        import zarr

        try:
            node = zarr.open(uri, mode="r")
        except Exception as exc:  # noqa: BLE001 - missing, not Zarr, bad metadata
            raise ImageError(f"cannot open Zarr image ({describe(exc)})") from exc
        names: list[str] | None = None
        if isinstance(node, zarr.Group):
            node, names, _ = ome_level0(node)
        elif node.metadata.zarr_format == 3:
            dims = getattr(node.metadata, "dimension_names", None)
            names = [str(d) for d in dims] if dims and all(dims) else None
        self.array = node
        self.axes = self._axes(tuple(node.shape), names)
        shape = node.shape
        self.shape = (int(shape[self.axes.index("y")]), int(shape[self.axes.index("x")]))
        chunks = node.chunks
        seg = chunks[self.axes.index("y")] * chunks[self.axes.index("x")]
        self.windowed = seg <= MAX_SEGMENT_PIXELS

    @staticmethod
    def _axes(shape: tuple[int, ...], names: list[str] | None) -> list[str]:
        if names is not None and len(names) == len(shape):
            axes = [n.lower() for n in names]
            if "y" not in axes or "x" not in axes:
                raise ImageError(f"Zarr image axes {names} have no y and x")
        elif len(shape) == 2:
            axes = ["y", "x"]
        elif len(shape) == 3 and shape[2] in (1, 2, 3, 4):
            axes = ["y", "x", "c"]
        elif len(shape) == 3 and shape[0] in (1, 2, 3, 4):
            axes = ["c", "y", "x"]
        else:
            raise ImageError(
                f"Zarr image of shape {shape} has no axis names; want (y, x), (y, x, c) "
                "or (c, y, x)"
            )
        for ax, n in zip(axes, shape, strict=True):
            if ax not in ("y", "x", "c") and n != 1:
                what = {"z": "a z-stack", "t": "a time-lapse"}.get(ax, f"axis {ax!r} of {n}")
                raise ImageError(
                    f"Zarr image is {what} ({n} planes): segment its planes with "
                    f"--planes {ax if ax in 'zt' else 'z'} (see --axes)"
                )
        return axes

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        sel = tuple(
            slice(y0, y1) if ax == "y" else slice(x0, x1) if ax == "x" else
            (slice(None) if ax == "c" else 0)
            for ax in self.axes
        )  # fmt: skip
        try:
            arr = np.asarray(self.array[sel])
        except Exception as exc:
            raise ImageError(f"cannot read Zarr window ({describe(exc)})") from exc
        kept = [ax for ax in self.axes if ax in ("y", "x", "c")]
        order = [kept.index("y"), kept.index("x")] + ([kept.index("c")] if "c" in kept else [])
        arr = np.transpose(arr, order)
        if arr.ndim == 3:
            arr = arr[:, :, :3] if arr.shape[2] >= 3 else arr[:, :, 0]
        if arr.dtype == bool:
            return arr.astype(np.uint8) * np.uint8(255)
        if np.issubdtype(arr.dtype, np.floating):
            return arr.astype(np.float32, copy=False)
        if not np.issubdtype(arr.dtype, np.integer):
            raise ImageError(f"unsupported Zarr image dtype {arr.dtype}")
        return native(arr)


@contextmanager
def open_file(uri: str) -> Iterator[IO[bytes]]:
    """A seekable handle on ``uri`` (local file or fsspec URL), read lazily."""
    if "://" in uri:
        import fsspec

        try:
            with fsspec.open(uri, "rb") as fh:
                yield fh
        except OSError as exc:
            raise ImageError(os_error_message(exc)) from exc
        return
    with open_binary(uri) as fh:
        yield fh


def windowed_shape(uri: str) -> tuple[int, int] | None:
    """(height, width) when ``uri`` can be read in windows (no pixel limit applies), else None."""
    try:
        if is_zarr(uri):
            zsource = ZarrSource(uri)
            return zsource.shape if zsource.windowed else None
        with open_file(uri) as fh:
            if sniff(fh)[:4] not in TIFF_MAGIC:
                return None
            with tiff_open(fh) as tif:
                tsource = TiffSource(tif)
                return tsource.shape if tsource.windowed else None
    except ImageError:
        return None
