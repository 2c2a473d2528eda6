"""``batchseg import``: a store from label images, built by the run job on the session cluster."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import batchseg
from batchseg.errors import StoreError
from tests.helpers.cli import run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four images in two folders and label maps of three of them (``b`` has two cells, ``d``
    no partner, ``c`` a partner of another size)."""
    root = tmp_path_factory.mktemp("import")
    rng = np.random.default_rng(4)
    for name in ("x/a", "x/b", "y/c", "y/d"):
        path = root / "images" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path)
    for name, cells in (("x/a", 1), ("x/b", 2), ("y/c", 1)):
        labels = np.zeros((24, 32) if name != "y/c" else (20, 32), np.uint16)
        for k in range(cells):
            labels[2 + 10 * k : 8 + 10 * k, 4:20] = 40 + k  # ids as another tool numbered them
        path = root / "labels" / f"{name}_mask.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(labels).save(path)
    return {"images": root / "images", "labels": root / "labels", "root": root}


def test_import_instances_with_objects_query_and_coco_export(
    folders: dict[str, Path], cluster_address: str
) -> None:
    out = folders["root"] / "instances.zarr"
    result = run_cli(
        "import", folders["labels"], "--images", folders["images"], "-o", out,
        "--kind", "instances", "--pattern", "{stem}_mask.png", "--scheduler", cluster_address,
    )  # fmt: skip
    assert result.exit_code == 3, result.output  # two images failed, the others are stored
    view = batchseg.open(str(out))
    status = view.status()
    errors = {f["image_id"]: f["error"] for f in status["failures"]}
    assert set(errors) == {"y/c.png", "y/d.png"}
    assert "is 20x32, the image 24x32" in errors["y/c.png"]
    assert errors["y/d.png"].startswith("no label file") and "d_mask.png" in errors["y/d.png"]
    assert view.kind == "instances" and view.classes == ["background", "object"]
    method = view.attrs["method"]
    assert method["id"] == "import.instances"
    assert method["params"] == {"labels": str(folders["labels"]), "pattern": "{stem}_mask.png"}
    objects = view.objects()
    assert sorted(objects.groupby("image_id").size().tolist()) == [1, 2]
    assert set(objects["class"]) == {"object"} and (objects["area"] == 96).all()
    found = view.query("n_regions >= 2")
    assert found["image_id"].tolist() == ["x/b.png"]
    coco = folders["root"] / "coco.json"
    exported = run_cli("export", out, "--all", "--format", "coco", "-o", coco)
    assert exported.exit_code == 0, exported.output
    assert len(json.loads(coco.read_text())["annotations"]) == 3


def test_import_resumes_and_refuses_other_labels(
    folders: dict[str, Path], cluster_address: str, tmp_path: Path
) -> None:
    out = tmp_path / "regions.zarr"
    labels = tmp_path / "labels"
    shutil.copytree(folders["labels"], labels)
    options = {"images": folders["images"], "output": out, "kind": "regions",
               "pattern": "{stem}_mask.png", "scheduler": cluster_address}  # fmt: skip
    first = batchseg.import_labels(labels, **options)
    assert (first.done, first.failed) == (2, 2)
    mask = batchseg.open(str(out)).mask("x/b.png")
    assert sorted(np.unique(mask).tolist()) == [0, 40, 41]  # the tool's own ids
    Image.fromarray(np.ones((24, 32), np.uint8)).save(labels / "y" / "d_mask.png")
    again = batchseg.import_labels(labels, **options)  # the failed images are tried again
    assert (again.processed, again.done, again.failed) == (2, 3, 1)
    np.testing.assert_array_equal(batchseg.open(str(out)).mask("x/b.png"), mask)
    assert batchseg.import_labels(labels, **{**options, "retry_failed": False}).nothing_to_do
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(StoreError, match="holds another job"):
        batchseg.import_labels(other, **options)
    listed = run_cli("methods")
    assert "import.regions" in listed.output
