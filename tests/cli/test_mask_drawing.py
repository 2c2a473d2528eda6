"""``batchseg mask`` drawing choices of issue 27: class 0 coloured and ``--hide``, no silently
dropped options (``--confidence --overlay``), ``--no-outlines``, ``--truth`` beside the
prediction, and stores holding bad colours."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from PIL import Image

import batchseg
from batchseg import render, store
from batchseg.io.normalise import display_rgb
from tests.helpers.cli import run_cli
from tests.helpers.truth import evaluated_copy

pytestmark = pytest.mark.integration

IMAGE = "colour/img_000.png"


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def _source(store_path: Path, image_id: str) -> np.ndarray:
    with Image.open(batchseg.open(str(store_path)).uri(image_id)) as im:
        return display_rgb(np.asarray(im)).astype(int)


def test_overlay_colours_class_zero_unless_hidden(classes_store: Path, tmp_path: Path) -> None:
    labels = batchseg.open(str(classes_store)).mask(IMAGE)
    assert (labels == 0).any() and (labels == 1).any()
    source = _source(classes_store, IMAGE)
    shown = tmp_path / "shown.png"
    assert run_cli("mask", classes_store, IMAGE, "-o", shown, "--overlay").exit_code == 0
    change = np.abs(_png(shown) - source).mean(axis=-1)
    assert change[labels == 0].mean() > 5  # was 0.0: class 0 was never coloured
    hidden = tmp_path / "hidden.png"
    result = run_cli("mask", classes_store, IMAGE, "-o", hidden, "--overlay", "--hide", "0")
    assert result.exit_code == 0, result.output
    change = np.abs(_png(hidden) - source).mean(axis=-1)
    assert change[labels == 0].max() == 0 and change[labels == 1].mean() > 5
    by_name = tmp_path / "by_name.png"
    assert (
        run_cli(
            "mask", classes_store, IMAGE, "-o", by_name, "--overlay", "--hide", "BACKGROUND"
        ).exit_code
        == 0
    )
    np.testing.assert_array_equal(_png(by_name), _png(hidden))
    unknown = run_cli("mask", classes_store, IMAGE, "-o", tmp_path / "x.png", "--hide", "sky")
    assert unknown.exit_code == 2 and "background" in unknown.output
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    "extra", [["--overlay"], ["--legend"], ["--hide", "0"], ["--truth", "t"], ["--no-outlines"]]
)
def test_confidence_refuses_what_it_would_drop(tmp_path: Path, extra: list[str]) -> None:
    """Issue 27.19: ``--confidence --overlay`` wrote the confidence map, no overlay."""
    out = tmp_path / "c.png"
    result = run_cli("mask", tmp_path / "any.zarr", "a.png", "-o", out, "--confidence", *extra)
    assert result.exit_code == 2 and extra[0] in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_no_outlines(objects_store: Path, tmp_path: Path) -> None:
    image_id = batchseg.open(str(objects_store)).table(["status"]).query("status == 'done'")
    first = str(image_id["image_id"].iloc[0])
    drawn, bare = tmp_path / "drawn.png", tmp_path / "bare.png"
    assert run_cli("mask", objects_store, first, "-o", drawn, "--overlay").exit_code == 0
    result = run_cli("mask", objects_store, first, "-o", bare, "--overlay", "--no-outlines")
    assert result.exit_code == 0, result.output
    yellow = np.asarray(render.BOUNDARY_COLOUR)
    assert (_png(drawn) == yellow).all(axis=-1).sum() > (_png(bare) == yellow).all(axis=-1).sum()
    alone = run_cli("mask", objects_store, first, "-o", tmp_path / "x.png", "--no-outlines")
    assert alone.exit_code == 2 and "--overlay" in alone.output
    hide = run_cli("mask", objects_store, first, "-o", tmp_path / "x.png", "--hide", "1")
    assert hide.exit_code == 2 and "class maps" in hide.output


def test_truth_beside_the_prediction(classes_store: Path, tmp_path: Path) -> None:
    copy, truth = evaluated_copy(classes_store, tmp_path, skip="grey/img_001.png")
    view = batchseg.open(str(copy))
    labels = view.mask(IMAGE)
    height, width = labels.shape
    out = tmp_path / "both.png"
    result = run_cli("mask", copy, IMAGE, "-o", out, "--truth", truth)
    assert result.exit_code == 0, result.output
    both = _png(out)
    table = np.asarray(view.colours, dtype=np.uint8)
    assert both.shape == (height, 2 * width + 8, 3)
    np.testing.assert_array_equal(both[:, :width], render.colourise(labels, table))
    # the evaluation's value map turned 255 into class 1 (as class indices it has no colour)
    np.testing.assert_array_equal(both[:, width + 8 :], render.colourise(1 - labels, table))
    over = tmp_path / "over.png"
    result = run_cli("mask", copy, IMAGE, "-o", over, "--truth", f"{truth}/", "--overlay")
    assert result.exit_code == 0, result.output
    source = _source(copy, IMAGE)
    truth_side = _png(over)[:, width + 8 :]
    want = render.overlay(source.astype(np.uint8), 1 - labels, table)
    np.testing.assert_array_equal(truth_side, want)
    missing = run_cli("mask", copy, "grey/img_001.png", "-o", tmp_path / "m.png", "--truth", truth)
    assert missing.exit_code == 2 and "no truth" in missing.output


def test_stored_bad_colours_read_as_defaults(classes_store: Path, tmp_path: Path) -> None:
    """Issue 27.6: a store holding colour -1 made mask, report and --overlay fail."""
    copy = tmp_path / "bad.zarr"
    shutil.copytree(classes_store, copy)
    store.update_attributes(zarr.open_group(str(copy), mode="r+"), colours=[[-1, -1, -1]] * 2)
    view = batchseg.open(str(copy))
    assert view.colours == [list(c) for c in render.default_class_colours(view.classes or [])]
    out = tmp_path / "o.png"
    result = run_cli("mask", copy, IMAGE, "-o", out, "--overlay", "--legend")
    assert result.exit_code == 0, result.output
    report = run_cli("report", copy, "-o", tmp_path / "r.html", "-n", "2")
    assert report.exit_code == 0, report.output
