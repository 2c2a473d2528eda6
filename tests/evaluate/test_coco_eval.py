"""COCO AP of detections: a hand-computed case, and equality with a direct COCOeval call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from batchseg.errors import UsageError
from batchseg.evaluate.coco_eval import STATS, coco_ap
from batchseg.evaluate.coco_truth import read_coco_truth

mask_api = pytest.importorskip("pycocotools.mask")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
CLASSES = ["__background__", "person", "car"]


def _box(h: int, w: int, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[r0:r1, c0:c1] = 1
    return m


def _rle(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _det(mask: np.ndarray, cls: int, score: float) -> dict[str, Any]:
    rle = _rle(mask)
    return {"segmentation": rle, "area": float(mask.sum()), "iscrowd": 0, "category_id": cls,
            "bbox": [float(v) for v in mask_api.toBbox(rle)], "score": score}  # fmt: skip


def _truth_file(path: Path, images: dict[str, list[tuple[np.ndarray, int]]]) -> Path:
    """COCO JSON: images named ``<path>.jpg``, categories ``Car`` (id 3), ``person`` (id 7)."""
    doc: dict[str, Any] = {
        "images": [], "annotations": [],
        "categories": [{"id": 3, "name": "Car"}, {"id": 7, "name": "person"}],
    }  # fmt: skip
    for n, (name, objects) in enumerate(sorted(images.items()), start=10):
        h, w = objects[0][0].shape if objects else (100, 100)
        doc["images"].append({"id": n, "file_name": str(Path(name).with_suffix(".jpg")), "height": h,
                              "width": w})  # fmt: skip
        for mask, cat in objects:
            rle = _rle(mask)
            doc["annotations"].append({
                "id": len(doc["annotations"]) + 1, "image_id": n, "category_id": cat,
                "segmentation": rle, "area": float(mask.sum()), "iscrowd": 0,
                "bbox": [float(v) for v in mask_api.toBbox(rle)],
            })  # fmt: skip
    path.write_text(json.dumps(doc))
    return path


def test_ap50_and_ap75_by_hand(tmp_path: Path) -> None:
    a, b = _box(100, 100, 0, 10, 0, 10), _box(100, 100, 50, 60, 50, 60)
    truth = read_coco_truth(str(_truth_file(tmp_path / "gt.json", {"x.png": [(a, 3), (b, 3)]})),
                            ["x.png"], CLASSES)  # fmt: skip
    assert truth.classes == {3: 2, 7: 1} and truth.images["x.png"]["id"] == 10
    dets = [
        _det(a, 2, 0.9),  # IoU 1
        _det(_box(100, 100, 80, 90, 80, 90), 2, 0.85),  # IoU 0: false positive, ranked second
        _det(_box(100, 100, 50, 60, 53, 63), 2, 0.8),  # IoU 70 / 130 = 0.54 with b
    ]
    result, rows = coco_ap(truth, {"x.png": dets}, CLASSES)
    # IoU 0.5: TP, FP, TP -> precision 1 up to recall 0.5, then 2/3 (interpolated) at recall 1,
    # over COCO's 101 recall points: 51 at 1 and 50 at 2/3
    ap50 = (51 + 50 * 2 / 3) / 101
    # IoU >= 0.55: only the first is a TP: precision 1 up to recall 0.5, then 0
    ap75 = 51 / 101
    assert result["ap50"] == pytest.approx(ap50)
    assert result["ap75"] == pytest.approx(ap75)
    assert result["ap"] == pytest.approx((ap50 + 9 * ap75) / 10)
    assert result["per_class"]["car"]["ap50"] == pytest.approx(ap50)
    assert result["per_class"]["person"] == {"ap": None, "ap50": None, "ap75": None}
    assert result["n_truth"] == 2 and result["n_pred"] == 3
    # per image: same AP (one image), 2 truth, 3 predictions, 2 matched at IoU 0.5
    assert rows["x.png"].tolist() == pytest.approx([result["ap"], ap50, ap75, 2, 3, 2])


def test_equal_to_a_direct_cocoeval_call(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    images: dict[str, list[tuple[np.ndarray, int]]] = {}
    detections: dict[str, list[dict[str, Any]]] = {}
    for n in range(6):
        h, w = 60 + 10 * n, 80
        truth_objects, dets = [], []
        for _ in range(int(rng.integers(0, 4))):
            r, c = (int(v) for v in rng.integers(0, 40, 2))
            size = int(rng.integers(4, 30))
            mask = _box(h, w, r, r + size, c, c + size)
            cat = int(rng.choice([3, 7]))
            truth_objects.append((mask, cat))
            dr, dc = (int(v) for v in rng.integers(-4, 5, 2))  # a shifted detection
            moved = _box(h, w, max(0, r + dr), r + dr + size, max(0, c + dc), c + dc + size)
            dets.append(_det(moved, {3: 2, 7: 1}[cat], float(rng.random())))
        for _ in range(int(rng.integers(0, 3))):  # false positives
            r, c = (int(v) for v in rng.integers(0, 40, 2))
            dets.append(_det(_box(h, w, r, r + 9, c, c + 9), int(rng.integers(1, 3)),
                             float(rng.random())))  # fmt: skip
        if truth_objects:
            images[f"im{n}.png"] = truth_objects
        detections[f"im{n}.png"] = dets
    detections = {k: v for k, v in detections.items() if k in images}
    path = _truth_file(tmp_path / "gt.json", images)
    truth = read_coco_truth(str(path), sorted(images), CLASSES)
    result, rows = coco_ap(truth, detections, CLASSES)

    gt = COCO(str(path))
    to_cat = {2: 3, 1: 7}
    results = [
        {**d, "image_id": truth.images[i]["id"], "category_id": to_cat[d["category_id"]]}
        for i, ds in detections.items()
        for d in ds
    ]
    ev = COCOeval(gt, gt.loadRes(results), "segm")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    for key, want in zip(STATS, ev.stats, strict=True):
        assert result[key] == (pytest.approx(want) if want >= 0 else None), key
    assert 0 < result["ap"] < 1  # neither trivially perfect nor empty
    for image_id in images:  # per-image AP: COCOeval restricted to that image
        one = COCOeval(gt, gt.loadRes(results), "segm")
        one.params.imgIds = [truth.images[image_id]["id"]]
        one.evaluate()
        one.accumulate()
        one.summarize()
        assert rows[image_id][:3].tolist() == pytest.approx(one.stats[:3].tolist()), image_id


def test_truth_matching_and_refusals(tmp_path: Path) -> None:
    a = _box(20, 30, 0, 5, 0, 5)
    path = _truth_file(tmp_path / "gt.json", {"sub/x.png": [(a, 3)], "y.png": [(a, 7)]})
    truth = read_coco_truth(str(path), ["sub/x.tif", "x.png", "z.png"], CLASSES)
    # by relative path with any suffix: sub/x.jpg is sub/x.tif's, not x.png's
    assert sorted(truth.images) == ["sub/x.tif"] and truth.missing == ["x.png", "z.png"]
    assert truth.not_in_truth(["bg", "person", "car", "bus"]) == ["bus"]
    doc = json.loads(path.read_text())
    doc["categories"].append({"id": 9, "name": "bicycle"})
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(UsageError, match="categories not among the store's classes: bicycle"):
        read_coco_truth(str(tmp_path / "bad.json"), ["x.png"], CLASSES)
    doc["images"].append({**doc["images"][0], "id": 99, "file_name": "sub/x.png"})
    doc["categories"].pop()
    (tmp_path / "twice.json").write_text(json.dumps(doc))
    with pytest.raises(UsageError, match="two truth images for 'sub/x'"):
        read_coco_truth(str(tmp_path / "twice.json"), ["x.png"], CLASSES)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(UsageError, match="not valid JSON"):
        read_coco_truth(str(tmp_path / "broken.json"), ["x.png"], CLASSES)
