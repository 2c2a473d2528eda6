"""``batchseg panoptic`` on hand-built semantic and instance stores, on a real cluster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import batchseg
from batchseg.cluster.profiles import AddressProfile
from batchseg.errors import StoreError, UsageError
from batchseg.job.panoptic import PanopticSpec, run_panoptic
from tests.helpers.cli import run_cli
from tests.helpers.panoptic import scenes, write_instances, write_semantic

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("panoptic-sources")
    return write_semantic(folder / "sem.zarr"), write_instances(folder / "inst.zarr")


@pytest.fixture(scope="module")
def merged(
    sources: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory, cluster_address: str
) -> Path:
    """The merge, run by the CLI on the session cluster (one image fails: exit 3)."""
    out = tmp_path_factory.mktemp("panoptic-out") / "pan.zarr"
    sem, inst = sources
    result = run_cli(
        "panoptic", "--semantic", sem, "--instances", inst, "-o", out,
        "--min-stuff-area", 100, "--scheduler", cluster_address,
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "3 images done, 1 failed" in result.output
    return out


def _expected_a() -> np.ndarray:
    want = np.full((40, 60), 2000, np.uint32)  # road
    want[:10] = 1000  # sky, with the dropped car's 4 pixels
    want[30:35, 0:10] = 0  # semantic car without an instance
    want[30:40, 50:60] = 0  # background
    want[20:30, 10:20] = 4001
    want[12:22, 40:45] = 3001
    return want


def test_labels_stats_and_segments(merged: Path, sources: tuple[Path, Path]) -> None:
    view = batchseg.open(str(merged))
    assert view.kind == "panoptic"
    assert view.classes == ["void", "sky", "road", "person", "car"]
    attrs = view.attrs
    assert attrs["method"]["params"] == {
        "things": ["person", "car"], "overlap": 0.5, "min_stuff_area": 100,
    }  # fmt: skip
    sem_id = batchseg.open(str(sources[0])).attrs["store_id"]
    assert attrs["sources"]["semantic"] == {
        "path": str(sources[0]), "store_id": sem_id, "method": "hand.classes",
    }  # fmt: skip
    np.testing.assert_array_equal(view.mask("a.png"), _expected_a())
    b = view.mask("b.png")
    assert b.dtype == np.uint32 and (b[20:30, 0:5] == 0).all() and (b == 1000).sum() == 2350
    d = view.mask("d.png")
    assert (d[0:10, 0:10] == 4001).all() and (d[15:25, 20:30] == 4002).all()
    assert (d[0:5, 40:45] == 3001).all() and (np.unique(d) == [2000, 3001, 4001, 4002]).all()
    table = view.table().set_index("image_id")
    assert table.loc["c.png", "status"] == "failed"
    assert "not done in" in table.loc["c.png", "error"] and "boom" in table.loc["c.png", "error"]
    assert table.loc["a.png", "pixels_road"] == 1500 and table.loc["a.png", "n_car"] == 1
    assert table.loc["a.png", "fraction_void"] == 150 / 2400
    assert table.loc["d.png", "n_car"] == 2 and table.loc["d.png", "n_person"] == 1
    assert table.loc["a.png", "n_regions"] == 4
    rows = view.objects(where="image_id == 'a.png'").sort_values("label")
    assert rows["label"].tolist() == [1000, 2000, 3001, 4001]
    assert rows["class"].tolist() == ["sky", "road", "person", "car"]
    assert rows["is_thing"].tolist() == [False, False, True, True]
    assert rows["area"].tolist() == [600, 1500, 50, 100]
    assert rows["score"].tolist()[2:] == [0.8, 0.9] and rows["score"].isna().tolist()[:2] == [
        True, True,
    ]  # fmt: skip
    car = rows.iloc[3]
    assert (car.bbox_min_row, car.bbox_min_col, car.bbox_max_row, car.bbox_max_col) == (
        20, 10, 30, 20,
    )  # fmt: skip
    summary = view.summary()
    assert summary["classes"]["car"]["instances"] == 3
    assert "instances" not in summary["classes"]["road"] and summary["regions"]["total"] == 9
    assert view.verify().damaged == []


def test_instance_store_without_object_table(
    sources: tuple[Path, Path], tmp_path: Path, cluster_address: str
) -> None:
    """Classes come from the class map, order from the ids; no own area: the car is kept."""
    inst = write_instances(tmp_path / "inst.zarr", objects=False)
    spec = PanopticSpec(
        str(sources[0]), str(inst), str(tmp_path / "pan.zarr"),
        min_stuff_area=100, profile=AddressProfile(cluster_address),
    )  # fmt: skip
    result = run_panoptic(spec)
    assert (result.done, result.failed) == (3, 1)
    a = batchseg.open(str(tmp_path / "pan.zarr")).mask("a.png")
    want = _expected_a()
    want[0:2, 0:2] = 4002
    np.testing.assert_array_equal(a, want)


def test_refusals(merged: Path, sources: tuple[Path, Path], tmp_path: Path) -> None:
    sem, inst = sources
    fewer = {k: v for k, v in scenes().items() if k != "b.png"}
    other = write_instances(tmp_path / "other.zarr", fewer)
    with pytest.raises(UsageError, match=r"different images: 1 image only in .*sem.zarr \(b.png\)"):
        run_panoptic(PanopticSpec(str(sem), str(other), str(tmp_path / "x.zarr")))
    with pytest.raises(UsageError, match="--instances .* holds classes results"):
        run_panoptic(PanopticSpec(str(sem), str(sem), str(tmp_path / "x.zarr")))
    with pytest.raises(StoreError, match=r"holds another job \(overlap 0.5 -> 0.3\)"):
        run_panoptic(
            PanopticSpec(str(sem), str(inst), str(merged), overlap=0.3, min_stuff_area=100)
        )
    with pytest.raises(UsageError, match="--overwrite refuses"):
        run_panoptic(PanopticSpec(str(sem), str(inst), str(sem), overwrite=True))
    assert not (tmp_path / "x.zarr").exists()
    result = run_cli("panoptic", "--semantic", sem, "--instances", inst, "-o", "x", "--overlap", 2)
    assert result.exit_code == 2 and "--overlap must be between 0 and 1" in result.output
