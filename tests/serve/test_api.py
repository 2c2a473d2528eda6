"""``batchseg serve``'s JSON API against a real server on loopback: answers equal the CLI's,
pictures equal the renderer's, refusals (400/404, path traversal) hold, the store is unchanged."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

import batchseg
from batchseg import render, serve
from batchseg.io.normalise import display_rgb
from batchseg.io.read import read_image
from tests.helpers.cli import run_cli
from tests.helpers.clusters import free_port
from tests.helpers.viewer_stores import BROKEN

pytestmark = pytest.mark.integration


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def served(objects_store: Path) -> Iterator[tuple[httpx.Client, Path]]:
    before = _files(objects_store)
    running = serve.start(str(objects_store), host="127.0.0.1", port=0)
    try:
        with httpx.Client(base_url=running.url, timeout=30) as client:
            yield client, objects_store
    finally:
        running.stop()
    assert _files(objects_store) == before  # read-only: not one file written or touched


def _cli_json(*args: object) -> object:
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_summary_equals_stats_json(served) -> None:  # type: ignore[no-untyped-def]
    client, store = served
    answer = client.get("/api/summary")
    assert answer.status_code == 200
    cli = _cli_json("stats", store, "--json")
    assert isinstance(cli, dict) and cli["store"] == str(store)
    assert answer.json() == {**cli, "store": store.name}  # no absolute path unless asked


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"where": "n_objects >= 2", "sort": "-n_objects"},
        {"where": "status == 'failed' or area_mean > 50", "columns": "height,width,n_*"},
        {"sort": "image_id", "columns": "*"},
    ],
)
def test_query_equals_the_cli(served, params: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    client, store = served
    args: list[object] = ["query", store, "--format", "json"]
    for key in ("where", "columns", "sort"):
        if key in params:
            args += [f"--{key}", params[key]]
    expected = _cli_json(*args)
    assert isinstance(expected, list)
    expected = [{k: v for k, v in row.items() if k != "uri"} for row in expected]  # no paths
    whole = client.get("/api/query", params={**params, "limit": 1000}).json()
    assert whole["total"] == len(expected) and whole["rows"] == expected
    page = client.get("/api/query", params={**params, "limit": 3, "offset": 2}).json()
    assert page["total"] == len(expected) and page["rows"] == expected[2:5]


def test_image_row_and_pictures(served) -> None:  # type: ignore[no-untyped-def]
    client, store = served
    view = batchseg.open(str(store))
    image_id = "colour/img_000.png"  # ids hold slashes: a path converter takes them whole
    row = client.get(f"/api/images/{image_id}").json()
    where = f"image_id == '{image_id}'"
    cli = _cli_json("query", store, "--where", where, "--columns", "*", "-f", "json")[0]  # type: ignore[index]
    assert cli.pop("uri") == view.uri(image_id)
    assert row == cli and client.get("/api/image", params={"id": image_id}).json() == cli

    def png(suffix: str, **params: object) -> np.ndarray:
        answer = client.get(f"/api/images/{image_id}/{suffix}", params=params)
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        return np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGB"))

    labels = view.mask(image_id)
    np.testing.assert_array_equal(png("mask.png"), render.colourise(labels, kind="regions"))
    source = display_rgb(read_image(view.uri(image_id)))
    np.testing.assert_array_equal(png("source.png"), source)
    full = png("overlay.png", alpha=0.3)
    np.testing.assert_array_equal(full, render.overlay(source, labels, kind="regions", alpha=0.3))
    thumb = png("overlay.png", size=32)
    assert max(thumb.shape[:2]) == 32
    objects = client.get(f"/api/images/{image_id}/objects").json()
    assert [o["label"] for o in objects] == sorted(set(np.unique(labels)) - {0})


def test_refusals(served) -> None:  # type: ignore[no-untyped-def]
    client, store = served
    bad = client.get("/api/query", params={"where": "n_objects = 2"})
    cli = run_cli("query", store, "--where", "n_objects = 2")
    assert bad.status_code == 400
    assert cli.output.strip() == f"error: {bad.json()['error']}"  # the same one line
    assert client.get("/api/query", params={"where": "__import__('os')"}).status_code == 400
    assert client.get("/api/query", params={"sort": "nope"}).status_code == 400
    assert client.get("/api/query", params={"limit": "-1"}).status_code == 400
    assert client.get("/api/images/nope.png").status_code == 404
    assert client.get("/api/images/nope.png/mask.png").status_code == 404
    failed = client.get(f"/api/images/{BROKEN}/mask.png")
    assert failed.status_code == 404 and "failed" in failed.json()["error"]
    assert client.get(f"/api/images/{BROKEN}").json()["status"] == "failed"
    assert client.get("/api/images/colour/img_000.png/overlay.png?alpha=2").status_code == 400
    assert client.get("/api/images/colour/img_000.png/overlay.png?size=1").status_code == 400
    assert client.get("/api/images/colour/img_000.png/confidence.png").status_code == 404
    assert client.post("/api/query").status_code == 405
    secret = Path("/etc/passwd").read_bytes()[:20] if Path("/etc/passwd").exists() else b"root:"
    for attack in (
        "/api/images/..%2F..%2Fetc%2Fpasswd/source.png",
        "/api/images/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/images/%2Fetc%2Fpasswd/source.png",
        "/api/images//etc/passwd/source.png",
        "/api/images/colour/..%2F..%2F..%2Fetc%2Fpasswd/source.png",
        "/api/images/%2e%2e/%2e%2e/etc/passwd/mask.png",
    ):
        answer = client.get(attack)
        assert answer.status_code == 404, attack
        assert secret not in answer.content


def test_serve_command_binds_loopback_and_says_so(objects_store: Path) -> None:
    port = free_port()
    exe = [sys.executable, "-m", "batchseg.cli", "serve", str(objects_store), "--port", str(port)]
    proc = subprocess.Popen(exe, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line and "loopback only" in line
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/summary", timeout=5)
                break
            except httpx.ConnectError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert answer.status_code == 200 and answer.json()["images"] == 13
    finally:
        proc.terminate()
        proc.wait(10)


def test_missing_dependency_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn now raises ImportError
    with pytest.raises(batchseg.errors.BatchsegError, match=r"pip install 'batchseg\[serve\]'"):
        serve.require()
    result = run_cli("serve", tmp_path / "any.zarr")
    assert result.exit_code == 1 and "batchseg[serve]" in result.output


def test_indexed_reads_equal_the_store_view(objects_store: Path) -> None:
    """The app's id index finds the same data as StoreView's catalogue scan."""
    from batchseg.serve.state import StoreState

    state = StoreState(str(objects_store))
    indexed, plain = state.picture_view(), batchseg.open(str(objects_store))
    assert type(indexed).__name__ == "IndexedView"
    for image_id in plain.query("status == 'done'")["image_id"]:
        np.testing.assert_array_equal(indexed.mask(image_id), plain.mask(image_id))
        assert indexed.uri(image_id) == plain.uri(image_id)
        assert indexed.locate(image_id).bucket_row == plain.locate(image_id).bucket_row
    with pytest.raises(batchseg.errors.StoreError, match="failed"):
        indexed.mask(BROKEN)
