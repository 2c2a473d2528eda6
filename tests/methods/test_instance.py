"""Instance methods (torchvision Mask R-CNN): the runner's output contract, state_dicts,
weights names through a pre-filled torch hub cache, launcher checks; CPU only.

Two models: a seeded random ``maskrcnn_resnet50_fpn`` saved as a state_dict (the methods'
own architecture; its scores spread out, see ``random_maskrcnn``), and a tiny Mask R-CNN
trained for a few seconds on coloured shapes (``tests/helpers/detection_models.py``), whose
predictions vary in class and overlap, run through the same runner class.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torchvision")

import torch  # noqa: E402
from torchvision.models import get_model_weights  # noqa: E402

from batchseg.errors import ImageError, UsageError  # noqa: E402
from batchseg.methods import instance, models  # noqa: E402
from batchseg.methods.base import Segmentation  # noqa: E402
from batchseg.methods.instance_models import (  # noqa: E402
    INSTANCE_COLUMNS,
    DetectorConfig,
    InstanceRunner,
    configure,
    paint_instances,
)
from batchseg.methods.tiled import spec_for  # noqa: E402
from tests.helpers.detection_models import (  # noqa: E402
    CLASS_NAMES,
    SIZE,
    as_tensors,
    random_maskrcnn,
    synth,
    train_tiny_detector,
)

pytestmark = [pytest.mark.torch, pytest.mark.filterwarnings("ignore:.*deprecated.*")]

V1 = "torchvision.maskrcnn_resnet50_fpn"
V2 = "torchvision.maskrcnn_resnet50_fpn_v2"
#: what the random resnet50 model runs at (small, so that it runs in a second on the CPU)
SMALL = {"min_size": 64, "max_size": 96, "max_detections": 8}


def method_by_id(method_id: str):
    return next(m for m in instance.METHODS if m.id == method_id)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread here: on a shared 2-core machine two threads that wait on each
    other at every operation were many times slower than one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny():
    """The tiny detector, trained once, set to score >= 0.5 at its own size."""
    model = train_tiny_detector()
    configure(model, DetectorConfig(0.5, 100, SIZE, SIZE))
    return model


@pytest.fixture(scope="session")
def r50(tmp_path_factory):
    """(model, state_dict path): a seeded random maskrcnn_resnet50_fpn with 4 classes."""
    kwargs = {"min_size": 64, "max_size": 96, "box_detections_per_img": 8}
    model = random_maskrcnn(num_classes=4, seed=0, **kwargs)
    path = tmp_path_factory.mktemp("maskrcnn") / "maskrcnn4.pth"
    torch.save(model.state_dict(), path)
    return model, str(path)


@pytest.fixture(autouse=True)
def _fresh_cache():
    instance.clear_cache()
    yield
    instance.clear_cache()


def tiny_runner(model, **kw: Any) -> InstanceRunner:
    """A runner of ``model`` (the tiny detector, or a stand-in) at score >= 0.5, mask > 0.5."""
    loaded = models.LoadedModel(model, 3, CLASS_NAMES, models.Preprocess(), "tiny")
    args: dict[str, Any] = {"device": "cpu", "precision": "fp32", "batch_size": 3}
    args |= {"score_threshold": 0.5, "mask_threshold": 0.5, "max_detections": 100}
    return InstanceRunner(loaded, class_names=CLASS_NAMES, **(args | kw))


def reference(det: dict, score_threshold: float = 0.5, mask_threshold: float = 0.5) -> dict:
    """The documented rule, in numpy, on one image's raw torchvision output."""
    scores = det["scores"].double().numpy()
    keep = np.nonzero(scores >= score_threshold)[0]
    order = keep[np.argsort(-scores[keep], kind="stable")]
    masks = det["masks"][:, 0].numpy() > mask_threshold
    ids = np.zeros(masks.shape[1:], np.int64)
    for rank in range(len(order) - 1, -1, -1):
        ids[masks[order[rank]]] = rank + 1
    present = [k for k in range(1, len(order) + 1) if (ids == k).any()]
    lut = np.zeros(len(order) + 1, np.int64)
    lut[present] = np.arange(1, len(present) + 1)
    order = order[[k - 1 for k in present]]
    labels = det["labels"].numpy()[order]
    return {
        "labels": lut[ids],
        "classes": np.concatenate([[0], labels])[lut[ids]],
        "confidence": np.concatenate([[0], np.rint(scores[order] * 255)])[lut[ids]],
        "class_index": labels,
        "score": scores[order],
        "boxes": det["boxes"].double().numpy()[order],
    }


