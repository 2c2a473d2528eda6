"""COCO exports read back with pycocotools (instances) and by decoding PNG ids (panoptic)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import batchseg
from batchseg.errors import UsageError
from batchseg.export.coco import export_coco, export_coco_panoptic
from tests.helpers.cli import run_cli
from tests.helpers.panoptic import scenes, write_instances, write_panoptic

coco = pytest.importorskip("pycocotools.coco")
mask_api = pytest.importorskip("pycocotools.mask")
# pycocotools' own decode trips numpy 2's __array__ copy deprecation
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def instance_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_instances(tmp_path_factory.mktemp("coco") / "inst.zarr")


def test_coco_json_masks_equal_the_stored_instances(instance_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "coco.json"
    result = run_cli("export", instance_store, "--all", "--format", "coco", "-o", out)
    assert result.exit_code == 0, result.output
    assert "3 images, 6 annotations, 2 categories" in result.output
    api = coco.COCO(str(out))
    assert {c["id"]: c["name"] for c in api.loadCats(api.getCatIds())} == {1: "person", 2: "car"}
    view = batchseg.open(str(instance_store))
    found = scenes()
    by_name = {img["file_name"]: img for img in api.loadImgs(api.getImgIds())}
    assert sorted(by_name) == ["a.png", "b.png", "d.png"]  # c.png failed: not exported
    for name, img in by_name.items():
        ids = view.mask(name)
        anns = api.loadAnns(api.getAnnIds(imgIds=[img["id"]]))
        assert (img["height"], img["width"]) == ids.shape
        assert len(anns) == len(np.unique(ids[ids > 0]))
        for k, ann in enumerate(anns, start=1):  # one annotation per id, in id order
            assert isinstance(ann["segmentation"]["counts"], str)
            np.testing.assert_array_equal(mask_api.decode(ann["segmentation"]), ids == k)
            np.testing.assert_array_equal(api.annToMask(ann), ids == k)
            assert ann["category_id"] == found[name].kinds[k - 1]
            assert ann["score"] == found[name].scores[k - 1]
            assert ann["area"] == (ids == k).sum() and ann["iscrowd"] == 0
            rows, cols = np.nonzero(ids == k)
            x, y = cols.min(), rows.min()
            assert ann["bbox"] == [x, y, cols.max() + 1 - x, rows.max() + 1 - y]


def test_coco_one_image_and_refusals(instance_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "one.json"
    assert export_coco(str(instance_store), "d.png", out)["annotations"] == 3
    with pytest.raises(UsageError, match="exists; use --overwrite"):
        export_coco(str(instance_store), "d.png", out)
    assert export_coco(str(instance_store), "a.png", out, overwrite=True)["annotations"] == 3
    bad = run_cli("export", instance_store, "d.png", "--all", "-f", "coco", "-o", out)
    assert bad.exit_code == 2 and "one IMAGE_ID or --all" in bad.output
    failed = run_cli("export", instance_store, "c.png", "-f", "coco", "-o", tmp_path / "c.json")
    assert failed.exit_code == 1 and "is failed: boom" in failed.output
    wrong = run_cli("export", instance_store, "--all", "-f", "coco-panoptic", "-o", tmp_path / "p")
    assert wrong.exit_code == 2 and "needs a store of panoptic results" in wrong.output
    assert not (tmp_path / "p").exists()


def test_coco_panoptic_pngs_decode_to_the_stored_segments(tmp_path: Path) -> None:
    store_path, merged = write_panoptic(tmp_path / "pan.zarr")
    out = tmp_path / "export"
    result = run_cli("export", store_path, "--all", "--format", "coco-panoptic", "-o", out)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "panoptic.json").read_text())
    cats = {c["id"]: c for c in doc["categories"]}
    assert [cats[i]["name"] for i in sorted(cats)] == ["sky", "road", "person", "car"]
    assert [cats[i]["isthing"] for i in sorted(cats)] == [0, 0, 1, 1]
    images = {img["id"]: img for img in doc["images"]}
    assert len(doc["annotations"]) == 4
    for ann in doc["annotations"]:
        image_id = images[ann["image_id"]]["file_name"]
        rgb = np.asarray(Image.open(out / ann["file_name"])).astype(np.uint32)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
        np.testing.assert_array_equal(ids, merged[image_id])
        info = {s["id"]: s for s in ann["segments_info"]}
        assert sorted(info) == sorted(np.unique(ids[ids > 0]).tolist())
        for seg_id, seg in info.items():
            rows, cols = np.nonzero(ids == seg_id)
            assert seg["area"] == rows.size and seg["category_id"] == seg_id // 1000
            assert seg["bbox"] == [
                cols.min(), rows.min(), cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min(),
            ]  # fmt: skip
            assert seg["iscrowd"] == 0
    a = next(a for a in doc["annotations"] if images[a["image_id"]]["file_name"] == "a.png")
    assert {s["id"]: s["area"] for s in a["segments_info"]} == {
        1000: 600, 2000: 1500, 3001: 50, 4001: 100,
    }  # fmt: skip
    again = export_coco_panoptic(str(store_path), "b.png", out, overwrite=True)
    assert again == {"images": 1, "segments": 1, "categories": 4}
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    with pytest.raises(UsageError, match="refuses to replace"):
        export_coco_panoptic(str(store_path), "b.png", tmp_path / "mine", overwrite=True)
