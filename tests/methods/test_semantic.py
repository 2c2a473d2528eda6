"""Semantic methods (torchvision builders, state_dicts, TorchScript) on the CPU.

A small LR-ASPP model is trained for a few steps on synthetic images (dark background,
red squares, green discs) so that predictions vary; comparisons against a random model
would prove nothing.
"""

from __future__ import annotations

import copy
import os
import socket
import time

import numpy as np
import pytest

pytest.importorskip("torchvision")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torchvision.models import get_model_weights  # noqa: E402
from torchvision.models.segmentation import lraspp_mobilenet_v3_large  # noqa: E402
from torchvision.transforms.functional import resize as tv_resize  # noqa: E402

from batchseg.errors import ImageError, UsageError  # noqa: E402
from batchseg.methods import models, semantic  # noqa: E402
from batchseg.methods.base import Segmentation  # noqa: E402
from tests.helpers.torch_models import synth  # noqa: E402

pytestmark = [
    pytest.mark.torch,
    pytest.mark.filterwarnings("ignore:.*deprecated.*"),
]

H, W = 64, 80
MEAN = torch.tensor(models.IMAGENET_MEAN).view(-1, 1, 1)
STD = torch.tensor(models.IMAGENET_STD).view(-1, 1, 1)
LRASPP = "torchvision.lraspp_mobilenet_v3_large"
VOC_IDS = (0, 15, 7)  # our classes 0, 1, 2 as VOC background, person, car