def check_agrees(got: Segmentation | Exception, ref: dict) -> None:
    """Same instance count, >= 99.5% of instance pixels equal, table and maps consistent."""
    assert isinstance(got, Segmentation), got
    assert got.instances is not None and got.classes is not None
    assert int(got.labels.max()) == len(ref["score"]) == len(got.instances["score"])
    union = (got.labels > 0) | (ref["labels"] > 0)
    assert union.any()
    assert (got.labels == ref["labels"])[union].mean() >= 0.995
    assert (got.classes == ref["classes"])[union].mean() >= 0.995
    assert (got.confidence == ref["confidence"])[union].mean() >= 0.995
    np.testing.assert_array_equal(got.instances["class_index"], ref["class_index"])
    np.testing.assert_allclose(got.instances["score"], ref["score"], atol=1e-5)
    box = np.stack([got.instances[c] for c in INSTANCE_COLUMNS[2:]], 1)
    np.testing.assert_allclose(box, ref["boxes"][:, [1, 0, 3, 2]], atol=1e-3)


# --------------------------------------------------------------------------- declaration


def test_registered_methods_and_declaration():
    from batchseg.methods.registry import get_method

    assert {m.id for m in instance.METHODS} == {V1, V2}
    for m in instance.METHODS:
        assert get_method(m.id) is m
        assert (m.kind, m.family) == ("instances", "instance")
        assert m.objects_default and m.uses_gpu and m.has_confidence and m.tiled is None
        assert m.runtime_params == {"batch_size", "device", "threads"}
        assert m.make_runner is not None and m.prepare is not None
        params = m.resolve_params({})
        assert params["score_threshold"] == 0.5 and params["mask_threshold"] == 0.5
        assert params["max_detections"] == 100 and params["weights"] == "DEFAULT"
        assert m.label_dtype(params, 10_000, 10_000) == np.uint8
        assert m.label_dtype({**params, "max_detections": 300}, 5, 5) == np.uint16
        with pytest.raises(UsageError, match="cannot segment images above --tile-threshold"):
            spec_for(m, params)
    m = method_by_id(V1)
    for bad in (
        {"score_threshold": 1.5},
        {"score_threshold": -0.1},
        {"mask_threshold": 2},
        {"max_detections": 0},
        {"precision": "fp8"},
        {"device": "tpu"},
    ):
        with pytest.raises(UsageError):
            m.resolve_params(bad)


