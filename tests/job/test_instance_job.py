"""An instance method (Mask R-CNN) through a real job: ids, class map, objects, statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torchvision")

import batchseg  # noqa: E402
from batchseg.cluster.profiles import AddressProfile  # noqa: E402
from batchseg.job.run import run_job  # noqa: E402
from batchseg.job.spec import JobSpec  # noqa: E402
from batchseg.methods import get_method  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.torch]
METHOD = "torchvision.maskrcnn_resnet50_fpn"
SMALL = {"min_size": 64, "max_size": 96, "max_detections": 8, "device": "cpu", "batch_size": 2}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    import torch

    from tests.helpers.detection_models import random_maskrcnn

    model = random_maskrcnn(num_classes=4, seed=0, min_size=64, max_size=96)
    path = tmp_path_factory.mktemp("maskrcnn") / "maskrcnn4.pth"
    torch.save(model.state_dict(), path)
    return str(path)


def test_instance_job_stores_ids_classes_objects(tmp_path: Path, cluster_address: str,
                                                 checkpoint: str) -> None:  # fmt: skip
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(3)
    images = {}
    for i in range(4):
        image = rng.integers(0, 256, (48, 64, 3)).astype(np.uint8)
        Image.fromarray(image).save(folder / f"noise_{i}.png")
        images[f"noise_{i}.png"] = image
    params = {"weights": checkpoint, **SMALL}
    spec = JobSpec(input=str(folder), method=METHOD, output=str(tmp_path / "inst.zarr"),
                   params=params, profile=AddressProfile(cluster_address))  # fmt: skip
    assert run_job(spec).exit_code == 0
    view = batchseg.open(spec.output)
    assert view.kind == "instances" and view.classes == [f"class_{i}" for i in range(4)]
    method = get_method(METHOD)
    runner = method.runner(method.resolve_params(params))
    direct = dict(zip(images, runner.segment_batch(list(images.values())), strict=True))
    table = view.table().set_index("image_id")
    objects = view.objects()
    assert {"class", "class_index", "score", "box_min_row"} <= set(objects.columns)
    found = 0
    for image_id, want in direct.items():
        ids = view.mask(image_id)
        np.testing.assert_array_equal(ids, want.labels)  # same numerics, same instances
        np.testing.assert_array_equal(view.class_map(image_id), want.classes)
        np.testing.assert_array_equal(view.confidence(image_id), want.confidence)
        rows = objects[objects["image_id"] == image_id].sort_values("label")
        n = int(ids.max())
        found += n
        assert list(rows["label"]) == list(range(1, n + 1))
        kinds = want.instances["class_index"][:n]
        assert list(rows["class_index"]) == list(kinds)
        assert list(rows["class"]) == [f"class_{k}" for k in kinds]
        np.testing.assert_allclose(rows["score"], want.instances["score"][:n], rtol=1e-5)
        counts = np.bincount(kinds, minlength=4)
        assert [table.loc[image_id, f"n_class_{k}"] for k in range(4)] == list(counts)
        pixels = np.bincount(want.classes.ravel(), minlength=4)
        assert [table.loc[image_id, f"pixels_class_{k}"] for k in range(4)] == list(pixels)
        assert table.loc[image_id, "n_objects"] == n == table.loc[image_id, "n_regions"]
    assert found >= 4  # the seeded model detects something in these images
    summary = view.summary()
    assert summary["classes"]["class_1"]["instances"] == int(objects["class_index"].eq(1).sum())