def normalise(imgs: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float() / 255
    return (x - MEAN) / STD


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float((np.asarray(a) == np.asarray(b)).mean())


def labels_of(results) -> np.ndarray:
    for r in results:
        assert isinstance(r, Segmentation), r
    return np.stack([r.labels for r in results])


@pytest.fixture(scope="session")
def trained(lraspp_checkpoint):
    """(model in eval mode, state_dict path): LR-ASPP, 3 classes, varied predictions."""
    return lraspp_checkpoint


@pytest.fixture(scope="session")
def held_out():
    imgs, labs = synth(np.random.default_rng(1234), 3)
    return imgs, labs


@pytest.fixture(autouse=True)
def _fresh_cache():
    semantic.clear_cache()
    yield
    semantic.clear_cache()


def direct(model, imgs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(normalise(imgs))["out"].argmax(1).numpy()


def method_by_id(method_id: str):
    return next(m for m in semantic.METHODS if m.id == method_id)


# --------------------------------------------------------------------------- registration


def test_registered_methods():
    ids = {m.id for m in semantic.METHODS}
    assert {f"torchvision.{b}" for b in models.BUILDERS} | {"torchscript"} == ids
    for m in semantic.METHODS:
        assert m.family == "semantic" and m.kind == "classes" and m.has_confidence
        assert m.make_runner is not None
    from batchseg.methods.registry import get_method

    assert all(get_method(i) is method_by_id(i) for i in ids)  # loads the registry if needed


def test_import_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, batchseg.methods.semantic as s; "
        "assert 'torch' not in sys.modules, 'torch imported'; print(len(s.METHODS))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "7"


# --------------------------------------------------------------------------- state_dict path


def test_trained_model_varies(trained, held_out):
    model, _ = trained
    imgs, labs = held_out
    pred = direct(model, imgs)
    assert len(np.unique(pred)) == 3
    assert agreement(pred, labs) > 0.8


def test_state_dict_agrees_with_direct_forward(trained, held_out):
    model, path = trained
    imgs, _ = held_out
    method = method_by_id(LRASPP)
    params = method.resolve_params({"weights": path, "device": "cpu", "batch_size": "2"})
    assert method.classes(params) == ["class_0", "class_1", "class_2"]
    runner = method.runner(params)
    assert runner.batch_size == 2
    results = runner.segment_batch(list(imgs))
    got = labels_of(results)
    assert got.dtype == np.uint8 and got.shape == (3, H, W)
    assert agreement(got, direct(model, imgs)) >= 0.995
    assert len(np.unique(got)) >= 2
    for r in results:
        assert r.confidence is not None
        assert r.confidence.dtype == np.uint8 and r.confidence.shape == (H, W)
        assert 0 < r.confidence.mean() <= 255
        assert r.confidence.min() >= 255 // 3  # max of 3 softmax probs >= 1/3
    # the kernel interface gives the same labels
    np.testing.assert_array_equal(method.segment(imgs[0], params), got[0])


def test_resize_upsamples_logits(trained, held_out):
    model, path = trained
    imgs, _ = held_out
    method = method_by_id(LRASPP)
    for spec, size in (("48,56", (48, 56)), ("96x120", (96, 120))):
        params = method.resolve_params({"weights": path, "device": "cpu", "resize": spec})
        got = labels_of(method.runner(params).segment_batch(list(imgs)))
        x = torch.from_numpy(imgs).permute(0, 3, 1, 2)
        x = tv_resize(x, list(size), antialias=True).float() / 255  # uint8 resize, as torchvision
        with torch.no_grad():
            logits = model((x - MEAN) / STD)["out"]
        ref = F.interpolate(logits, size=(H, W), mode="bilinear", align_corners=False)
        assert agreement(got, ref.argmax(1).numpy()) >= 0.995, spec
        assert len(np.unique(got)) >= 2


def test_grey_uint16_and_rgba_inputs(trained, held_out):
    _, path = trained
    imgs, _ = held_out
    grey = imgs[..., 1]
    method = method_by_id(LRASPP)
    runner = method.runner(method.resolve_params({"weights": path, "device": "cpu"}))
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    ref = labels_of(runner.segment_batch(list(rgb)))
    assert agreement(labels_of(runner.segment_batch(list(grey))), ref) == 1.0
    as16 = grey.astype(np.uint16) * 257
    assert agreement(labels_of(runner.segment_batch(list(as16))), ref) >= 0.995
    rgba = np.concatenate([imgs, np.full(imgs.shape[:-1] + (1,), 255, np.uint8)], -1)
    full = labels_of(runner.segment_batch(list(imgs)))
    assert agreement(labels_of(runner.segment_batch(list(rgba))), full) == 1.0


def test_bf16_on_cpu_runs(trained, held_out):
    model, path = trained
    imgs, _ = held_out
    method = method_by_id(LRASPP)
    params = {"weights": path, "device": "cpu", "precision": "bf16"}
    got = labels_of(method.runner(method.resolve_params(params)).segment_batch(list(imgs[:1])))
    assert agreement(got, direct(model, imgs[:1])) >= 0.9


def test_fp16_on_cpu_is_usage_error(trained):
    method = method_by_id(LRASPP)
    params = method.resolve_params({"weights": trained[1], "device": "cpu", "precision": "fp16"})
    with pytest.raises(UsageError, match="fp16"):
        method.runner(params)


def test_runner_and_model_cached_per_process(trained):
    _, path = trained
    method = method_by_id(LRASPP)
    before = sum(models.load_counts.values())
    params = method.resolve_params({"weights": path, "device": "cpu"})
    r1 = method.runner(params)
    r2 = method.runner(dict(params))
    r3 = method.runner({**params, "batch_size": 3})  # another runner, same network
    assert r1 is r2
    assert r3 is not r1 and r3.model is r1.model and r3.batch_size == 3
    assert sum(models.load_counts.values()) - before == 1
    # touching the file (new mtime) makes it a different model identity
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert method.runner(params) is not r1
    assert sum(models.load_counts.values()) - before == 2


def test_class_names_without_building_network(trained, tmp_path, monkeypatch):
    _, path = trained
    method = method_by_id(LRASPP)

    def boom(*a, **k):
        raise AssertionError("network built for class names")

    monkeypatch.setattr(models, "load_torchvision", boom)
    good = tmp_path / "classes.txt"
    good.write_text("background\nsquare\ndisc\n")
    params = method.resolve_params({"weights": path, "classes": str(good)})
    assert method.classes(params) == ["background", "square", "disc"]
    assert method.label_dtype(params, H, W) == np.uint8


def test_classes_file_mismatch_is_usage_error(trained, tmp_path):
    _, path = trained
    method = method_by_id(LRASPP)
    bad = tmp_path / "classes.txt"
    bad.write_text("a\nb\nc\nd\n")
    params = method.resolve_params({"weights": path, "classes": str(bad), "device": "cpu"})
    with pytest.raises(UsageError, match="4 class names"):
        method.classes(params)
    with pytest.raises(UsageError, match="4 class names"):
        method.runner(params)


def test_wrong_architecture_is_usage_error(trained, tmp_path):
    _, path = trained
    # an LR-ASPP checkpoint given to a DeepLabV3 builder: no classifier.4.weight
    method = method_by_id("torchvision.deeplabv3_mobilenet_v3_large")
    params = method.resolve_params({"weights": path, "device": "cpu"})
    with pytest.raises(UsageError, match="does not fit"):
        method.classes(params)
    with pytest.raises(UsageError, match="does not fit"):
        method.runner(params)
    # the head key exists but the rest does not match: strict loading fails cleanly
    odd = tmp_path / "odd.pth"
    state = dict(torch.load(path, weights_only=True))
    state["classifier.4.weight"] = torch.zeros(3, 256, 1, 1)
    torch.save(state, odd)
    params = method.resolve_params({"weights": str(odd), "device": "cpu"})
    with pytest.raises(UsageError, match="does not fit"):
        method.runner(params)
    # not a checkpoint at all
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match="cannot read"):
        method_by_id(LRASPP).runner({"weights": str(junk), "device": "cpu"})
    with pytest.raises(UsageError, match="does not exist"):
        method_by_id(LRASPP).runner({"weights": str(tmp_path / "nope.pth")})
    with pytest.raises(UsageError, match="unknown weights"):
        method_by_id(LRASPP).classes({"weights": "NO_SUCH_WEIGHTS"})


def test_state_dict_with_aux_classifier(tmp_path, held_out):
    """DeepLabV3 checkpoint with an auxiliary head: num_classes and aux_loss read from it."""
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    torch.manual_seed(1)
    net = deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=4, aux_loss=True
    ).eval()
    path = tmp_path / "dl.pt"
    torch.save(net.state_dict(), path)
    method = method_by_id("torchvision.deeplabv3_mobilenet_v3_large")
    params = method.resolve_params({"weights": str(path), "device": "cpu"})
    assert models.inspect_state_dict("deeplabv3_mobilenet_v3_large", str(path)) == (4, True)
    assert len(method.classes(params)) == 4
    imgs = held_out[0][:1, :32, :40]
    got = labels_of(method.runner(params).segment_batch(list(imgs)))
    assert agreement(got, direct(net, imgs)) >= 0.995


