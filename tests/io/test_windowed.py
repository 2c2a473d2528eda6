"""Windowed reads of large images: every window equals the same slice of a whole decode."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from batchseg.errors import ImageError
from batchseg.io import chunked, sources, windowed
from batchseg.io import read as readers

WINDOWS = [(0, 1, 0, 1), (37, 301, 250, 777), (500, 640, 0, 900), (0, 640, 0, 900)]


def _grey(h: int = 640, w: int = 900) -> np.ndarray:
    return (np.random.default_rng(0).random((h, w)) * 255).astype(np.uint8)


def _check(path: str, expected: np.ndarray) -> None:
    with windowed.open_source(path) as src:
        assert src.windowed
        assert src.shape == expected.shape[:2]
        for y0, y1, x0, x1 in WINDOWS:
            got = src.read(y0, y1, x0, x1)
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected[y0:y1, x0:x1])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tile": (128, 128), "compression": "zlib"},
        {"tile": (256, 128)},
        {"rowsperstrip": 16},
        {"rowsperstrip": 64, "compression": "zlib"},
    ],
)
def test_tiff_windows_grey(tmp_path, kwargs):
    image = _grey()
    path = str(tmp_path / "g.tif")
    tifffile.imwrite(path, image, **kwargs)
    _check(path, image)
    np.testing.assert_array_equal(readers.read_image(path), image)


def test_tiff_windows_rgb_uint16_planar_and_miniswhite(tmp_path):
    rgb = (np.random.default_rng(1).random((640, 900, 3)) * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "c.tif", rgb, tile=(128, 128), photometric="rgb")
    _check(str(tmp_path / "c.tif"), readers.read_image(str(tmp_path / "c.tif")))
    planar = np.ascontiguousarray(np.moveaxis(rgb, -1, 0))
    tifffile.imwrite(
        tmp_path / "p.tif", planar, tile=(128, 128), photometric="rgb", planarconfig="separate"
    )
    _check(str(tmp_path / "p.tif"), rgb)
    grey = _grey()
    tifffile.imwrite(tmp_path / "w.tif", grey, tile=(128, 128), photometric="miniswhite")
    whole = readers.read_image(str(tmp_path / "w.tif"))
    np.testing.assert_array_equal(whole, 255 - grey)
    _check(str(tmp_path / "w.tif"), whole)


def test_single_strip_tiff_is_not_windowed(tmp_path, monkeypatch):
    monkeypatch.setattr(chunked, "MAX_SEGMENT_PIXELS", 1000)
    image = _grey(100, 200)
    path = str(tmp_path / "one.tif")
    tifffile.imwrite(path, image, rowsperstrip=100)  # one strip = 20000 pixels
    with windowed.open_source(path) as src:
        assert not src.windowed  # decoded whole, windows cut from memory
        np.testing.assert_array_equal(src.read(5, 50, 7, 70), image[5:50, 7:70])
    assert windowed.windowed_header(path) is None


def test_zarr_arrays_and_ome_zarr(tmp_path):
    image = _grey()
    rgb = np.stack([image, image[::-1], image[:, ::-1]], axis=-1)
    z = zarr.create_array(tmp_path / "g.zarr", shape=image.shape, chunks=(128, 128), dtype="u1")
    z[:] = image
    _check(str(tmp_path / "g.zarr"), image)
    z = zarr.create_array(tmp_path / "yxc.zarr", shape=rgb.shape, chunks=(128, 128, 3), dtype="u1")
    z[:] = rgb
    _check(str(tmp_path / "yxc.zarr"), rgb)
    cyx = np.ascontiguousarray(np.moveaxis(rgb, -1, 0))
    z = zarr.create_array(tmp_path / "cyx.zarr", shape=cyx.shape, chunks=(3, 128, 128), dtype="u1")
    z[:] = cyx
    _check(str(tmp_path / "cyx.zarr"), rgb)
    # OME-Zarr (NGFF 0.5): level 0 of the first multiscale, axes by name
    group = zarr.open_group(tmp_path / "ome.zarr", mode="w")
    arr = group.create_array("0", shape=(1, 3, *image.shape), chunks=(1, 3, 128, 128), dtype="u1")
    arr[:] = cyx[None]
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}]
    axes += [{"name": n, "type": "space"} for n in ("y", "x")]
    group.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [{"axes": axes, "datasets": [{"path": "0"}]}],
    }
    _check(str(tmp_path / "ome.zarr"), rgb)
    np.testing.assert_array_equal(readers.read_image(str(tmp_path / "ome.zarr")), rgb)
    assert readers.read_header(str(tmp_path / "ome.zarr")) == image.shape
    # discovered as images (folders not walked into)
    refs = sources.discover(str(tmp_path))
    assert [r.image_id for r in refs] == ["cyx.zarr", "g.zarr", "ome.zarr", "yxc.zarr"]


def test_zarr_without_axis_names_is_refused(tmp_path):
    zarr.create_array(tmp_path / "v.zarr", shape=(5, 64, 64), chunks=(5, 64, 64), dtype="u1")
    with pytest.raises(ImageError, match="no axis names"):
        readers.read_header(str(tmp_path / "v.zarr"))


def test_header_above_pixel_limit_only_when_windowed(tmp_path, monkeypatch):
    monkeypatch.setattr(chunked, "MAX_SEGMENT_PIXELS", 100_000)
    image = _grey()
    tifffile.imwrite(tmp_path / "t.tif", image, tile=(128, 128))
    tifffile.imwrite(tmp_path / "s.tif", image, rowsperstrip=640)  # one strip
    limit = 1000
    with pytest.raises(readers.PixelLimitError):
        readers.read_header(str(tmp_path / "t.tif"), limit)
    assert readers.read_header(str(tmp_path / "t.tif"), limit, windowed_above=limit) == (640, 900)
    # windowed, but not above the tiling threshold: the pixel limit stands
    with pytest.raises(readers.PixelLimitError):
        readers.read_header(str(tmp_path / "t.tif"), limit, windowed_above=10**7)
    # not windowed: a whole decode would be needed, so the limit stands
    with pytest.raises(readers.PixelLimitError):
        readers.read_header(str(tmp_path / "s.tif"), limit, windowed_above=limit)
