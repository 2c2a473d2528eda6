"""``batchseg evaluate`` of instance (COCO AP) and panoptic (PQ) stores on the session cluster."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import batchseg
from batchseg.export.coco import export_coco, export_coco_panoptic
from tests.helpers.cli import run_cli
from tests.helpers.panoptic import write_instances, write_panoptic, write_semantic

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
mask_api = pytest.importorskip("pycocotools.mask")


@pytest.fixture(scope="module")
def panoptic_store(tmp_path_factory: pytest.TempPathFactory, cluster_address: str) -> Path:
    """A store written by a real ``batchseg panoptic`` job (c.png failed)."""
    folder = tmp_path_factory.mktemp("pq")
    sem, inst = write_semantic(folder / "sem.zarr"), write_instances(folder / "inst.zarr")
    out = folder / "pan.zarr"
    result = run_cli("panoptic", "--semantic", sem, "--instances", inst, "-o", out,
                     "--min-stuff-area", 100, "--scheduler", cluster_address)  # fmt: skip
    assert result.exit_code == 3, result.output
    return out


def _panoptic_truth(folder: Path) -> Path:
    """COCO layout ``truth/pan.json`` + ``truth/pan/``: the expected merge of the scenes, with
    ``a``'s person moved (rows 12:22, cols 40:45 -> cols 25:30, on road) and named ``a.jpg``."""
    hand, merged = write_panoptic(folder / "hand.zarr")
    export = folder / "export"
    export_coco_panoptic(str(hand), None, export)
    truth = folder / "truth"
    (truth / "pan").mkdir(parents=True)
    doc = json.loads((export / "panoptic.json").read_text())
    for ann in doc["annotations"]:
        shutil.copy(export / ann["file_name"], truth / "pan" / ann["file_name"])
    a = merged["a.png"].copy()
    a[12:22, 40:45] = 2000
    a[12:22, 25:30] = 3001
    rgb = np.stack([a & 255, (a >> 8) & 255, (a >> 16) & 255], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(truth / "pan" / "a.png")
    for image in doc["images"]:
        if image["file_name"] == "a.png":
            image["file_name"] = "a.jpg"
    (truth / "pan.json").write_text(json.dumps(doc))
    return truth / "pan.json"


def test_panoptic_quality_of_a_panoptic_job(
    panoptic_store: Path, tmp_path: Path, cluster_address: str
) -> None:
    truth = _panoptic_truth(tmp_path)
    result = run_cli("evaluate", panoptic_store, "--truth", truth, "--name", "pan", "--json",
                     "--scheduler", cluster_address)  # fmt: skip
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)["pan"]
    assert got["kind"] == "panoptic" and got["images_scored"] == 3  # c.png failed in the store
    road_iou = 1450 / 1550  # a: road lost the moved person's 50 px and gained the old ones
    per_class = {  # sky a+b, road a+d, person a (FP + FN) + d, car a + d (2)
        "sky": (1.0, 1.0, 1.0, 2, 0, 0),
        "road": ((1 + road_iou) / 2, (1 + road_iou) / 2, 1.0, 2, 0, 0),
        "person": (0.5, 1.0, 0.5, 1, 1, 1),
        "car": (1.0, 1.0, 1.0, 3, 0, 0),
    }
    for name, (pq, sq, rq, tp, fp, fn) in per_class.items():
        c = got["per_class"][name]
        assert (c["tp"], c["fp"], c["fn"]) == (tp, fp, fn), name
        assert [c["pq"], c["sq"], c["rq"]] == pytest.approx([pq, sq, rq]), name
    pqs = [v[0] for v in per_class.values()]
    assert got["pq"] == pytest.approx(np.mean(pqs)) and got["n_classes"] == 4
    assert got["rq"] == pytest.approx(0.875)
    assert got["pq_things"] == pytest.approx(0.75)
    assert got["pq_stuff"] == pytest.approx((1 + (1 + road_iou) / 2) / 2)
    assert got["truth_png_folder"] == str(tmp_path / "truth" / "pan")
    table = batchseg.open(str(panoptic_store)).table().set_index("image_id")
    assert table.loc["a.png", "pan_pq"] == pytest.approx((1 + road_iou + 0 + 1) / 4)
    assert table.loc["a.png", "pan_rq"] == pytest.approx(0.75)
    assert table.loc["a.png", ["pan_tp", "pan_fp", "pan_fn"]].tolist() == [3, 1, 1]
    assert table.loc["d.png", "pan_pq"] == pytest.approx(1.0)
    assert np.isnan(table.loc["c.png", "pan_pq"])
    shown = run_cli("evaluate", panoptic_store, "--show", "--name", "pan")
    assert "pq_things" in shown.stdout and "pq: " in shown.stdout, shown.stdout
    stats = run_cli("stats", panoptic_store)
    assert f"pq {got['pq']:.4f}" in stats.stdout, stats.stdout


def test_panoptic_pngs_outside_the_folder_or_not_files_fail_alone(
    panoptic_store: Path, tmp_path: Path, cluster_address: str
) -> None:
    """A FIFO as a panoptic PNG and ``file_name`` ``../x.png`` fail their images; the rest
    are scored."""
    truth = _panoptic_truth(tmp_path)
    doc = json.loads(truth.read_text())
    names = {a["image_id"]: a for a in doc["annotations"]}
    by_name = {i["file_name"]: names[i["id"]] for i in doc["images"]}
    fifo = truth.parent / "pan" / by_name["b.png"]["file_name"]
    fifo.unlink()
    os.mkfifo(fifo)
    shutil.copy(truth.parent / "pan" / by_name["d.png"]["file_name"], tmp_path / "x.png")
    by_name["d.png"]["file_name"] = "../../x.png"
    truth.write_text(json.dumps(doc))
    result = run_cli("evaluate", panoptic_store, "--truth", truth, "--name", "bad", "--json",
                     "--scheduler", cluster_address)  # fmt: skip
    assert result.exit_code == 3, result.output
    got = json.loads(result.stdout)["bad"]
    assert got["images_scored"] == 1  # a.png; c.png failed in the store
    assert "not a regular file" in got["failed"]["b.png"]
    assert "leads outside the truth folder" in got["failed"]["d.png"]


