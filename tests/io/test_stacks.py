"""Stacks of a collection split into planes on the launcher; bad input refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from batchseg.errors import UsageError
from batchseg.io.planes import parse_view
from batchseg.io.sources import discover
from batchseg.io.stacks import expand_refs, refuse_first_stack
from tests.helpers.stacks import write_ome_tiff, write_ome_zarr


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_ome_tiff(tmp_path / "embryo.tif", np.zeros((2, 3, 2, 8, 10), np.uint8), "TZCYX",
                   ["DAPI", "GFP"])  # fmt: skip
    write_ome_zarr(tmp_path / "b.zarr", np.zeros((2, 3, 2, 8, 10), np.uint8), "tzcyx",
                   ["DAPI", "GFP"])  # fmt: skip
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(tmp_path / "flat.png")
    return tmp_path


def test_every_plane_is_a_row_with_its_size(folder: Path) -> None:
    got = expand_refs(discover(str(folder)), parse_view(planes="zt", channels="0"))
    ids = [r.image_id for r in got.refs]
    assert ids[:2] == ["b.zarr#t=0,z=0", "b.zarr#t=0,z=1"]
    assert "embryo.tif#t=1,z=2" in ids and "flat.png" in ids and len(ids) == 2 * 6 + 1
    plane = next(r for r in got.refs if r.image_id == "embryo.tif#t=1,z=2")
    assert plane.uri == str(folder / "embryo.tif") + "#t=1,z=2"
    assert (plane.height, plane.width) == (8, 10)
    assert got.channels == ("DAPI", "GFP")  # measured: the collection has several channels
    assert got.layouts == {"TZCYX 2x3x2x8x10": 2}


def test_projection_keeps_time_only(folder: Path) -> None:
    got = expand_refs(discover(str(folder)), parse_view(planes="t", project="max", channels="0"))
    assert [r.image_id for r in got.refs if r.image_id.startswith("embryo")] == [
        "embryo.tif#t=0",
        "embryo.tif#t=1",
    ]
    none = parse_view(planes="t", project="max", channels="0", measure_channels="none")
    assert expand_refs(discover(str(folder)), none).channels == ()


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"channels": "0"}, "b.zarr: image is a time-lapse .*--planes zt"),
        ({"planes": "zt"}, "2 channels .*--channels"),
        ({"planes": "zt", "channels": "0,1,2"}, "channel 2 is out of range"),
    ],
)
def test_bad_input_refused_before_any_cluster(
    folder: Path, kw: dict[str, str], message: str
) -> None:
    with pytest.raises(UsageError, match=message) as err:
        expand_refs(discover(str(folder)), parse_view(**kw))
    assert "\n" not in str(err.value)


def test_channels_that_disagree_between_files(folder: Path) -> None:
    write_ome_tiff(
        folder / "other.tif", np.zeros((3, 8, 10), np.uint8), "CYX", ["DAPI", "GFP", "RFP"]
    )
    with pytest.raises(UsageError, match="channels differ between files: .*RFP"):
        expand_refs(discover(str(folder)), parse_view(planes="zt", channels="0"))


def test_without_options_the_first_stack_stops_the_job(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^b.zarr: image is a time-lapse .*--planes zt$"):
        refuse_first_stack(discover(str(folder)))
    flat = tmp_path / "flat"
    flat.mkdir()
    tifffile.imwrite(flat / "a.tif", np.zeros((8, 10), np.uint8))
    tifffile.imwrite(flat / "rgb.tif", np.zeros((8, 10, 3), np.uint8), photometric="rgb")
    refuse_first_stack(discover(str(flat)))  # pictures pass
    tifffile.imwrite(
        flat / "0.tif", np.zeros((4, 8, 10), np.uint8), photometric="minisblack", metadata=None
    )
    with pytest.raises(UsageError, match="0.tif: image is a z-stack .*--planes z"):
        refuse_first_stack(discover(str(flat)))


def test_a_zarr_stack_read_as_a_picture_names_planes(folder: Path) -> None:
    from batchseg.errors import ImageError
    from batchseg.io.read import read_header

    with pytest.raises(ImageError, match="time-lapse .*--planes t"):
        read_header(str(folder / "b.zarr"))
