"""Planes and channels read from stacks: equal to slicing the whole array by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from batchseg.errors import ImageError, UsageError
from batchseg.io import planes
from batchseg.io.planes import StackReader, parse_view, plane_uri, split_plane
from tests.helpers.stacks import make_stack, write_ome_tiff, write_ome_zarr

SHAPE = (2, 3, 3, 16, 20)  # t, z, c, y, x


@pytest.fixture(scope="module")
def array() -> np.ndarray:
    return make_stack(np.random.default_rng(31), SHAPE)


@pytest.fixture(params=["ome-tiff", "imagej", "ome-zarr"])
def stack_file(request: pytest.FixtureRequest, tmp_path: Path, array: np.ndarray) -> str:
    if request.param == "ome-tiff":
        return str(write_ome_tiff(tmp_path / "s.ome.tif", array, "TZCYX", ["a", "b", "c"]))
    if request.param == "imagej":
        path = tmp_path / "s.tif"
        tifffile.imwrite(path, array, imagej=True, metadata={"axes": "TZCYX"})
        return str(path)
    return str(write_ome_zarr(tmp_path / "s.zarr", array, "tzcyx", ["a", "b", "c"]))


def test_plane_uris_round_trip(tmp_path: Path) -> None:
    assert plane_uri("/d/e.tif", 3, 12) == "/d/e.tif#t=3,z=12"
    assert split_plane("/d/e.tif#t=3,z=12") == ("/d/e.tif", 3, 12)
    assert split_plane("/d/e.tif#z=4") == ("/d/e.tif", None, 4)
    assert split_plane("/d/e.tif") == ("/d/e.tif", None, None)
    odd = tmp_path / "a.tif#z=1"  # a real file whose name looks like a plane is that file
    odd.write_bytes(b"x")
    assert split_plane(str(odd)) == (str(odd), None, None)


def test_planes_and_channels_equal_hand_slicing(stack_file: str, array: np.ndarray) -> None:
    reader = StackReader(parse_view(planes="zt", channels="1"))
    try:
        for t, z in [(0, 0), (1, 2), (0, 1)]:
            viewed = reader.read(plane_uri(stack_file, t, z), None)
            np.testing.assert_array_equal(viewed.image, array[t, z, 1])
            np.testing.assert_array_equal(viewed.channels, array[t, z])
    finally:
        reader.close()
    rgb = StackReader(parse_view(planes="zt", channels="2,1,0"))
    viewed = rgb.read(plane_uri(stack_file, 1, 1), None)
    rgb.close()
    np.testing.assert_array_equal(viewed.image, np.moveaxis(array[1, 1, ::-1], 0, -1))


def test_projection_and_channel_mean(stack_file: str, array: np.ndarray) -> None:
    reader = StackReader(parse_view(planes="t", project="max", channels="mean"))
    viewed = reader.read(plane_uri(stack_file, 1, None), None)
    reader.close()
    expected = array[1].max(axis=0).mean(axis=0)
    np.testing.assert_allclose(viewed.image, expected, rtol=1e-6)
    np.testing.assert_array_equal(viewed.channels, array[1].max(axis=0))


def test_a_file_is_opened_once_per_task(stack_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    real = planes._open_stack

    def counting(path: str, hint: str | None) -> object:
        opened.append(path)
        return real(path, hint)

    monkeypatch.setattr(planes, "_open_stack", counting)
    sniffed: list[str] = []
    real_sniff = planes._is_tiff

    def sniffing(path: str) -> bool:
        sniffed.append(path)
        return real_sniff(path)

    monkeypatch.setattr(planes, "_is_tiff", sniffing)
    reader = StackReader(parse_view(planes="zt", channels="0"))
    for t in range(2):
        for z in range(3):
            reader.read(plane_uri(stack_file, t, z), None)
    reader.close()
    assert opened == [stack_file]
    assert len(sniffed) <= 1  # the file's magic bytes are read once too


def test_bad_planes_and_channels_are_one_line(stack_file: str) -> None:
    cases = [
        (parse_view(planes="z", channels="0"), plane_uri(stack_file, None, 0), "--planes zt"),
        (parse_view(planes="zt"), plane_uri(stack_file, 0, 0), "3 channels .*--channels"),
        (parse_view(planes="zt", channels="3"), plane_uri(stack_file, 0, 0), "channel 3 is out"),
        (parse_view(planes="zt", channels="0"), plane_uri(stack_file, 0, 7), "z=7 is out"),
    ]
    for view, uri, message in cases:
        reader = StackReader(view)
        with pytest.raises(ImageError, match=message) as err:
            reader.read(uri, None)
        reader.close()
        assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"planes": "x"}, "--planes"),
        ({"channels": "1,2"}, "three"),
        ({"channels": "red"}, "--channels"),
        ({"project": "sum"}, "--project"),
        ({"planes": "z", "project": "max"}, "--planes t"),
        ({"measure_channels": "some"}, "--measure-channels"),
    ],
)
def test_bad_options_are_usage_errors(kw: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_view(**kw)
