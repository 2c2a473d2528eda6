"""Object tables written by real jobs: one row per object per image, next to the label maps.

Each object table must equal ``skimage.measure.regionprops_table`` on the stored label maps;
per-image aggregates join the image table; resume, failures and refusals keep it consistent.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage.measure import regionprops_table

import batchseg
from batchseg.cluster.profiles import AddressProfile
from batchseg.errors import StoreError, UsageError
from batchseg.job.run import run_job
from batchseg.job.spec import JobSpec
from tests.helpers.cli import run_cli
from tests.helpers.images import write_collection

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("objects") / "images"
    write_collection(folder, n=10, seed=4)
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(folder / "grey" / "blank.png")
    (folder / "grey" / "broken.png").write_bytes(b"\x89PNG not really")
    return folder


@pytest.fixture(scope="module")
def objects_store(
    collection: Path, tmp_path_factory: pytest.TempPathFactory, cluster_address: str
) -> Path:
    """One skimage.objects store; tests that change it work on a copy."""
    out = tmp_path_factory.mktemp("objects-store") / "objects.zarr"
    _run(collection, out, cluster_address, "skimage.objects", params={"min_area": 5})
    return out


def _copy(store_path: Path, tmp_path: Path) -> Path:
    out = tmp_path / store_path.name
    shutil.copytree(store_path, out)
    return out


def _spec(folder: Path, out: Path, address: str, method: str, **kw: object) -> JobSpec:
    """The module's job: shards of 3 on the session cluster."""
    return JobSpec(
        input=str(folder),
        method=method,
        output=str(out),
        shard_size=3,
        profile=AddressProfile(address),
        **kw,  # type: ignore[arg-type]
    )


def _run(folder: Path, out: Path, address: str, method: str, **kw: object) -> batchseg.StoreView:
    spec = _spec(folder, out, address, method, **kw)
    result = run_job(spec)
    assert result.failed == 1 and result.done == result.images - 1  # broken.png alone
    return batchseg.open(str(out))


def _image(view: batchseg.StoreView, image_id: str) -> np.ndarray:
    return np.asarray(Image.open(view.uri(image_id)))


@pytest.mark.parametrize(
    ("method", "kw"),
    [
        ("skimage.watershed", {}),  # objects on by default
        ("skimage.objects", {"params": {"min_area": 5}}),  # threshold + components
        ("skimage.slic", {"objects": True, "params": {"n_segments": 30}}),  # off by default
    ],
)
def test_object_table_equals_regionprops_of_stored_maps(
    collection: Path,
    tmp_path: Path,
    cluster_address: str,
    request: pytest.FixtureRequest,
    method: str,
    kw: dict,
) -> None:
    if method == "skimage.objects":  # the module's store
        view = batchseg.open(str(request.getfixturevalue("objects_store")))
    else:
        view = _run(collection, tmp_path / "o.zarr", cluster_address, method, **kw)
    table = view.table().set_index("image_id")
    objects = view.objects()
    assert objects.columns[:3].tolist() == ["image_id", "label", "area"]
    done = table.index[table["status"] == "done"]
    assert set(objects["image_id"]) == {i for i in done if view.mask(i).any()}
    assert "grey/broken.png" not in set(objects["image_id"])  # failed: no rows
    seen_classes = 0
    for image_id in done:
        labels = view.mask(image_id)
        image = _image(view, image_id)
        rows = objects[objects["image_id"] == image_id].sort_values("label")
        want = regionprops_table(
            labels,
            intensity_image=image,
            properties=(
                "label", "area", "centroid", "bbox", "intensity_mean", "eccentricity",
                "solidity", "orientation", "perimeter", "equivalent_diameter_area",
                "axis_major_length", "axis_minor_length",
            ),
        )  # fmt: skip
        np.testing.assert_array_equal(rows["label"], want["label"])
        np.testing.assert_array_equal(rows["area"], want["area"])
        for ours, theirs in [
            ("centroid_row", "centroid-0"),
            ("centroid_col", "centroid-1"),
            ("bbox_min_row", "bbox-0"),
            ("bbox_min_col", "bbox-1"),
            ("bbox_max_row", "bbox-2"),
            ("bbox_max_col", "bbox-3"),
            ("eccentricity", "eccentricity"),
            ("solidity", "solidity"),
            ("perimeter", "perimeter"),
            ("equivalent_diameter", "equivalent_diameter_area"),
            ("major_axis_length", "axis_major_length"),
            ("minor_axis_length", "axis_minor_length"),
        ]:
            np.testing.assert_allclose(rows[ours], want[theirs], rtol=1e-9, atol=1e-12)
        # orientation is defined modulo pi (skimage's sign of +-pi/2 on symmetric objects)
        turn = np.abs(np.asarray(rows["orientation"]) - want["orientation"]) % np.pi
        assert np.minimum(turn, np.pi - turn).max(initial=0) < 1e-9
        if image.ndim == 3:
            for channel, name in enumerate(("mean_red", "mean_green", "mean_blue")):
                np.testing.assert_allclose(rows[name], want[f"intensity_mean-{channel}"])
            seen_classes |= 1
        else:
            np.testing.assert_allclose(rows["mean_intensity"], want["intensity_mean"])
            assert rows["mean_red"].isna().all()
            seen_classes |= 2
        row = table.loc[image_id]
        assert row["n_objects"] == len(rows) == row["n_regions"]
        if len(rows):
            assert row["object_area_median"] == np.median(rows["area"])
            assert row["object_area_mean"] == pytest.approx(rows["area"].mean())
    assert seen_classes == 3  # grey and RGB images both measured
    assert len(objects) > 2 * len(done)  # several objects per image


