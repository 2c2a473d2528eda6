"""DNS rebinding and absolute paths: the web app answers only loopback names, the address it
was started on and ``--allowed-host`` names, and shows where files live only with
``--show-paths``. Attacks scripted against real servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import batchseg
from batchseg import serve
from batchseg.errors import UsageError
from batchseg.serve.hosts import allowed_hosts, host_name
from batchseg.serve.redact import redact, store_name
from tests.helpers.cli import run_cli
from tests.helpers.viewer_stores import BROKEN

pytestmark = pytest.mark.integration

ATTACKER = "attacker.test"


@pytest.fixture(scope="module")
def plain(objects_store: Path) -> Iterator[str]:
    running = serve.start(str(objects_store), port=0)
    yield running.url
    running.stop()


@pytest.fixture(scope="module")
def opened(objects_store: Path) -> Iterator[str]:
    running = serve.start(str(objects_store), port=0, hosts=["Lab.Example"], show_paths=True)
    yield running.url
    running.stop()


def _port(url: str) -> str:
    return url.rsplit(":", 1)[1]


def test_rebinding_requests_are_refused(plain: str, objects_store: Path) -> None:
    """``curl -H 'Host: attacker.test:PORT' .../api/query?columns=*`` and a source picture."""
    uri = batchseg.open(str(objects_store)).uri("colour/img_000.png")
    attacks = [
        ("/api/query", {"columns": "*"}),
        ("/api/image/source.png", {"id": "colour/img_000.png"}),
        ("/api/meta", {}),
        ("/", {}),
    ]
    for host in (
        f"{ATTACKER}:{_port(plain)}",
        ATTACKER,
        "127.0.0.1.attacker.test",
        "localhost.evil",
    ):
        for path, params in attacks:
            answer = httpx.get(plain + path, params=params, headers={"Host": host})
            assert answer.status_code == 400, (host, path)
            assert answer.headers["content-type"] == "application/json"
            assert "--allowed-host" in answer.json()["error"]
            assert b"img_000" not in answer.content and uri.encode() not in answer.content
    for host in (f"localhost:{_port(plain)}", f"127.0.0.1:{_port(plain)}", "[::1]", "LOCALHOST"):
        assert httpx.get(plain + "/api/meta", headers={"Host": host}).status_code == 200, host


def test_allowed_host_is_answered(opened: str) -> None:
    assert httpx.get(opened + "/api/meta", headers={"Host": "lab.example:80"}).status_code == 200
    assert httpx.get(opened + "/api/meta", headers={"Host": ATTACKER}).status_code == 400


def test_no_absolute_paths_unless_asked(plain: str, opened: str, objects_store: Path) -> None:
    root = str(objects_store.parent)  # the images and the store live below it
    view = batchseg.open(str(objects_store))
    with httpx.Client(base_url=plain) as client:
        answers = [
            client.get("/api/query", params={"columns": "*", "limit": 100}),
            client.get("/api/summary"),
            client.get("/api/meta"),
            client.get("/api/image", params={"id": BROKEN}),
            client.get("/api/images/colour/img_000.png"),
        ]
        for answer in answers:
            assert answer.status_code == 200 and root not in answer.text, answer.request.url
        rows = answers[0].json()["rows"]
        assert "uri" not in answers[0].json()["columns"] and len(rows) == 13
        assert answers[2].json()["store"] == objects_store.name
        assert answers[3].json()["status"] == "failed" and answers[3].json()["error"]
        probe = client.get("/api/query", params={"where": f"uri == '{view.uri(BROKEN)}'"})
        assert probe.status_code == 400 and root not in probe.text  # no oracle on paths
    with httpx.Client(base_url=opened) as client:  # --show-paths: the uri column, full paths
        shown = client.get("/api/query", params={"columns": "image_id,uri", "limit": 100}).json()
        assert {r["image_id"]: r["uri"] for r in shown["rows"]}[BROKEN] == view.uri(BROKEN)
        assert client.get("/api/meta").json()["store"] == str(objects_store)


def test_host_names_and_redaction() -> None:
    assert host_name("[::1]:8765") == "::1" and host_name("LocalHost.:80") == "localhost"
    assert allowed_hosts("0.0.0.0", ["Lab.Example:8765"]) == {"lab.example"}
    assert allowed_hosts("192.168.1.5") == {"192.168.1.5"}
    for bad in ("http://lab.example", "*", "", "a b"):
        with pytest.raises(UsageError, match="allowed-host"):
            allowed_hosts("127.0.0.1", [bad])
    text = "cannot open '/home/ann/data/cam/a.png' (s3://bucket/x/y.png, ~/p/q.png)"
    assert redact({"e": [text]}) == {"e": ["cannot open '…/a.png' (…/y.png, …/q.png)"]}
    for kept in ("cam/a.png", "../up/a.png", "./b.png", "n > 1/2", "a/../b.png"):
        assert redact(kept) == kept
    assert store_name("/home/ann/out.zarr/") == "out.zarr"


def test_cli_refuses_a_bad_allowed_host(objects_store: Path) -> None:
    result = run_cli("serve", objects_store, "--allowed-host", "http://x.test/")
    assert result.exit_code == 2 and "allowed-host" in result.output
    result = run_cli("serve", objects_store, "--timeout", "0")
    assert result.exit_code == 2 and "--timeout" in result.output
