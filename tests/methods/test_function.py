"""A Python function as a method: parameters from its signature and decorator, outputs checked
per image, identity (module, name, source hash) in the fingerprint (no cluster here)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from batchseg.errors import ImageError, UsageError
from batchseg.io.sources import ImageRef
from batchseg.job.fingerprint import describe_difference, fingerprint
from batchseg.job.provenance import method_record
from batchseg.methods import get_method
from batchseg.methods.function import function_method
from tests.helpers.user_methods import on_path, unique_name, write_package

SOURCE = '''
from typing import Literal

import numpy as np

import batchseg


def plain(image, threshold: float = 0.5, mode: Literal["mean", "max"] = "mean", passes=2):
    """Foreground above a fraction of the grey maximum."""
    grey = image.mean(axis=2) if image.ndim == 3 else image
    return (grey > threshold * grey.max()).astype(np.int32)


@batchseg.method(
    kind="classes",
    classes=["background", "cell"],
    params={"threshold": {"min": 0.0, "max": 1.0, "help": "grey level"}},
    channels=1,
)
def grey_classes(image, threshold=0.5):
    assert image.ndim == 2 and image.dtype == np.float64 and image.max() <= 1.0
    return (image > threshold).astype(np.uint8)


@batchseg.method(batched=True, batch_size=4)
def batched(images, offset: int = 0):
    return [np.full(i.shape[:2], offset, np.uint16) for i in images]


def bad(image, what: str = "float"):
    h, w = image.shape[:2]
    if what == "float":
        return np.zeros((h, w), np.float32)
    if what == "negative":
        return np.full((h, w), -1, np.int16)
    if what == "shape":
        return np.zeros((h + 1, w), np.uint8)
    if what == "list":
        return [[0] * w] * h
    return np.ones((h, w), np.uint8)


@batchseg.method(kind="classes", classes=["a", "b"])
def too_many_classes(image):
    return np.full(image.shape[:2], 2, np.uint8)


def no_default(image, sigma):
    return image


def unsupported(image, sizes: tuple = (1, 2)):
    return image
'''


@pytest.fixture
def package(tmp_path: Path):
    name = unique_name("userfn")
    with on_path(write_package(tmp_path / "site", name, {"seg": SOURCE})):
        yield name


def image(h: int = 12, w: int = 16, colour: bool = True) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (h, w, 3) if colour else (h, w), dtype=np.uint8)


def test_undecorated_function_is_a_region_method_typed_by_its_signature(package):
    m = get_method(f"{package}.seg:plain")
    assert (m.kind, m.family, m.classes({})) == ("regions", "function", None)
    assert m.description == "Foreground above a fraction of the grey maximum."
    types = {p.name: (p.type, p.default, p.choices) for p in m.params}
    assert types == {
        "threshold": (float, 0.5, None),
        "mode": (str, "mean", ("mean", "max")),
        "passes": (int, 2, None),
    }
    assert m.resolve_params({"threshold": "0.4", "passes": "3"}) == {
        "threshold": 0.4, "mode": "mean", "passes": 3,
    }  # fmt: skip
    with pytest.raises(UsageError, match="'threshold' expects float"):
        m.resolve_params({"threshold": "high"})
    with pytest.raises(UsageError, match="must be one of mean, max"):
        m.resolve_params({"mode": "min"})
    with pytest.raises(UsageError, match="has no parameter 'sigma'"):
        m.resolve_params({"sigma": "1"})
    labels = m.runner(m.resolve_params()).segment_batch([image()])[0].labels
    assert labels.shape == (12, 16) and labels.dtype == np.int32


def test_decorator_declares_classes_ranges_and_channels(package):
    m = get_method(f"{package}.seg:grey_classes")
    assert m.kind == "classes" and m.classes({}) == ["background", "cell"]
    (p,) = m.params
    assert (p.minimum, p.maximum, p.help) == (0.0, 1.0, "grey level")
    with pytest.raises(UsageError, match="must be <= 1.0"):
        m.resolve_params({"threshold": "1.5"})
    out = m.runner(m.resolve_params()).segment_batch([image(), image(colour=False)])
    assert all(o.labels.shape == (12, 16) for o in out)  # grey floats in [0, 1] both times


def test_batched_function_gets_lists(package):
    m = get_method(f"{package}.seg:batched")
    runner = m.runner(m.resolve_params({"offset": "3"}))
    assert runner.batch_size == 4
    out = runner.segment_batch([image(), image(5, 7)])
    assert [o.labels.shape for o in out] == [(12, 16), (5, 7)]
    assert all((o.labels == 3).all() for o in out)


@pytest.mark.parametrize(
    ("what", "reason"),
    [
        ("float", "returned float32 labels; labels must be integers"),
        ("negative", "returned the negative label -1"),
        ("shape", "returned labels of shape (13, 16) for an image of 12x16"),
        ("list", "returned list, not a numpy label map"),
    ],
)
def test_bad_output_fails_that_image_with_a_reason(package, what, reason):
    m = get_method(f"{package}.seg:bad")
    out = m.runner(m.resolve_params({"what": what})).segment_batch([image()])
    assert isinstance(out[0], ImageError) and reason in str(out[0])
    good = m.runner(m.resolve_params({"what": "good"})).segment_batch([image()])
    assert good[0].labels.dtype == np.uint8


def test_class_beyond_the_declared_classes_fails_the_image(package):
    m = get_method(f"{package}.seg:too_many_classes")
    (out,) = m.runner({}).segment_batch([image()])
    assert isinstance(out, ImageError) and "returned class 2, but declares 2 classes" in str(out)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no_default", "parameter 'sigma' needs a default"),
        ("unsupported", "parameter 'sizes' is annotated"),
        ("missing", "has no 'missing'"),
    ],
)
def test_unusable_function_is_one_line(package, name, message):
    with pytest.raises(UsageError, match=message) as info:
        get_method(f"{package}.seg:{name}")
    assert "\n" not in str(info.value)


def test_module_that_cannot_be_imported_is_named():
    with pytest.raises(UsageError) as info:
        get_method("no_such_pkg_xyz.seg:segment")
    text = str(info.value)
    assert "cannot import module 'no_such_pkg_xyz.seg'" in text and "PYTHONPATH" in text


def test_decorator_refuses_what_it_cannot_run():
    import batchseg

    with pytest.raises(UsageError, match="needs the class names"):
        batchseg.method(kind="classes")
    with pytest.raises(UsageError, match="kind must be one of regions, classes"):
        batchseg.method(kind="instances")
    with pytest.raises(UsageError, match="channels must be 1, 3 or None"):
        batchseg.method(channels=4)


def test_changed_function_is_another_job_named_in_the_refusal(tmp_path):
    name = unique_name("userfn")
    site = write_package(tmp_path / "site", name, {"seg": SOURCE}, version="2.5")
    refs = [ImageRef("a.png", "/x/a.png")]
    with on_path(site):
        before = function_method(f"{name}.seg:plain")
        (site / name / "seg.py").write_text(SOURCE + "\n# an edit\n")
        sys.modules.pop(f"{name}.seg")
        after = function_method(f"{name}.seg:plain")
    assert before.origin.package == name and before.origin.version == "2.5"
    assert before.origin.source_sha256 != after.origin.source_sha256
    params = before.resolve_params()
    assert fingerprint(refs, before, params) != fingerprint(refs, after, params)
    attrs = {"method": method_record(before, params)}
    assert attrs["method"]["origin"]["qualname"] == "plain"
    assert attrs["method"]["origin"]["module"] == f"{name}.seg"
    text = describe_difference(attrs, [("a.png", "/x/a.png")], refs, after, params, None)
    short = (before.origin.source_sha256 or "")[:12]
    assert text.startswith(f"function {name}.seg:plain changed (source sha256 {short} -> ")
