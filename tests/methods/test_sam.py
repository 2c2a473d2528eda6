"""Segment Anything as a method: overlaps by score, checkpoints, a job that agrees with SAM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("segment_anything")

from batchseg.errors import UsageError  # noqa: E402
from batchseg.methods import sam, sam_models  # noqa: E402
from batchseg.methods.library_masks import paint_by_score  # noqa: E402
from batchseg.methods.registry import get_method  # noqa: E402
from tests.helpers.library_jobs import agreement, run_store  # noqa: E402
from tests.helpers.library_models import blob_images, random_sam  # noqa: E402

pytestmark = [pytest.mark.torch]
METHOD = "sam.automatic"
LOW = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0,
       "device": "cpu", "threads": 1}  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    return random_sam(tmp_path_factory.mktemp("sam") / "sam_tiny.pth", seed=0)


def _record(mask: np.ndarray, iou: float, stability: float) -> dict:
    return {"segmentation": mask, "area": int(mask.sum()), "predicted_iou": iou,
            "stability_score": stability}  # fmt: skip


def test_overlaps_go_to_the_higher_predicted_iou() -> None:
    a = np.zeros((8, 8), bool)
    a[0:4, 0:4] = True
    b = np.zeros((8, 8), bool)
    b[2:6, 2:6] = True
    hidden = np.zeros((8, 8), bool)
    hidden[3, 3] = True  # inside b, lower score: no pixel left, dropped
    small = np.zeros((8, 8), bool)
    small[7, 7] = True
    records = [_record(a, 0.6, 0.9), _record(b, 0.8, 0.7), _record(hidden, 0.1, 0.5),
               _record(small, 0.95, 0.99)]  # fmt: skip
    seg = sam.masks_segmentation(records, (8, 8), min_area=2)  # small is under min_area
    assert seg.labels[3, 3] == 1 and seg.labels[0, 0] == 2 and seg.labels.max() == 2
    np.testing.assert_allclose(seg.instances["predicted_iou"], [0.8, 0.6])
    np.testing.assert_allclose(seg.instances["stability_score"], [0.7, 0.9])
    assert list(seg.instances["mask_area"]) == [16, 16]  # whole masks, before overlaps
    assert int((seg.labels == 2).sum()) == 12
    ids, kept = paint_by_score([a, b], np.array([0.5, 0.5]), (8, 8))  # a tie: library order
    assert list(kept) == [0, 1] and ids[3, 3] == 1


def test_checkpoints_are_checked_in_the_launcher(tmp_path: Path, checkpoint: str) -> None:
    method = get_method(METHOD)
    with pytest.raises(UsageError, match="needs checkpoint=PATH"):
        method.validate(method.resolve_params({}))
    import torch

    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(UsageError, match="not a Segment Anything checkpoint"):
        method.validate(method.resolve_params({"checkpoint": str(tmp_path / "other.pth")}))
    arch = sam_models.build_sam(checkpoint)[1]
    assert (arch.embed_dim, arch.depth, arch.num_heads) == (64, 2, 2)
    assert arch.global_attn_indexes == (1,) and arch.window_size == 4 and arch.image_size == 256


@pytest.mark.integration
@pytest.mark.slow
def test_job_agrees_with_segment_anything(tmp_path: Path, cluster_address: str,
                                          checkpoint: str) -> None:  # fmt: skip
    from segment_anything import SamAutomaticMaskGenerator

    images = [np.stack([g] * 3, axis=-1) for g in blob_images(2, seed=1)]
    params = {"checkpoint": checkpoint, **LOW}
    view, names = run_store(tmp_path, images, METHOD, params, cluster_address)
    net = sam_models.build_sam(checkpoint)[0]
    generator = SamAutomaticMaskGenerator(net, points_per_side=4, pred_iou_thresh=0.0,
                                          stability_score_thresh=0.0)  # fmt: skip
    objects = view.objects()
    assert {"predicted_iou", "stability_score", "score", "mask_area"} <= set(objects.columns)
    total = 0
    for name, image in zip(names, images, strict=True):
        records = generator.generate(image)
        reference = np.zeros(image.shape[:2], np.int64)
        order = sorted(range(len(records)), key=lambda k: -records[k]["predicted_iou"])
        for rank in reversed(range(len(order))):  # highest predicted IoU painted last
            reference[records[order[rank]]["segmentation"]] = rank + 1
        stored, want, same = agreement(view.mask(name), reference)
        assert stored == want and same >= 0.995
        rows = objects[objects["image_id"] == name]
        want_iou = sorted((r["predicted_iou"] for r in records), reverse=True)[:stored]
        np.testing.assert_allclose(sorted(rows["predicted_iou"], reverse=True), want_iou, rtol=1e-5)
        total += stored
    assert total >= 2
