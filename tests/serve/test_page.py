"""``batchseg serve``'s page in a real headless browser: type a query, see the rows, sort, page,
open an image (overlay, opacity slider, legend toggles, objects), take a screenshot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from batchseg import serve
from tests.helpers.browser import not_blank
from tests.helpers.viewer_stores import ODD_IDS, odd_ids_store

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def objects_url(objects_store: Path) -> Iterator[str]:
    running = serve.start(str(objects_store), port=0)
    yield running.url
    running.stop()


@pytest.fixture(scope="module")
def classes_url(classes_store: Path) -> Iterator[str]:
    running = serve.start(str(classes_store), port=0)
    yield running.url
    running.stop()


@pytest.fixture(scope="module")
def odd_url(tmp_path_factory: pytest.TempPathFactory, cluster_address: str) -> Iterator[str]:
    running = serve.start(str(odd_ids_store(tmp_path_factory, cluster_address)), port=0)
    yield running.url
    running.stop()


def _loaded(page, selector: str) -> bool:  # type: ignore[no-untyped-def]
    page.wait_for_function(
        "s => { const i = document.querySelector(s); return i && i.complete && i.naturalWidth > 0 }",
        arg=selector,
    )
    return True


def test_query_rows_image_view(browser, objects_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.goto(objects_url + "/")
    page.wait_for_selector("#rows tbody tr")
    assert page.locator("#rows tbody tr").count() == 13  # 12 done + 1 failed
    page.fill("#where", "n_objects >= 2")
    page.press("#where", "Enter")
    total = httpx.get(objects_url + "/api/query", params={"where": "n_objects >= 2"}).json()
    page.wait_for_function(
        "n => document.querySelectorAll('#rows tbody tr').length === n", arg=total["total"]
    )
    assert page.inner_text("#count").endswith(f"of {total['total']}")
    page.click("th[data-col=n_objects]")  # ascending, then descending
    page.wait_for_selector("th[data-col=n_objects]:has-text('\u25b2')")
    page.click("th[data-col=n_objects]")
    page.wait_for_selector("th[data-col=n_objects]:has-text('\u25bc')")
    shown = page.eval_on_selector_all("#rows tbody tr", "rows => rows.map(r => r.dataset.id)")
    expected = httpx.get(
        objects_url + "/api/query", params={"where": "n_objects >= 2", "sort": "-n_objects"}
    ).json()
    assert shown == [r["image_id"] for r in expected["rows"]]
    page.locator("#rows tbody tr").first.click()
    _loaded(page, "#overlay")
    first = page.eval_on_selector("#overlay", "e => e.src")
    page.fill("#alpha", "0.9")  # the opacity slider redraws the overlay
    page.wait_for_function("s => document.querySelector('#overlay').src !== s", arg=first)
    assert "alpha=0.9" in (page.get_attribute("#overlay", "src") or "")
    _loaded(page, "#overlay")
    page.uncheck("#outlines")
    page.wait_for_function("() => document.querySelector('#overlay').src.includes('outlines=0')")
    page.wait_for_selector("#objects tr >> nth=1")  # the image's objects
    assert page.locator("#stats").inner_text().count("n_objects") == 1
    shot = page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
    assert not_blank(shot)
    page.fill("#where", "n_objects = 2")
    page.press("#where", "Enter")
    page.wait_for_function("() => document.querySelector('#error').textContent.includes('==')")
    page.close()


def test_class_toggles_and_paging(browser, classes_url: str) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.goto(classes_url + "/")
    page.wait_for_selector("#rows tbody tr")
    page.select_option("#psize", "25")
    page.fill("#where", "status == 'done'")
    page.press("#where", "Enter")
    page.wait_for_function("() => document.querySelector('#count').textContent.includes('of 12')")
    page.locator("#rows tbody tr").nth(2).click()
    _loaded(page, "#overlay")
    legend = page.locator("#legend").inner_text()
    assert "background" in legend and "foreground" in legend
    page.uncheck("input[data-class='1']")  # hide the foreground class
    page.wait_for_function("() => document.querySelector('#overlay').src.includes('hide=1')")
    _loaded(page, "#overlay")
    assert not_blank(page.screenshot())
    page.close()


def test_url_keeps_the_query_and_the_open_image(browser, objects_url: str) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.goto(objects_url + "/")
    page.wait_for_selector("#rows tbody tr")
    page.fill("#where", "n_objects >= 2")
    page.press("#where", "Enter")
    page.wait_for_function("() => location.search.includes('where=')")
    page.click("th[data-col=n_objects]")
    page.wait_for_selector("th[data-col=n_objects]:has-text('\u25b2')")
    page.locator("#rows tbody tr").nth(1).click()
    _loaded(page, "#overlay")
    page.fill("#alpha", "0.8")
    page.wait_for_function("() => location.search.includes('alpha=0.8')")
    opened = page.inner_text("#view h2")
    shared = page.url
    page.close()
    again = browser.new_page(viewport={"width": 1300, "height": 900})
    again.goto(shared)  # a shared link opens the same rows and image
    _loaded(again, "#overlay")
    assert again.input_value("#where") == "n_objects >= 2"
    assert again.inner_text("#view h2") == opened
    assert "alpha=0.8" in (again.get_attribute("#overlay", "src") or "")
    expected = httpx.get(
        objects_url + "/api/query", params={"where": "n_objects >= 2", "sort": "n_objects"}
    ).json()
    shown = again.eval_on_selector_all("#rows tbody tr", "rows => rows.map(r => r.dataset.id)")
    assert shown == [r["image_id"] for r in expected["rows"]]
    again.close()


def test_placeholder_names_columns_of_the_store(
    browser, classes_url: str, objects_url: str
) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    for url in (classes_url, objects_url):
        page.goto(url + "/")
        page.wait_for_function(
            "() => document.querySelector('#where').placeholder.includes('e.g.')"
        )
        example = page.get_attribute("#where", "placeholder") or ""
        meta = httpx.get(url + "/api/meta").json()
        answer = httpx.get(url + "/api/query", params={"where": meta["example"]})
        assert meta["example"] in example and answer.status_code == 200, example
        if meta["kind"] == "classes":
            assert "n_regions" not in example and "fraction_foreground" in example
    page.close()


def test_odd_ids_open_in_the_page(browser, odd_url: str) -> None:  # type: ignore[no-untyped-def]
    """Ids with ``.``/``..`` segments, a newline or URL syntax open (browsers rewrite paths)."""
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.goto(odd_url + "/")
    page.wait_for_function(
        "n => document.querySelectorAll('#rows tbody tr').length === n", arg=len(ODD_IDS)
    )
    for i in range(len(ODD_IDS)):
        row = page.locator("#rows tbody tr").nth(i)
        image_id = row.evaluate("r => r.dataset.id")
        _loaded(page, f"#rows tbody tr:nth-child({i + 1}) img")  # its thumbnail
        row.click()
        page.wait_for_function(
            "id => document.querySelector('#view h2').textContent === id", arg=image_id
        )
        _loaded(page, "#overlay")
        assert page.locator("#stats").inner_text().count("done") == 1, image_id
    page.close()