def test_objects_off_and_refusals(collection: Path, tmp_path: Path, cluster_address: str) -> None:
    out = tmp_path / "ws.zarr"
    view = _run(collection, out, cluster_address, "skimage.watershed", objects=False)
    assert "n_objects" not in view.columns()
    with pytest.raises(StoreError, match="no object tables.*--objects"):
        view.objects()
    # the store keeps its setting: the default (objects on) is another job, named as such
    spec = _spec(collection, out, cluster_address, "skimage.watershed")
    with pytest.raises(StoreError, match=r"object tables off -> on.*--overwrite"):
        run_job(spec)
    with pytest.raises(UsageError, match="class maps; objects are measured on region labels"):
        run_job(spec.replace(method="skimage.otsu", objects=True, output=str(tmp_path / "x")))
    assert not (tmp_path / "x").exists()


def test_rerun_rewrites_a_shard_part_the_same(
    collection: Path, tmp_path: Path, cluster_address: str, objects_store: Path
) -> None:
    out = _copy(objects_store, tmp_path)
    view = batchseg.open(str(out))
    before = view.objects().sort_values(["image_id", "label"]).reset_index(drop=True)
    # mark one done image pending (as a crash before its status write would): its shard is
    # redone, its part rewritten whole
    from batchseg import store

    root = store.open_group(str(out), mode="r+")
    row = store.find_row(root, "colour/img_000.png")
    store.mark_pending(root, [row], store.attributes(root)["shard_size"])
    spec = _spec(collection, out, cluster_address, "skimage.objects", params={"min_area": 5})
    result = run_job(spec)
    assert result.processed < result.images and result.done == result.images - 1
    after = batchseg.open(str(out)).objects().sort_values(["image_id", "label"])
    assert after.reset_index(drop=True).equals(before)


def test_objects_cli_and_highlighted_overlay(
    collection: Path, tmp_path: Path, cluster_address: str, objects_store: Path
) -> None:
    out = objects_store
    result = run_cli(
        "objects", str(out), "--where", "area > 20 and image_id == 'colour/img_000.png'",
        "--format", "csv", "--columns", "image_id,label,area",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == "image_id,label,area" and len(lines) > 1
    label = int(lines[1].split(",")[1])
    png = tmp_path / "hi.png"
    result = run_cli(
        "mask", str(out), "colour/img_000.png", "-o", str(png), "--overlay",
        "--object", str(label),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    picture = np.asarray(Image.open(png))
    magenta = (picture == (255, 0, 255)).all(axis=-1)
    labels = batchseg.open(str(out)).mask("colour/img_000.png")
    near = ndimage.binary_dilation(labels == label)  # the thick outline: 1 pixel either side
    assert magenta.any() and near[magenta].all()
    missing = run_cli(
        "mask", str(out), "colour/img_000.png", "-o", str(png), "--overlay", "--object", "999"
    )
    assert missing.exit_code == 1
    assert "object 999 is not in image 'colour/img_000.png'" in missing.output
    no_overlay = run_cli("mask", str(out), "colour/img_000.png", "-o", str(png), "--object", "1")
    assert no_overlay.exit_code == 2


def test_verify_finds_lost_and_damaged_parts_and_a_rerun_repairs_them(
    collection: Path, tmp_path: Path, cluster_address: str, objects_store: Path
) -> None:
    from batchseg.store.verify import verify

    out = _copy(objects_store, tmp_path)
    view = batchseg.open(str(out))
    before = view.objects().sort_values(["image_id", "label"]).reset_index(drop=True)
    parts = [p for p in sorted((out / "objects").glob("part-*.parquet")) if _ids(p)]
    assert len(parts) >= 3  # shards with objects (shards never mix shapes)
    hit = set(before["image_id"][before["image_id"].isin(_ids(parts[0]) | _ids(parts[1]))])
    parts[0].unlink()
    data = bytearray(parts[1].read_bytes())
    data[len(data) // 3] ^= 0x10  # one flipped bit inside a data page
    parts[1].write_bytes(bytes(data))
    report = verify(str(out))
    reasons = {reason.split(" (")[0] for _, reason in report.damaged}
    assert reasons == {"object table missing", "object table damaged"}, report.damaged
    assert hit <= {image_id for image_id, _ in report.damaged}
    assert report.marked == len(report.damaged) <= 6
    spec = _spec(collection, out, cluster_address, "skimage.objects", params={"min_area": 5})
    assert run_job(spec).done == 11
    after = batchseg.open(str(out)).objects().sort_values(["image_id", "label"])
    assert after.reset_index(drop=True).equals(before)
    assert verify(str(out)).damaged == []


def _ids(part: Path) -> set[str]:
    import pyarrow.parquet as pq

    return set(pq.read_table(part, columns=["image_id"])["image_id"].to_pylist())