def _instance_truth(path: Path) -> Path:
    """Hand truth for the instance scenes: ``a`` its car exactly (as a polygon) and its person
    shifted 2 columns (IoU 30/70), ``b`` a person nobody found, ``d`` its two cars."""

    def rle(r0: int, r1: int, c0: int, c1: int, shape: tuple[int, int]) -> dict:
        m = np.zeros(shape, np.uint8)
        m[r0:r1, c0:c1] = 1
        out = mask_api.encode(np.asfortranarray(m))
        return {**out, "counts": out["counts"].decode("ascii")}

    polygon = [[10, 20, 20, 20, 20, 30, 10, 30]]  # x, y: cols 10:20, rows 20:30
    anns = [
        (1, 5, polygon, 100.0), (1, 9, rle(12, 22, 42, 47, (40, 60)), 50.0),
        (2, 9, rle(5, 15, 5, 15, (40, 60)), 100.0),
        (4, 5, rle(0, 10, 0, 10, (30, 50)), 100.0), (4, 5, rle(15, 25, 20, 30, (30, 50)), 100.0),
    ]  # fmt: skip
    doc = {
        "images": [{"id": i, "file_name": f"{n}.jpg", "height": h, "width": w}
                   for i, n, h, w in ((1, "a", 40, 60), (2, "b", 40, 60), (4, "d", 30, 50))],
        "categories": [{"id": 5, "name": "CAR"}, {"id": 9, "name": "Person"}],
        "annotations": [
            {"id": k, "image_id": i, "category_id": c, "segmentation": s, "area": a,
             "iscrowd": 0, "bbox": [0, 0, 1, 1]}
            for k, (i, c, s, a) in enumerate(anns, start=1)
        ],
    }  # fmt: skip
    path.write_text(json.dumps(doc))
    return path


def test_coco_ap_of_an_instance_store_equals_cocoeval(tmp_path: Path, cluster_address: str):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    store = write_instances(tmp_path / "inst.zarr")
    truth = _instance_truth(tmp_path / "gt.json")
    result = batchseg.evaluate(store, truth=truth, name="coco", scheduler=cluster_address)
    assert result.images_scored == 3 and not result.missing and not result.failures
    assert result.exit_code == 0 and result.store == str(store) and result.name == "coco"
    got = result.metrics
    # the same detections through the COCO export and pycocotools' own loadRes
    export_coco(str(store), None, tmp_path / "pred.json")
    pred = json.loads((tmp_path / "pred.json").read_text())
    names = {img["id"]: img["file_name"] for img in pred["images"]}
    gt = COCO(str(truth))
    by_name = {img["file_name"].replace(".jpg", ".png"): i for i, img in gt.imgs.items()}
    to_cat = {2: 5, 1: 9}  # store car, person -> truth ids
    results = [{**a, "image_id": by_name[names[a["image_id"]]],
                "category_id": to_cat[a["category_id"]]} for a in pred["annotations"]]  # fmt: skip
    ev = COCOeval(gt, gt.loadRes(results), "segm")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert [got["ap"], got["ap50"], got["ap75"]] == pytest.approx(ev.stats[:3].tolist())
    assert 0 < got["ap50"] < 1
    table = batchseg.open(str(store)).table().set_index("image_id")
    cols = ["coco_n_truth", "coco_n_pred", "coco_matched50"]
    assert table.loc["a.png", cols].tolist() == [2, 3, 1]  # the shifted person is missed
    assert table.loc["b.png", cols].tolist() == [1, 0, 0]
    assert table.loc["b.png", "coco_ap"] == 0.0
    # d's person has no truth of its class: counted, but not in d's AP (COCO's rule)
    assert table.loc["d.png", cols].tolist() == [2, 3, 2]
    assert table.loc["d.png", "coco_ap"] == pytest.approx(1.0)
    stats = json.loads(run_cli("stats", store, "--json").stdout)
    assert stats["evaluations"]["coco"]["ap50"] == pytest.approx(got["ap50"])
    assert "ap50" in run_cli("evaluate", store, "--show").stdout


def test_object_stores_refuse_other_truth(tmp_path: Path) -> None:
    store = write_instances(tmp_path / "inst.zarr")
    folder = run_cli("evaluate", store, "--truth", tmp_path)
    assert folder.exit_code == 2 and "COCO JSON truth" in folder.output
    truth = _instance_truth(tmp_path / "gt.json")
    flags = run_cli("evaluate", store, "--truth", truth, "--truth-classes", "x.csv", "--ignore", 3)
    assert flags.exit_code == 2 and "--truth-classes, --ignore: not used" in flags.output
    doc = json.loads(truth.read_text())
    doc["categories"].append({"id": 11, "name": "bus"})
    truth.write_text(json.dumps(doc))
    bus = run_cli("evaluate", store, "--truth", truth)
    assert bus.exit_code == 2 and "not among the store's classes: bus" in bus.output
    assert "evaluations" not in batchseg.open(str(store)).attrs
