"""COCO truth geometry is checked before pycocotools rasterises anything: a bad annotation
fails its image with a reason, never the process (and never allocates)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from batchseg.evaluate.coco_eval import coco_ap
from batchseg.evaluate.coco_geometry import annotation_problem
from batchseg.evaluate.coco_truth import instance_items, read_coco_truth

mask_api = pytest.importorskip("pycocotools.mask")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
CLASSES = ["__background__", "car"]
H, W = 36, 48
#: A well-formed truth object: rows 5:15, columns 10:30.
BOX = [10.0, 5.0, 30.0, 5.0, 30.0, 15.0, 10.0, 15.0]


def _rle(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


BAD: dict[str, tuple[Any, str]] = {
    "huge": ([[1e20, 0, 5, 5, 7, 9]], "far outside the image 36x48"),
    "nan": ([[float("nan"), 0, 5, 5, 7, 9]], "coordinate nan is not finite"),
    "three numbers": ([[1, 2, 3]], "at least 3 points"),
    "two points": ([[1, 2, 3, 4]], "at least 3 points"),  # pycocotools would read a bbox
    "no polygon": ([], "no polygon"),
    "text": ([["1", 2, 3, 4, 5, 6]], "is not a number"),
    "garbage counts": ({"size": [H, W], "counts": "!!garbage"}, "not a COCO compressed RLE"),
    "short counts": ({"size": [H, W], "counts": [5, 10]}, "add up to 15 pixels"),
    "negative run": ({"size": [H, W], "counts": [-5, H * W + 5]}, "negative run"),
    "huge rle": ({"size": [100000, 100000], "counts": "0"}, "RLE size 100000x100000"),
    "neither": ("polygon", "neither polygons nor RLE"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_geometry_has_a_reason(case: str) -> None:
    segmentation, reason = BAD[case]
    got = annotation_problem({"id": 7, "segmentation": segmentation}, H, W)
    assert got is not None and got.startswith("annotation 7: ") and reason in got, got


def test_good_geometry_passes() -> None:
    mask = np.zeros((H, W), np.uint8)
    mask[3:20, 4:9] = 1
    for segmentation in ([BOX], [[-2.0, -1.5, W + 0.5, 0, W, H + 1]], _rle(mask),
                         {"size": [H, W], "counts": [100, 30, H * W - 130]}):  # fmt: skip
        assert annotation_problem({"segmentation": segmentation}, H, W) is None


def _doc(path: Path, bad: Any) -> Path:
    """Image a.jpg holds one good car; b.jpg a good car and a bad annotation."""
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": H, "width": W},
                   {"id": 2, "file_name": "b.jpg", "height": H, "width": W}],
        "categories": [{"id": 3, "name": "car"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "segmentation": [BOX]},
            {"id": 2, "image_id": 2, "category_id": 3, "segmentation": [BOX]},
            {"id": 3, "image_id": 2, "category_id": 3, "segmentation": bad},
        ],
    }  # fmt: skip
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("case", ["huge", "nan", "three numbers", "garbage counts", "huge rle"])
def test_bad_annotation_fails_its_image_and_is_never_rasterised(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    segmentation, reason = BAD[case]
    truth = read_coco_truth(str(_doc(tmp_path / "t.json", segmentation)), ["a.png", "b.png"],
                            CLASSES)  # fmt: skip
    calls: list[Any] = []
    real = mask_api.frPyObjects
    monkeypatch.setattr(mask_api, "frPyObjects", lambda *a: calls.append(a[0]) or real(*a))
    items = instance_items(truth)
    assert items["a.png"].error == ""
    assert items["b.png"].error.startswith("annotation 3: ") and reason in items["b.png"].error
    assert calls == []  # the checks rasterise nothing
    # the launcher's COCOeval then sees only the images that were scored (here a.png)
    mask = np.zeros((H, W), np.uint8)
    mask[5:15, 10:30] = 1
    det = {**_rle_det(mask), "category_id": 1, "score": 0.9}
    result, rows = coco_ap(truth, {"a.png": [det]}, CLASSES)
    assert result["ap50"] == pytest.approx(1.0) and set(rows) == {"a.png"}
    assert calls and json.dumps(segmentation) not in [json.dumps(c) for c in calls]


def _rle_det(mask: np.ndarray) -> dict[str, Any]:
    rle = _rle(mask)
    return {"segmentation": rle, "area": float(mask.sum()), "iscrowd": 0,
            "bbox": [float(v) for v in mask_api.toBbox(rle)]}  # fmt: skip


def test_the_attack_pycocotools_alone() -> None:
    """Without the check pycocotools refuses a 3-number polygon with an exception that used to
    abort the whole evaluation (the 1e20 and NaN cases grow the process by GBs: not run)."""
    with pytest.raises(Exception, match="input type is not supported"):
        mask_api.frPyObjects([[1, 2, 3]], H, W)
