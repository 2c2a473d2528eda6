"""Axes read from files: ImageJ and OME-TIFF, plain multi-page TIFF, GeoTIFF bands, OME-Zarr,
plain Zarr with an axes hint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from batchseg.errors import ImageError, UsageError
from batchseg.io.axes import parse_axes_hint, tiff_layout, zarr_layout
from tests.helpers.stacks import write_ome_tiff, write_ome_zarr


def _tiff(path: Path, hint: str | None = None):  # noqa: ANN202 - a Layout
    with tifffile.TiffFile(path) as tif:
        return tiff_layout(tif, hint)


def test_ome_tiff_axes_and_channel_names(tmp_path: Path) -> None:
    arr = np.zeros((2, 3, 2, 8, 10), np.uint16)
    layout = _tiff(write_ome_tiff(tmp_path / "a.ome.tif", arr, "TZCYX", ["DAPI", "GFP"]))
    assert (layout.axes, layout.shape) == ("TZCYX", arr.shape)
    assert layout.names == ("DAPI", "GFP") and layout.is_stack
    assert layout.describe() == "TZCYX 2x3x2x8x10"


def test_imagej_hyperstack_and_plain_pages(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "ij.tif", np.zeros((3, 2, 8, 10), np.uint8), imagej=True,
                     metadata={"axes": "ZCYX"})  # fmt: skip
    layout = _tiff(tmp_path / "ij.tif")
    assert layout.axes == "ZCYX" and layout.names == ("c0", "c1")
    tifffile.imwrite(tmp_path / "pages.tif", np.zeros((5, 8, 10), np.uint8), metadata=None)
    assert _tiff(tmp_path / "pages.tif").axes == "ZYX"  # a page axis counts as z
    assert _tiff(tmp_path / "pages.tif", "TYX").axes == "TYX"  # unless the hint says otherwise


def test_rgb_is_colour_and_bands_are_channels(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((8, 10, 3), np.uint8), photometric="rgb")
    rgb = _tiff(tmp_path / "rgb.tif")
    assert rgb.rgb and rgb.channels == 1 and not rgb.is_stack
    tifffile.imwrite(
        tmp_path / "geo.tif",
        np.zeros((4, 8, 10), np.uint16),
        photometric="minisblack",
        planarconfig="separate",
        extratags=[(33550, "d", 3, (10.0, 10.0, 0.0)), (33922, "d", 6, (0, 0, 0, 5e5, 4e6, 0))],
    )
    geo = _tiff(tmp_path / "geo.tif")
    assert (geo.axes, geo.channels) == ("CYX", 4)
    assert geo.names == ("band1", "band2", "band3", "band4")
    assert geo.geo["ModelPixelScale"] == [10.0, 10.0, 0.0]


def test_ome_zarr_axes_names_and_plain_zarr_hint(tmp_path: Path) -> None:
    arr = np.zeros((3, 2, 8, 10), np.uint8)
    node = zarr.open(str(write_ome_zarr(tmp_path / "o.zarr", arr, "zcyx", ["a", "b"])), mode="r")
    array, layout = zarr_layout(node)
    assert (layout.axes, layout.names, array.shape) == ("ZCYX", ("a", "b"), arr.shape)
    plain = zarr.create_array(str(tmp_path / "p.zarr"), shape=(4, 8, 10), dtype="uint8")
    with pytest.raises(ImageError, match="--axes"):
        zarr_layout(plain)
    assert zarr_layout(plain, "TYX")[1].axes == "TYX"
    with pytest.raises(ImageError, match="do not match"):
        zarr_layout(plain, "CZYX")


@pytest.mark.parametrize("text", ["zyq", "yy", "zc", "", None])
def test_axes_hint(text: str | None) -> None:
    if not text:
        assert parse_axes_hint(text) is None
        return
    with pytest.raises(UsageError, match="--axes"):
        parse_axes_hint(text)
    assert parse_axes_hint("tczyx") == "TCZYX"