def test_bad_image_fails_alone(trained, held_out):
    model, path = trained
    imgs, _ = held_out
    method = method_by_id(LRASPP)
    runner = method.runner(method.resolve_params({"weights": path, "device": "cpu"}))
    ref = direct(model, imgs)
    # an image that cannot be prepared
    out = runner.segment_batch([imgs[0], np.zeros((5,), np.uint8), imgs[1]])
    assert isinstance(out[1], ImageError)
    assert agreement(labels_of([out[0], out[2]]), ref[:2]) >= 0.995
    # an image on which the network raises inside a batch: the batch is retried one by one
    calls = []

    def flaky(x):
        calls.append(x.shape[0])
        if bool((x[:, 0, 0, 0] > 2.0).any()):  # a saturated red top-left pixel
            raise RuntimeError("CUDA out of memory (simulated)")
        return model(x)

    patched = copy.copy(runner)
    patched.model = flaky
    bad = imgs[2].copy()
    bad[0, 0] = (255, 0, 0)
    out = patched.segment_batch([imgs[0], bad, imgs[1]])
    assert isinstance(out[1], RuntimeError) and "simulated" in str(out[1])
    assert agreement(labels_of([out[0], out[2]]), ref[:2]) >= 0.995
    assert calls == [3, 1, 1, 1]


