"""Truth beside the prediction in the report's gallery (issue 27.22)."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import batchseg
from batchseg.report import gallery, pictures
from batchseg.report.truth import find_source, truth_labels
from tests.helpers.cli import run_cli
from tests.helpers.truth import evaluated_copy

pytestmark = pytest.mark.integration


def _decode(uri: str) -> np.ndarray:
    payload = base64.b64decode(uri.split(",", 1)[1])
    with Image.open(io.BytesIO(payload)) as im:
        return np.asarray(im.convert("RGB"))


def test_gallery_shows_the_truth(classes_store: Path, tmp_path: Path) -> None:
    copy, truth = evaluated_copy(classes_store, tmp_path, skip="grey/img_001.png")
    view = batchseg.open(str(copy))
    source = find_source(view)
    assert source is not None and source.evaluation == "gt" and source.truth == str(truth)
    built = gallery.build(view, where="status == 'done'", sample=20, size=48)
    cards = {c.image_id: c for c in built.cards}
    assert "truth from evaluation 'gt'" in built.caption
    assert "truth" not in cards["grey/img_001.png"].images  # no truth file: no truth picture
    assert not cards["grey/img_001.png"].problem
    card = cards["colour/img_000.png"]
    labels = _decode(card.images["labels"])
    drawn = _decode(card.images["truth"])
    assert drawn.shape == labels.shape
    table = np.asarray(view.colours, dtype=np.uint8)
    mask = view.mask("colour/img_000.png")
    target = pictures.truth_picture(view, source, 1 - mask, target=drawn.shape[:2])
    np.testing.assert_array_equal(drawn, target)
    assert not np.array_equal(drawn, labels)  # the truth is the prediction's inverse
    assert set(map(tuple, drawn.reshape(-1, 3))) <= set(map(tuple, table))
    full = truth_labels(view, source, "colour/img_000.png")
    assert full is not None
    np.testing.assert_array_equal(full, 1 - mask)
    html = run_cli("report", copy, "-o", tmp_path / "r.html", "-n", "4")
    assert html.exit_code == 0, html.output
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "source | labels | overlay | truth" in text
    assert re.search(r'title="truth" src="data:image/png', text)


def test_gallery_reports_a_truth_that_does_not_fit(classes_store: Path, tmp_path: Path) -> None:
    copy, truth = evaluated_copy(classes_store, tmp_path)
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(truth / "colour" / "img_000.png")
    view = batchseg.open(str(copy))
    built = gallery.build(view, where="image_id == 'colour/img_000.png'", size=48)
    (card,) = built.cards
    assert "never resized" in card.problem and card.problem.startswith("truth: ")
    assert set(card.images) == {"source", "labels", "overlay"}  # the prediction still shows


def test_gallery_shows_a_truth_store(
    classes_store: Path, tmp_path: Path, cluster_address: str
) -> None:
    """After ``evaluate --truth-store``, the gallery draws the truth store's map of each image,
    its classes matched by name (the imported store lists them in the other order)."""
    copy, truth = evaluated_copy(classes_store, tmp_path, skip="grey/img_001.png")
    csv = tmp_path / "reversed.csv"
    csv.write_text("value,class\n255,foreground\n0,background\n")
    images = Path(batchseg.open(str(copy)).uri("colour/img_000.png")).parents[1]
    imported = tmp_path / "truth.zarr"
    made = batchseg.import_labels(
        truth, images=images, output=imported, kind="classes", classes=csv,
        scheduler=cluster_address,
    )  # fmt: skip
    assert made.failed >= 1  # the image without a truth file
    assert batchseg.open(str(imported)).classes == ["foreground", "background"]
    scored = batchseg.evaluate(copy, truth_store=imported, name="pair", scheduler=cluster_address)
    assert scored.metrics["miou"] == 0.0  # the truth is the prediction's inverse
    view = batchseg.open(str(copy))
    source = find_source(view)
    assert source is not None and source.store and source.evaluation == "pair"
    built = gallery.build(view, where="status == 'done'", sample=20, size=48)
    assert f"truth from evaluation 'pair' ({imported})" in built.caption
    cards = {c.image_id: c for c in built.cards}
    assert "truth" not in cards["grey/img_001.png"].images  # not done in the truth store
    assert not cards["grey/img_001.png"].problem
    mask = view.mask("colour/img_000.png")
    full = truth_labels(view, source, "colour/img_000.png")
    assert full is not None
    np.testing.assert_array_equal(full, 1 - mask)
    drawn = _decode(cards["colour/img_000.png"].images["truth"])
    target = pictures.truth_picture(view, source, 1 - mask, target=drawn.shape[:2])
    np.testing.assert_array_equal(drawn, target)
