"""``batchseg report``: one self-contained HTML file, statistics from the table, a gallery of
the images a query selects; rendered in a real headless browser."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

import batchseg
from batchseg import store
from batchseg.api import StoreView
from tests.helpers.browser import not_blank
from tests.helpers.cli import run_cli
from tests.helpers.viewer_stores import BROKEN

pytestmark = pytest.mark.integration


def _report(store: Path, out: Path, *args: str) -> str:
    result = run_cli("report", store, "-o", out, *args)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    return out.read_text(encoding="utf-8")


def _gallery_ids(html: str) -> list[str]:
    return re.findall(r'<div class="card"><div class="id">([^<]*)</div>', html)


def test_report_is_self_contained_and_complete(objects_store: Path, tmp_path: Path) -> None:
    html = _report(objects_store, tmp_path / "r" / "report.html")
    size = (tmp_path / "r" / "report.html").stat().st_size
    assert size < 10_000_000
    # nothing is fetched at view time: every src is a data URI, no scripts, and a CSP says so
    assert "<script" not in html
    assert all(src.startswith("data:") for src in re.findall(r'src="([^"]*)"', html))
    assert not re.search(r'(href|src)="(https?:|//)', html)
    assert "default-src 'none'" in html
    for section in ("Runs", "Status", "Distributions", "Gallery", "Failures by error"):
        assert section in html
    assert "skimage.objects" in html and "outline" in html  # method and legend
    assert BROKEN in html  # the failed image, grouped under its error
    for plot in ("Regions per image", "Objects per image", "Image sizes", "Throughput per run"):
        assert plot in html
    assert "no per-image completion times" in html  # what the timing plot can and cannot say
    assert 'id="evaluation"' not in html  # the store has no evaluations
    view = batchseg.open(str(objects_store))
    done = set(view.query("status == 'done'")["image_id"])
    assert set(_gallery_ids(html)) == done  # the sample (48) covers all 12 done images
    assert html.count('<img alt="overlay of') == len(done)


def test_gallery_follows_where_and_sort(classes_store: Path, tmp_path: Path) -> None:
    where, sort = "fraction_foreground > 0.1", "-fraction_foreground"
    html = _report(classes_store, tmp_path / "q.html", "--where", where, "--sort", sort, "-n", "4")
    listed = run_cli(
        "query", classes_store, "--where", where, "--sort", sort, "--limit", "4", "-f", "json"
    )
    expected = [r["image_id"] for r in json.loads(listed.output)]
    assert _gallery_ids(html) == expected
    assert "Pixels per class" in html and "foreground" in html


def test_only_gallery_images_are_decoded(
    classes_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Statistics come from the table: label maps are read for the gallery's images only."""
    reads: list[str] = []
    original = store.read_checked

    def counting(root, arr, selection, info, *args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(info.image_id)
        return original(root, arr, selection, info, *args, **kwargs)

    def scan(self: StoreView, image_id: str, level: int = 0) -> None:
        raise AssertionError("the gallery reads labels through its catalogue index")

    monkeypatch.setattr(store, "read_checked", counting)
    monkeypatch.setattr(StoreView, "mask", scan)
    html = _report(classes_store, tmp_path / "s.html", "--sample", "3", "--seed", "7")
    assert len(reads) == 3 and sorted(reads) == sorted(_gallery_ids(html))
    again = _report(classes_store, tmp_path / "t.html", "--sample", "3", "--seed", "7")
    assert _gallery_ids(again) == _gallery_ids(html)  # the sample is seeded


def test_evaluation_section_when_the_store_has_one(classes_store: Path, tmp_path: Path) -> None:
    copy = tmp_path / "evaluated.zarr"
    shutil.copytree(classes_store, copy)
    evaluations = pytest.importorskip("batchseg.store.evaluations")
    root = zarr.open_group(str(copy), mode="r+")
    ids = ["grey/img_001.png", "colour/img_000.png", "colour/img_002.png"]
    result = {
        "kind": "classes",
        "miou": 0.61,
        "pixel_accuracy": 0.9,
        "iou": {"background": 0.8, "foreground": 0.42},
        "classes": ["background", "foreground"],
        "confusion_matrix": [[900, 100], [60, 140]],
    }
    values = np.array([[0.12], [0.9], [0.5]])
    evaluations.write_evaluation(root, "gt", ids, ["gt_miou"], values, result)
    html = _report(copy, tmp_path / "e.html", "-n", "0")
    assert 'id="evaluation"' in html
    for text in ("Per-class IoU", "Confusion matrix", "Worst images", "miou 0.12"):
        assert text in html
    worst = html.index("Worst images")
    assert html.index("grey/img_001.png", worst) < html.index("colour/img_002.png", worst)


def test_refusals_are_one_line(classes_store: Path, tmp_path: Path) -> None:
    bad = run_cli("report", classes_store, "-o", tmp_path / "x.html", "--where", "x = 1")
    assert bad.exit_code == 2 and "==" in bad.output and not (tmp_path / "x.html").exists()
    wrong = run_cli("report", classes_store, "-o", tmp_path / "x.pdf")
    assert wrong.exit_code == 2 and ".html" in wrong.output
    missing = run_cli("report", tmp_path / "nothing.zarr", "-o", tmp_path / "y.html")
    assert missing.exit_code == 1 and len(missing.output.strip().splitlines()) == 1


def test_report_renders_in_a_browser(objects_store: Path, tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "report.html"
    _report(objects_store, out)
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(out.as_uri())
    page.wait_for_load_state("load")
    images = page.eval_on_selector_all(
        "img", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])"
    )
    assert len(images) >= 3 * 12 + 4
    assert all(done and w > 0 and h > 0 for done, w, h in images)
    assert all(u.startswith(("file:", "data:")) for u in requests)  # no network at view time
    assert page.locator(".card").count() == 12
    assert not_blank(page.screenshot(full_page=True))
    page.close()