# --------------------------------------------------------------------------- weights names


def _voc_checkpoint(model) -> dict:
    """The 3-class model as a 21-class VOC LR-ASPP state_dict (classes 0, 15, 7)."""
    kwargs = {"num_classes": 21}  # what the builder uses with COCO_WITH_VOC_LABELS_V1
    big = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, **kwargs)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for name in ("low_classifier", "high_classifier"):
        w = state[f"classifier.{name}.weight"]
        b = state[f"classifier.{name}.bias"]
        nw = torch.zeros((21, *w.shape[1:]))
        nb = torch.full((21,), -20.0 if name == "high_classifier" else 0.0)
        for ours, voc in enumerate(VOC_IDS):
            nw[voc] = w[ours]
            nb[voc] = b[ours]
        state[f"classifier.{name}.weight"] = nw
        state[f"classifier.{name}.bias"] = nb
    big.load_state_dict(state, strict=True)
    return big.state_dict()


def test_weights_name_through_prefilled_torch_home(trained, held_out, tmp_path, monkeypatch):
    model, _ = trained
    imgs, _ = held_out
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    enum = get_model_weights("lraspp_mobilenet_v3_large")
    member = enum.COCO_WITH_VOC_LABELS_V1
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(member.url))
    assert cached.startswith(str(tmp_path))
    os.makedirs(os.path.dirname(cached))
    torch.save(_voc_checkpoint(model), cached)

    # reference: the same file through the weights' own transforms
    ref_model = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21)
    ref_model.load_state_dict(torch.load(cached, weights_only=True))
    ref_model.eval()
    x = member.transforms()(torch.from_numpy(imgs).permute(0, 3, 1, 2))
    assert x.shape[-2] == 520  # shorter edge resized by the preset
    with torch.no_grad():
        logits = ref_model(x)["out"]
    ref = F.interpolate(logits, size=(H, W), mode="bilinear", align_corners=False).argmax(1)

    method = method_by_id(LRASPP)
    before = sum(models.load_counts.values())
    for name in ("COCO_WITH_VOC_LABELS_V1", "DEFAULT"):
        params = method.resolve_params({"weights": name, "device": "cpu", "batch_size": 3})
        assert method.classes(params) == list(member.meta["categories"])
        runner = method.runner(params)
        assert not runner.model.training
        got = labels_of(runner.segment_batch(list(imgs)))
        assert agreement(got, ref.numpy()) >= 0.995
        assert set(np.unique(got)) <= set(range(21))
    assert sum(models.load_counts.values()) - before == 1  # DEFAULT is the same weights

    # run at the original size: the classes of the small model show up
    params = method.resolve_params({"weights": "DEFAULT", "device": "cpu", "resize": "original"})
    got = labels_of(method.runner(params).segment_batch(list(imgs)))
    mapped = np.asarray(VOC_IDS)[direct(model, imgs)]
    assert agreement(got, mapped) >= 0.995
    assert len(np.unique(got)) == 3


def test_missing_cached_weights_is_usage_error(tmp_path, monkeypatch):
    home = tmp_path / "empty_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(5)
    try:
        method = method_by_id(LRASPP)
        member = get_model_weights("lraspp_mobilenet_v3_large").DEFAULT
        expected = os.path.join(str(home), "hub", "checkpoints", os.path.basename(member.url))
        # class names come from the enum's metadata, no download needed
        assert method.classes(method.resolve_params({}))[0] == "__background__"
        start = time.monotonic()
        with pytest.raises(UsageError) as info:
            method.runner(method.resolve_params({"device": "cpu"}))
        assert expected in str(info.value)
        assert "\n" not in str(info.value)
        assert time.monotonic() - start < 60
    finally:
        socket.setdefaulttimeout(previous)


