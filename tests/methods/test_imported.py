"""Imported label maps as methods (``import.*``): partner files, values, per-image failures."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from batchseg.errors import ImageError, UsageError
from batchseg.job.labels_import import import_params, read_classes_csv
from batchseg.methods import get_method
from batchseg.methods.base import PreRunner
from batchseg.methods.imported import partner


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _runner(kind: str, labels: Path, **params: str):  # noqa: ANN202 - a Runner
    method = get_method(f"import.{kind}")
    return method.runner(method.resolve_params({"labels": str(labels), **params}))


def test_partner_by_relative_path_any_suffix_or_pattern(tmp_path: Path) -> None:
    found = _save(tmp_path / "sub" / "a.tif", np.zeros((2, 2), np.uint8))
    assert partner(str(tmp_path), "sub/a.png") == str(found)
    masked = _save(tmp_path / "sub" / "a_mask.png", np.zeros((2, 2), np.uint8))
    assert partner(str(tmp_path), "sub/a.jpg", "{stem}_mask.png") == str(masked)
    with pytest.raises(ImageError, match="no label file .*b.<image suffix>"):
        partner(str(tmp_path), "sub/b.png")
    _save(tmp_path / "sub" / "a.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(ImageError, match="two label files"):
        partner(str(tmp_path), "sub/a.png")


def test_partner_leading_outside_the_folder_is_refused(tmp_path: Path) -> None:
    outside = _save(tmp_path / "secret.png", np.zeros((2, 2), np.uint8))
    labels = tmp_path / "labels"
    (labels / "x").mkdir(parents=True)
    os.symlink(outside, labels / "a.png")
    with pytest.raises(ImageError, match="leads outside the labels folder"):
        partner(str(labels), "a.png")
    with pytest.raises(ImageError, match="leads outside"):
        partner(str(labels), "x/../../secret.png")


def test_regions_keep_their_ids_and_colours_become_regions(tmp_path: Path) -> None:
    ids = np.array([[0, 7], [300, 300]], np.uint16)
    _save(tmp_path / "a.png", ids)
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 1] = (255, 0, 0)
    rgb[1] = (0, 0, 9)
    _save(tmp_path / "b.png", rgb)
    runner = _runner("regions", tmp_path)
    image = np.zeros((2, 2, 3), np.uint8)
    a, b = runner.segment_batch([image, image], image_ids=["a.jpg", "b.jpg"])
    np.testing.assert_array_equal(a.labels, ids)
    np.testing.assert_array_equal(b.labels, [[0, 0xFF0000], [9, 9]])
    assert get_method("import.regions").label_dtype({}, 2, 2) == np.uint32


def test_failures_are_per_image_with_the_reason(tmp_path: Path) -> None:
    _save(tmp_path / "small.png", np.zeros((1, 2), np.uint8))
    (tmp_path / "junk.png").write_bytes(b"not an image")
    _save(tmp_path / "ok.png", np.ones((2, 2), np.uint8))
    runner = _runner("regions", tmp_path)
    image = np.zeros((2, 2), np.uint8)
    out = runner.segment_batch([image] * 4, image_ids=["small.png", "junk.png", "no.png", "ok.png"])
    assert "is 1x2, the image 2x2" in str(out[0]) and "never resized" in str(out[0])
    assert isinstance(out[1], ImageError)
    assert "no label file" in str(out[2])
    np.testing.assert_array_equal(out[3].labels, np.ones((2, 2)))
    (without_ids,) = runner.segment_batch([image])
    assert isinstance(without_ids, ImageError)


def test_classes_through_the_csv_and_unlisted_values_fail(tmp_path: Path) -> None:
    csv = tmp_path / "c.csv"
    csv.write_text("value,class\n255,cell\n0,background\n#ff0000,road\n")
    method_id, params = import_params(str(tmp_path), "classes", str(csv))
    assert (
        method_id == "import.classes" and params["values"] == "255=cell;0=background;#ff0000=road"
    )
    method = get_method(method_id)
    resolved = method.resolve_params(params)
    assert method.classes(resolved) == ["cell", "background", "road"]
    _save(tmp_path / "a.png", np.array([[0, 255], [255, 255]], np.uint8))
    _save(tmp_path / "b.png", np.array([[0, 3]], np.uint8))
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 255
    _save(tmp_path / "c.png", rgb)
    runner = method.runner(resolved)
    grey = np.zeros((2, 2), np.uint8)
    a, b, c = runner.segment_batch([grey, grey[:1], grey], image_ids=["a.png", "b.png", "c.png"])
    np.testing.assert_array_equal(a.labels, [[1, 0], [0, 0]])
    assert str(b) == "label value 3 is not in --classes"
    np.testing.assert_array_equal(c.labels, np.full((2, 2), 2))


def test_instances_renumbered_with_boxes(tmp_path: Path) -> None:
    _save(tmp_path / "a.png", np.array([[0, 9, 9], [4, 0, 9]], np.uint8))
    (seg,) = _runner("instances", tmp_path).segment_batch(
        [np.zeros((2, 3), np.uint8)], image_ids=["a.png"]
    )
    np.testing.assert_array_equal(seg.labels, [[0, 2, 2], [1, 0, 2]])
    np.testing.assert_array_equal(seg.classes, [[0, 1, 1], [1, 0, 1]])
    assert seg.instances["class_index"].tolist() == [1, 1]
    assert seg.instances["box_min_col"].tolist() == [0, 1]
    assert seg.instances["box_max_col"].tolist() == [1, 3]
    assert get_method("import.instances").classes({}) == ["background", "object"]


def test_preprocessing_chain_passes_the_ids_on(tmp_path: Path) -> None:
    _save(tmp_path / "a.png", np.array([[1, 2]], np.uint8))
    runner = _runner("regions", tmp_path, pre="gaussian:sigma=1")
    assert isinstance(runner, PreRunner)
    (seg,) = runner.segment_batch([np.zeros((1, 2), np.uint8)], image_ids=["a.png"])
    np.testing.assert_array_equal(seg.labels, [[1, 2]])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("regions", "x.csv"), "--classes is for --kind classes"),
        (("classes", None), "--kind classes needs --classes"),
        (("blobs", None), "--kind must be one of regions, classes, instances"),
    ],
)
def test_import_options_refused(tmp_path: Path, args: tuple, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        import_params(str(tmp_path), *args)
    with pytest.raises(UsageError, match="labels folder not found"):
        import_params(str(tmp_path / "none"), "regions")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("value,class\n-1,a\n", "value '-1' is not an integer >= 0"),
        ("value,class\n1,a\n1,b\n", "value 1 is listed twice"),
        ("value,class\n1,a;b\n", "must be a name without ; or ="),
        ("v,c\n1,a\n", "needs the columns value,class"),
    ],
)
def test_classes_csv_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    csv = tmp_path / "c.csv"
    csv.write_text(text)
    with pytest.raises(UsageError, match=message):
        read_classes_csv(str(csv))
