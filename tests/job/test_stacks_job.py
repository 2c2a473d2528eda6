"""Stack jobs end to end: planes as rows, channel selection, per-channel object intensities,
a 4-band raster, and resume refusing other stack options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from skimage.measure import regionprops_table

import batchseg
from batchseg.cluster.profiles import AddressProfile
from batchseg.errors import ImageError, StoreError
from batchseg.export.ome_zarr import export_ome_zarr
from batchseg.io.normalise import display_rgb
from batchseg.io.windowed import read_overlay_source
from batchseg.job.run import run_job
from batchseg.job.spec import JobSpec
from batchseg.methods import get_method
from batchseg.report import pictures
from tests.helpers.stacks import make_stack, write_ome_tiff, write_ome_zarr

pytestmark = pytest.mark.integration
METHOD, PARAMS = "skimage.objects", {"min_area": 5}


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    folder = tmp_path_factory.mktemp("stacks") / "in"
    folder.mkdir()
    rng = np.random.default_rng(5)
    arrays = {
        "embryo.tif": make_stack(rng, (2, 2, 2, 40, 48)),
        "cells.zarr": make_stack(rng, (1, 3, 2, 40, 48)),
    }
    write_ome_tiff(folder / "embryo.tif", arrays["embryo.tif"], "TZCYX", ["DAPI", "GFP"])
    write_ome_zarr(folder / "cells.zarr", arrays["cells.zarr"], "tzcyx", ["DAPI", "GFP"])
    return folder, arrays


def _spec(folder: Path, out: Path, address: str, **kw: object) -> JobSpec:
    return JobSpec(input=str(folder), method=METHOD, output=str(out), params=dict(PARAMS),
                   shard_size=4, profile=AddressProfile(address), **kw)  # type: ignore[arg-type]  # fmt: skip


def test_planes_channels_and_per_channel_objects(
    stacks: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, cluster_address: str
) -> None:
    folder, arrays = stacks
    out = tmp_path / "planes.zarr"
    result = run_job(_spec(folder, out, cluster_address, planes="zt", channels="1"))
    assert (result.done, result.failed) == (4 + 3, 0)
    view = batchseg.open(str(out))
    table = view.table().set_index("image_id")
    assert "embryo.tif#t=1,z=0" in table.index and "cells.zarr#t=0,z=2" in table.index
    assert table.loc["embryo.tif#t=1,z=0", ["t", "z"]].tolist() == [1, 0]
    runner = get_method(METHOD).runner(get_method(METHOD).resolve_params(PARAMS))
    objects = view.objects(columns=["*"])
    for name, arr in arrays.items():
        for t in range(arr.shape[0]):
            for z in range(arr.shape[1]):
                image_id = f"{name}#t={t},z={z}"
                labels = view.mask(image_id)
                # channel selection: the labels of segmenting the hand-sliced plane
                expected = runner.segment_batch([arr[t, z, 1]])[0].labels
                np.testing.assert_array_equal(labels, expected)
                mine = objects[objects["image_id"] == image_id].sort_values("label")
                ref = regionprops_table(labels, intensity_image=np.moveaxis(arr[t, z], 0, -1),
                                        properties=["label", "intensity_mean", "intensity_max"])  # fmt: skip
                np.testing.assert_array_equal(mine["label"], ref["label"])
                for c, key in enumerate(("dapi", "gfp")):
                    np.testing.assert_allclose(
                        mine[f"mean_intensity_{key}"], ref[f"intensity_mean-{c}"]
                    )
                    np.testing.assert_array_equal(
                        mine[f"max_intensity_{key}"], ref[f"intensity_max-{c}"]
                    )
                inside = arr[t, z, 0][labels > 0]
                assert table.loc[image_id, "integrated_intensity_dapi"] == inside.sum()
    # overlays read the plane as the job did, or another channel
    plane = "embryo.tif#t=1,z=1"
    np.testing.assert_array_equal(view.source(plane), arrays["embryo.tif"][1, 1, 1])
    shown = read_overlay_source(view.uri(plane), (40, 48), stacks=view.stack_view("0"))
    np.testing.assert_array_equal(shown, arrays["embryo.tif"][1, 1, 0])
    # the report and web app's pictures: the plane as the job read it, or another channel
    for channels, c in ((None, 1), ("0", 0)):
        drawn = pictures.picture(view, plane, "source", channels=channels)
        np.testing.assert_array_equal(drawn, display_rgb(arrays["embryo.tif"][1, 1, c]))
    with pytest.raises(ImageError, match="channel 7 is out of range"):
        pictures.picture(view, plane, "source", channels="7")
    # the OME-Zarr export keeps the plane's channels, named
    export_ome_zarr(str(out), plane, tmp_path / "plane.zarr")
    exported = zarr.open_group(str(tmp_path / "plane.zarr"), mode="r")
    assert [a["name"] for a in exported.attrs["ome"]["multiscales"][0]["axes"]] == ["c", "y", "x"]
    assert [c["label"] for c in exported.attrs["ome"]["omero"]["channels"]] == ["DAPI", "GFP"]
    np.testing.assert_array_equal(exported["0"][:], arrays["embryo.tif"][1, 1])
    with pytest.raises(StoreError, match="channels '1' -> '0'"):
        run_job(_spec(folder, out, cluster_address, planes="zt", channels="0"))


def test_four_band_raster(tmp_path: Path, cluster_address: str) -> None:
    folder = tmp_path / "tiles"
    folder.mkdir()
    rng = np.random.default_rng(9)
    bands = make_stack(rng, (4, 40, 48))
    tifffile.imwrite(folder / "tile.tif", bands, photometric="minisblack", planarconfig="separate",
                     extratags=[(33550, "d", 3, (10.0, 10.0, 0.0))])  # fmt: skip
    out = tmp_path / "raster.zarr"
    result = run_job(_spec(folder, out, cluster_address, channels="3"))
    assert (result.done, result.failed) == (1, 0)
    view = batchseg.open(str(out))
    runner = get_method(METHOD).runner(get_method(METHOD).resolve_params(PARAMS))
    np.testing.assert_array_equal(view.mask("tile.tif"), runner.segment_batch([bands[3]])[0].labels)
    assert view.attrs["geo"] == {"ModelPixelScale": [10.0, 10.0, 0.0]}
    assert view.attrs["channels"] == ["band1", "band2", "band3", "band4"]
    assert "mean_intensity_band4" in view.table().columns


def test_dry_run_reports_axes_per_bucket(
    stacks: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    from batchseg.job.dryrun import plan_job

    folder, _ = stacks
    spec = JobSpec(input=str(folder), method=METHOD, output=str(tmp_path / "d.zarr"),
                   planes="zt", channels="0")  # fmt: skip
    report = plan_job(spec)
    assert report["images"] == 7 and report["headers_read"] == 0  # sizes from the stack headers
    assert report["largest_buckets"] == [
        {
            "shape": [40, 48],
            "images": 7,
            "axes": {"TZCYX 2x2x2x40x48": 1, "TZCYX 1x3x2x40x48": 1},
        }  # fmt: skip
    ]
    assert report["channels"] == ["DAPI", "GFP"]