# --------------------------------------------------------------------------- TorchScript


class _Logits(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


class _AsDict(torch.nn.Module):
    """A scripted module returning ``{"out": logits}`` around a traced one (scripting the
    whole LR-ASPP compiles every layer: ~20 s on 2 cores, for the same loader path)."""

    def __init__(self, traced):
        super().__init__()
        self.traced = traced

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.traced(x)}


def test_torchscript_traced_and_scripted(trained, held_out, tmp_path):
    model, _ = trained
    imgs, _ = held_out
    ref = direct(model, imgs)
    example = normalise(imgs[:1])  # check_trace re-runs and compares the graph: ~10 s here
    traced = torch.jit.trace(_Logits(copy.deepcopy(model)).eval(), example, check_trace=False)
    scripted = torch.jit.script(_AsDict(traced).eval())  # returns {"out": ...}
    method = method_by_id("torchscript")
    classes = tmp_path / "names.txt"
    classes.write_text("bg\nred\ngreen\n")
    for kind, module in (("traced", traced), ("scripted", scripted)):
        path = tmp_path / f"{kind}.pt"
        module.save(str(path))
        params = method.resolve_params({"model": str(path), "device": "cpu"})
        assert method.classes(params) == ["class_0", "class_1", "class_2"]
        got = labels_of(method.runner(params).segment_batch(list(imgs)))
        assert agreement(got, ref) >= 0.995, kind
        assert len(np.unique(got)) >= 2
        named = method.resolve_params({"model": str(path), "classes": str(classes)})
        assert method.classes(named) == ["bg", "red", "green"]
    bad = tmp_path / "two.txt"
    bad.write_text("a\nb\n")
    params = method.resolve_params(
        {"model": str(tmp_path / "traced.pt"), "classes": str(bad), "device": "cpu"}
    )
    with pytest.raises(UsageError, match="2 class names"):
        method.runner(params)
    with pytest.raises(UsageError, match="model=PATH"):
        method.runner(method.resolve_params({}))
    assert method.classes(method.resolve_params({})) == []  # listings use the defaults


def test_torchscript_many_classes_uint16(tmp_path):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 300, 1)
    path = tmp_path / "wide.pt"
    torch.jit.script(conv).save(str(path))
    method = method_by_id("torchscript")
    params = method.resolve_params({"model": str(path), "device": "cpu"})
    assert len(method.classes(params)) == 300
    assert method.label_dtype(params, H, W) == np.uint16
    img = np.random.default_rng(0).integers(0, 255, (16, 20, 3)).astype(np.uint8)
    (res,) = method.runner(params).segment_batch([img])
    with torch.no_grad():
        ref = conv(normalise(img[None])).argmax(1)[0].numpy()
    assert res.labels.dtype == np.uint16
    np.testing.assert_array_equal(res.labels, ref)
    assert res.labels.max() > 255


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_precisions(trained, held_out):
    model, path = trained
    imgs, _ = held_out
    ref = direct(model, imgs)
    method = method_by_id(LRASPP)
    for precision, need in (("fp32", 0.995), ("fp16", 0.98), ("bf16", 0.95)):
        params = method.resolve_params({"weights": path, "device": "cuda", "precision": precision})
        runner = method.runner(params)
        assert runner.channels_last
        got = labels_of(runner.segment_batch(list(imgs)))
        assert agreement(got, ref) >= need, precision


def test_parse_resize():
    assert semantic.parse_resize("") is None
    assert semantic.parse_resize("original") == "original"
    assert semantic.parse_resize("32,48") == (32, 48)
    assert semantic.parse_resize("32x48") == (32, 48)
    assert semantic.parse_resize(" 32 X 48 ") == (32, 48)
    assert semantic.parse_resize("100") == (100,)
    for bad in ("a,b", "0,5", "1,2,3"):
        with pytest.raises(UsageError):
            semantic.parse_resize(bad)
