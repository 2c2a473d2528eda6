"""Every stored id round-trips through the web app: ids with ``.``/``..`` segments (which
browsers and httpx rewrite in a path), a newline (which a router's ``.*`` does not match) and
URL syntax (``?``, ``#``, ``%``, ``+``); refusals are ``{"error": ...}`` JSON."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from PIL import Image

import batchseg
from batchseg import serve
from tests.helpers.viewer_stores import ODD_IDS, odd_ids_store

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def odd_store(tmp_path_factory: pytest.TempPathFactory, cluster_address: str) -> Path:
    return odd_ids_store(tmp_path_factory, cluster_address)


@pytest.fixture(scope="module")
def client(odd_store: Path) -> Iterator[httpx.Client]:
    running = serve.start(str(odd_store), port=0)
    try:
        with httpx.Client(base_url=running.url, timeout=30) as c:
            yield c
    finally:
        running.stop()


def test_store_holds_the_odd_ids(odd_store: Path) -> None:
    assert sorted(batchseg.open(str(odd_store)).table(["image_id"])["image_id"]) == sorted(ODD_IDS)


@pytest.mark.parametrize("image_id", ODD_IDS)
def test_every_id_round_trips_as_a_parameter(
    client: httpx.Client, odd_store: Path, image_id: str
) -> None:
    row = client.get("/api/image", params={"id": image_id})
    assert row.status_code == 200, row.text
    assert row.json()["image_id"] == image_id and row.json()["status"] == "done"
    mask = client.get("/api/image/mask.png", params={"id": image_id})
    assert mask.status_code == 200 and mask.headers["content-type"] == "image/png"
    shape = np.asarray(Image.open(io.BytesIO(mask.content))).shape[:2]
    assert shape == batchseg.open(str(odd_store)).mask(image_id).shape
    thumb = client.get("/api/image/overlay.png", params={"id": image_id, "size": 16})
    assert thumb.status_code == 200
    rows = client.get("/api/query", params={"where": f"image_id == {image_id!r}"}).json()
    assert [r["image_id"] for r in rows["rows"]] == [image_id]


def test_newline_id_matches_its_path_route(client: httpx.Client) -> None:
    """``/api/images/{id}`` matches an id with a newline (Starlette's ``path`` would not)."""
    image_id = next(i for i in ODD_IDS if "\n" in i)
    encoded = quote(image_id, safe="/")
    assert client.get(f"/api/images/{encoded}").json()["image_id"] == image_id
    assert client.get(f"/api/images/{encoded}/mask.png").status_code == 200


def test_refusals_are_json(client: httpx.Client) -> None:
    for answer, status in (
        (client.get("/api/nope"), 404),
        (client.get("/no/such/page"), 404),
        (client.post("/api/query"), 405),
        (client.delete("/api/image", params={"id": ODD_IDS[0]}), 405),
        (client.get("/api/image"), 400),
        (client.get("/api/image/nope.png", params={"id": ODD_IDS[0]}), 404),
        (client.get("/api/image", params={"id": "up/a.png"}), 404),  # the rewritten id
    ):
        assert answer.status_code == status, answer.request.url
        assert answer.headers["content-type"] == "application/json"
        assert list(answer.json()) == ["error"] and "\n" not in answer.json()["error"]
    assert "GET" in client.post("/api/query").headers["allow"]