def test_import_does_not_import_torch():
    code = (
        "import sys, batchseg.methods.instance as i; from batchseg.methods.base import describe;"
        " describe(i.METHODS, classes=False);"
        " assert 'torch' not in sys.modules, 'torch imported'; print(len(i.METHODS))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"


# --------------------------------------------------------------------------- output contract


def test_paint_instances_overlaps_and_empty():
    masks = torch.zeros(4, 3, 4, dtype=torch.bool)
    masks[0, 0:2, 0:2] = True  # highest score
    masks[1, 1:3, 1:3] = True  # overlaps 0: loses (1, 1)
    masks[2, 0:2, 0:2] = True  # entirely under 0: dropped
    masks[3, 2, 3] = True
    ids, visible = paint_instances(masks)
    assert visible.tolist() == [True, True, False, True]
    expected = [[1, 1, 0, 0], [1, 1, 2, 0], [0, 2, 2, 3]]
    assert ids.tolist() == expected
    ids, visible = paint_instances(torch.zeros(0, 2, 2, dtype=torch.bool))
    assert ids.tolist() == [[0, 0], [0, 0]] and visible.numel() == 0


class FixedDetector:
    """Stands in for a network: the same hand-made detections for every 6 x 8 image."""

    def __init__(self) -> None:
        masks = torch.zeros(5, 1, 6, 8)
        masks[0, 0, 0:3, 0:4] = 0.8  # A: score 0.9
        masks[1, 0, 1:4, 2:6] = 0.9  # B: score 0.95, wins the overlap with A
        masks[2, 0, 2:3, 3:5] = 0.99  # C: score 0.6, entirely under B: dropped
        masks[3, 0, 5, 0:2] = 0.5  # D: score exactly 0.5 (kept); mask 0.5 is not > 0.5
        masks[3, 0, 5, 2:4] = 0.51
        masks[4, 0, 4:6, 6:8] = 1.0  # E: score below 0.5: dropped
        self.det = {
            "boxes": torch.tensor(
                [[0, 0, 4, 3], [2, 1, 6, 4], [3, 2, 5, 3], [0, 5, 4, 6], [6, 4, 8, 6]],
                dtype=torch.float32,
            ),
            "labels": torch.tensor([2, 1, 3, 4, 1]),
            "scores": torch.tensor([0.9, 0.95, 0.6, 0.5, 0.49]),
            "masks": masks,
        }

    def __call__(self, images: list) -> list[dict]:
        assert all(im.shape == (3, 6, 8) and im.dtype == torch.float32 for im in images)
        return [dict(self.det) for _ in images]


def test_runner_output_contract():
    runner = tiny_runner(FixedDetector(), batch_size=2)
    image = np.zeros((6, 8), np.uint16)  # grey uint16: normalised, expanded to RGB
    out = runner.segment_batch([image, np.zeros((6, 8, 3), np.uint8), np.zeros((6, 8, 3))])
    for seg in out:
        assert isinstance(seg, Segmentation)
        assert seg.labels.dtype == np.uint8 and seg.classes is not None
        assert seg.classes.dtype == np.uint8 and seg.confidence is not None
        assert seg.confidence.dtype == np.uint8
        assert seg.instances is not None
        assert set(seg.instances) == {*INSTANCE_COLUMNS, "mask_area"}
        # B (0.95) is id 1, A (0.9) id 2, D (0.5) id 3; C (hidden) and E (0.49) are gone
        expected = np.zeros((6, 8), np.uint8)
        expected[0:3, 0:4] = 2
        expected[1:4, 2:6] = 1
        expected[5, 2:4] = 3
        np.testing.assert_array_equal(seg.labels, expected)
        np.testing.assert_array_equal(seg.classes, np.array([0, 1, 2, 4])[expected])
        scores32 = np.array([0.95, 0.9, 0.5], np.float32).astype(np.float64)
        conf = np.concatenate([[0], np.rint(255 * scores32)])[expected]
        np.testing.assert_array_equal(seg.confidence, conf)
        table = seg.instances
        assert table["class_index"].dtype == np.int64 and table["class_index"].tolist() == [1, 2, 4]
        for col in INSTANCE_COLUMNS[1:]:
            assert table[col].dtype == np.float64 and table[col].shape == (3,)
        np.testing.assert_array_equal(table["score"], scores32)
        assert table["box_min_row"].tolist() == [1, 0, 5]  # torchvision's y1
        assert table["box_min_col"].tolist() == [2, 0, 0]  # x1
        assert table["box_max_row"].tolist() == [4, 3, 6]  # y2
        assert table["box_max_col"].tolist() == [6, 4, 4]  # x2
        # whole masks: A keeps 8 of its 12 pixels under B, but its mask_area is 12
        assert table["mask_area"].tolist() == [12, 12, 2]
    # nothing above the threshold: empty maps and an empty table
    strict = tiny_runner(FixedDetector(), score_threshold=0.99, max_detections=1000)
    (seg,) = strict.segment_batch([image])
    assert isinstance(seg, Segmentation) and seg.labels.dtype == np.uint16
    assert not seg.labels.any() and seg.instances is not None
    assert all(len(v) == 0 for v in seg.instances.values())


# --------------------------------------------------------------------------- trained detector


def test_trained_detector_varied_and_agrees(tiny):
    imgs, _ = synth(np.random.default_rng(99), 4)
    with torch.no_grad():
        direct = tiny(as_tensors(imgs))
    out = tiny_runner(tiny).segment_batch(list(imgs))
    classes, counts = set(), []
    for got, det in zip(out, direct, strict=True):
        check_agrees(got, reference(det))
        assert isinstance(got, Segmentation) and got.instances is not None
        counts.append(int(got.labels.max()))
        classes |= set(got.instances["class_index"].tolist())
        scores = got.instances["score"]
        assert (np.diff(scores) <= 0).all() and (scores >= 0.5).all()
        for k in range(1, counts[-1] + 1):  # every id has pixels, one class per instance
            assert np.unique(got.classes[got.labels == k]).tolist() == [
                got.instances["class_index"][k - 1]
            ]
    assert sum(counts) >= 6 and classes == {1, 2}, (counts, classes)


def test_inputs_normalised_like_semantic(tiny):
    imgs, _ = synth(np.random.default_rng(7), 2)
    runner = tiny_runner(tiny)
    ref = runner.segment_batch(list(imgs))
    as16 = imgs.astype(np.uint16) * 257
    as_float = imgs.astype(np.float32) / 255
    for variant in (as16, as_float):
        for a, b in zip(runner.segment_batch(list(variant)), ref, strict=True):
            assert isinstance(a, Segmentation) and isinstance(b, Segmentation)
            assert a.labels.max() == b.labels.max()
            assert (a.labels == b.labels).mean() >= 0.995
    grey = imgs[..., 1]
    rgb = runner.segment_batch(list(np.repeat(grey[..., None], 3, axis=-1)))
    for a, b in zip(runner.segment_batch(list(grey)), rgb, strict=True):
        assert isinstance(a, Segmentation) and isinstance(b, Segmentation)
        np.testing.assert_array_equal(a.labels, b.labels)


def test_bad_image_fails_alone(tiny):
    imgs, _ = synth(np.random.default_rng(5), 3)
    runner = tiny_runner(tiny)
    ref = runner.segment_batch(list(imgs))
    out = runner.segment_batch([imgs[0], np.zeros((5,), np.uint8), imgs[1]])
    assert isinstance(out[1], ImageError)
    for a, b in ((out[0], ref[0]), (out[2], ref[1])):
        assert isinstance(a, Segmentation) and isinstance(b, Segmentation)
        np.testing.assert_array_equal(a.labels, b.labels)
    calls = []

    def flaky(batch):
        calls.append(len(batch))
        if any(bool(x[0, 0, 0] == 1.0) for x in batch):  # a saturated red top-left pixel
            raise RuntimeError("CUDA out of memory (simulated)")
        return tiny(batch)

    bad = imgs[2].copy()
    bad[0, 0] = (255, 0, 0)
    patched = tiny_runner(flaky)
    out = patched.segment_batch([imgs[0], bad, imgs[1]])
    assert isinstance(out[1], RuntimeError) and "simulated" in str(out[1])
    assert calls == [3, 1, 1, 1]
    for a, b in ((out[0], ref[0]), (out[2], ref[1])):
        assert isinstance(a, Segmentation) and isinstance(b, Segmentation)
        np.testing.assert_array_equal(a.labels, b.labels)


def test_bf16_on_cpu_runs(tiny):
    imgs, _ = synth(np.random.default_rng(99), 1)
    (got,) = tiny_runner(tiny, precision="bf16").segment_batch(list(imgs))
    assert isinstance(got, Segmentation) and got.instances is not None
    assert got.instances["score"].dtype == np.float64 and got.labels.max() >= 1


# --------------------------------------------------------------------------- resnet50 methods


def test_state_dict_agrees_with_direct_call(r50):
    model, path = r50
    imgs = np.random.default_rng(3).integers(0, 256, (2, 48, 64, 3)).astype(np.uint8)
    method = method_by_id(V1)
    params = method.resolve_params({"weights": path, "device": "cpu", "batch_size": 2, **SMALL})
    method.validate(params)  # the launcher check: loads and fits the checkpoint
    assert method.classes(params) == [f"class_{i}" for i in range(4)]
    before = sum(models.load_counts.values())
    runner = method.runner(params)
    assert method.runner(dict(params)) is runner  # cached per process
    again = method.runner({**params, "mask_threshold": 0.4})  # another runner, same network
    assert again is not runner and again.model is runner.model
    assert sum(models.load_counts.values()) - before == 1
    with torch.no_grad():
        direct = model(as_tensors(imgs))  # the same batch: same numerics
    out = runner.segment_batch(list(imgs))
    for got, det in zip(out, direct, strict=True):
        assert (det["scores"] >= 0.5).sum() >= 3  # varied enough to mean something
        check_agrees(got, reference(det))
    assert method.kernel(imgs[0], **params).dtype == np.uint8


def test_weights_name_through_prefilled_torch_home(r50, tmp_path, monkeypatch):
    """COCO_V1 (and DEFAULT) load a file put in TORCH_HOME, through torchvision, offline."""
    model, _ = r50
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    member = get_model_weights("maskrcnn_resnet50_fpn").COCO_V1
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(member.url))
    assert cached.startswith(str(tmp_path))
    os.makedirs(os.path.dirname(cached))
    state = dict(model.state_dict())
    gen = torch.Generator().manual_seed(1)
    for key in ("cls_score.weight", "bbox_pred.weight"):
        rows = 91 if key.startswith("cls") else 4 * 91
        state[f"roi_heads.box_predictor.{key}"] = torch.randn(rows, 1024, generator=gen)
    state["roi_heads.box_predictor.cls_score.bias"] = torch.zeros(91)
    state["roi_heads.box_predictor.bbox_pred.bias"] = torch.zeros(4 * 91)
    logits = "roi_heads.mask_predictor.mask_fcn_logits"
    state[f"{logits}.weight"] = torch.randn(91, 256, 1, 1, generator=gen)
    state[f"{logits}.bias"] = torch.zeros(91)
    torch.save(state, cached)

    method = method_by_id(V1)
    before = sum(models.load_counts.values())
    imgs = np.random.default_rng(4).integers(0, 256, (1, 48, 64, 3)).astype(np.uint8)
    for name in ("COCO_V1", "DEFAULT"):
        params = method.resolve_params({"weights": name, "device": "cpu", **SMALL})
        method.validate(params)
        assert method.classes(params) == list(member.meta["categories"])
        assert len(method.classes(params)) == 91
        runner = method.runner(params)
        assert not runner.model.training
        weight = runner.model.roi_heads.box_predictor.cls_score.weight
        assert torch.equal(weight, state["roi_heads.box_predictor.cls_score.weight"])
        (got,) = runner.segment_batch(list(imgs))
        assert isinstance(got, Segmentation) and got.classes is not None
        assert got.classes.dtype == np.uint8 and int(got.classes.max()) < 91
    assert sum(models.load_counts.values()) - before == 1  # DEFAULT is the same weights


