"""Cellpose 3 as a method: unit output, launcher checks, and a job that agrees with Cellpose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cellpose")

from batchseg.errors import UsageError  # noqa: E402
from batchseg.methods import cellpose as cp  # noqa: E402
from batchseg.methods.registry import get_method  # noqa: E402
from tests.helpers.library_jobs import agreement, run_store  # noqa: E402
from tests.helpers.library_models import blob_images, random_cellpose  # noqa: E402

pytestmark = [pytest.mark.torch]
METHOD = "cellpose.cyto3"
SMALL = {"diameter": 30, "cellprob_threshold": -0.5, "flow_threshold": 0.0, "min_size": 5,
         "tile_size": 64, "device": "cpu", "threads": 1}  # fmt: skip


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    return random_cellpose(tmp_path_factory.mktemp("cellpose") / "random_cp", seed=0)


def test_masks_become_instances_with_cell_probability_scores() -> None:
    masks = np.zeros((6, 6), np.uint16)
    masks[0:2, 0:3] = 4  # ids with a gap are renumbered in order
    masks[4:6, 4:6] = 9
    cellprob = np.zeros((6, 6), np.float32)
    cellprob[4:6, 4:6] = 2.0
    seg = cp.cell_segmentation(masks, cellprob)
    assert seg.labels.max() == 2 and set(np.unique(seg.labels)) == {0, 1, 2}
    np.testing.assert_allclose(seg.instances["score"], [0.5, 1 / (1 + np.exp(-2.0))])
    assert list(seg.instances["box_max_col"]) == [3.0, 6.0]
    assert list(seg.instances["mask_area"]) == [6, 4]
    assert seg.classes is not None and seg.classes.max() == 1
    assert seg.confidence is not None and seg.confidence[5, 5] == round(255 / (1 + np.exp(-2.0)))


def test_missing_files_and_names_are_one_line_usage_errors(tmp_path: Path, monkeypatch) -> None:
    method = get_method(METHOD)
    with pytest.raises(UsageError, match="does not exist"):
        method.validate(method.resolve_params({"model": str(tmp_path / "none.pth")}))
    with pytest.raises(UsageError, match="neither a file nor a built-in"):
        method.validate(method.resolve_params({"model": "cyto99"}))
    # a built-in name offline: one line naming the expected file and its URL
    import torch
    from cellpose import models as cp_models

    monkeypatch.setattr(cp_models, "MODEL_DIR", tmp_path / "models")

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(UsageError) as err:
        method.validate(method.resolve_params({"model": "cyto3"}))
    text = str(err.value)
    assert "\n" not in text and str(tmp_path / "models" / "cyto3") in text
    assert "https://www.cellpose.org/models/cyto3" in text
    (tmp_path / "not_a_model").write_bytes(b"junk")
    with pytest.raises(UsageError, match="cannot load Cellpose model"):
        method.validate(method.resolve_params({"model": str(tmp_path / "not_a_model")}))


@pytest.mark.integration
@pytest.mark.slow
def test_job_agrees_with_cellpose(tmp_path: Path, cluster_address: str, model_file: str) -> None:
    from cellpose import models as cp_models

    images = blob_images(3, seed=0)
    params = {"model": model_file, **SMALL}
    view, names = run_store(tmp_path, images, METHOD, params, cluster_address)
    assert view.kind == "instances" and view.classes == ["background", "cell"]
    own = cp_models.CellposeModel(gpu=False, pretrained_model=model_file)
    kwargs = cp.eval_kwargs(get_method(METHOD).resolve_params(params))
    objects = view.objects()
    total = 0
    for name, image in zip(names, images, strict=True):
        reference = own.eval(image, **kwargs)[0]
        stored, want, same = agreement(view.mask(name), reference)
        assert stored == want and same >= 0.995
        assert int((objects["image_id"] == name).sum()) == stored
        total += stored
    assert total >= 3  # the seeded model finds cells in these images