def test_missing_cached_weights_is_usage_error(tmp_path, monkeypatch):
    home = tmp_path / "empty_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(models, "DOWNLOAD_TIMEOUT_S", 5.0)
    previous = socket.getdefaulttimeout()
    method = method_by_id(V2)
    member = get_model_weights("maskrcnn_resnet50_fpn_v2").DEFAULT
    expected = os.path.join(str(home), "hub", "checkpoints", os.path.basename(member.url))
    assert method.classes(method.resolve_params({}))[0] == "__background__"  # no download
    start = time.monotonic()
    try:
        with pytest.raises(UsageError) as info:
            method.validate(method.resolve_params({"device": "cpu"}))
    finally:
        socket.setdefaulttimeout(previous)
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert time.monotonic() - start < 60


def test_checkpoints_that_do_not_fit_are_usage_errors(r50, tmp_path):
    _, path = r50
    v2 = method_by_id(V2)
    params = v2.resolve_params({"weights": path, "device": "cpu"})
    assert len(v2.classes(params)) == 4  # the head is readable without building the network
    with pytest.raises(UsageError, match="does not fit maskrcnn_resnet50_fpn_v2") as info:
        v2.validate(params)  # a v1 checkpoint for the v2 network: refused in the launcher
    assert "\n" not in str(info.value)
    v1 = method_by_id(V1)
    other = tmp_path / "other.pth"
    torch.save({"classifier.4.weight": torch.zeros(3, 8, 1, 1)}, other)
    for method in (v1, v2):
        params = method.resolve_params({"weights": str(other)})
        with pytest.raises(UsageError, match="no box classifier weight"):
            method.validate(params)
        with pytest.raises(UsageError, match="no box classifier weight"):
            method.classes(params)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match="cannot read"):
        v1.validate(v1.resolve_params({"weights": str(junk)}))
    with pytest.raises(UsageError, match="does not exist"):
        v1.validate(v1.resolve_params({"weights": str(tmp_path / "nope.pth")}))
    with pytest.raises(UsageError, match="unknown weights"):
        v1.classes(v1.resolve_params({"weights": "NO_SUCH_WEIGHTS"}))
    with pytest.raises(UsageError, match="fp16"):
        v1.validate(v1.resolve_params({"weights": path, "device": "cpu", "precision": "fp16"}))


def test_classes_file(r50, tmp_path):
    _, path = r50
    method = method_by_id(V1)
    names = tmp_path / "names.txt"
    names.write_text("background\ncell\nnucleus\ndebris\n")
    params = method.resolve_params({"weights": path, "classes": str(names)})
    assert method.classes(params) == ["background", "cell", "nucleus", "debris"]
    names.write_text("background\ncell\n")
    with pytest.raises(UsageError, match="2 class names"):
        method.classes(params)
    with pytest.raises(UsageError, match="2 class names"):
        method.validate(params)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_precisions(r50):
    model, path = r50
    imgs = np.random.default_rng(3).integers(0, 256, (2, 48, 64, 3)).astype(np.uint8)
    with torch.no_grad():
        direct = model(as_tensors(imgs))
    method = method_by_id(V1)
    for precision in ("fp32", "fp16", "bf16"):
        params = {"weights": path, "device": "cuda", "precision": precision, **SMALL}
        runner = method.runner(method.resolve_params(params))
        out = runner.segment_batch(list(imgs))
        for got, det in zip(out, direct, strict=True):
            assert isinstance(got, Segmentation), got
            ref = reference(det)
            if precision == "fp32":
                assert abs(int(got.labels.max()) - len(ref["score"])) <= 1
            assert got.labels.shape == (48, 64) and got.instances is not None
