"""The web app's connection limit and header and body timeouts, attacked on loopback: idle
and half-sent requests against real uvicorn servers with a small limit and short timeouts;
a normal request is still answered, every refusal is ``{"error": ...}`` JSON."""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from batchseg import serve
from batchseg.errors import UsageError
from batchseg.serve.limits import Limits
from tests.helpers.clusters import free_port, wait_for, wait_listening

pytestmark = pytest.mark.integration

LIMITS = Limits(max_connections=8, header_timeout=1.0, body_timeout=1.0)
JSON = "application/json"
HALF_HEADER = b"GET /api/summary HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


@pytest.fixture(scope="module")
def running(objects_store: Path) -> Iterator[serve.Running]:
    server = serve.start(str(objects_store), port=0, limits=LIMITS)
    yield server
    server.stop()


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=20)


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (timeout: an error)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _status_and_error(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower()
    return int(head.split()[1]), json.loads(body)["error"]


def _trickle(sock: socket.socket, seconds: float) -> float:
    """Send a byte every 0.2 s until the server closes (or ``seconds`` pass); the time it took."""
    start = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - start < seconds:
        try:
            if sock.recv(65536) == b"":
                break
        except TimeoutError:
            pass
        except ConnectionError:
            break
        try:
            sock.send(b"x")
        except OSError:
            break
    return time.monotonic() - start


def test_idle_and_half_sent_connections_are_closed(running: serve.Running) -> None:
    socks = [_connect(running.url) for _ in range(12)]  # 4 over the limit of 8
    try:
        for s in socks[::2]:
            s.sendall(HALF_HEADER)
        answers = [_read_all(s) for s in socks]  # each is closed by the server
    finally:
        for s in socks:
            s.close()
    refused = [_status_and_error(a) for a in answers if a]
    assert {status for status, _ in refused} <= {408, 503}
    assert sum(status == 503 for status, _ in refused) >= 4  # over the limit: closed at once
    assert any(status == 408 and "headers" in error for status, error in refused)
    assert httpx.get(running.url + "/api/summary", timeout=20).status_code == 200


def test_a_trickled_header_or_body_is_cut_off(running: serve.Running) -> None:
    with _connect(running.url) as slow_header:
        slow_header.sendall(b"GET /api/meta HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: ")
        assert _trickle(slow_header, 10) < 8  # a byte every 0.2 s does not reset the deadline
    with _connect(running.url) as slow_body:
        slow_body.sendall(
            b"GET /api/meta HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 999\r\n\r\n"
        )
        assert _trickle(slow_body, 10) < 8
    with httpx.Client(base_url=running.url, timeout=20) as client:  # keep-alive still works
        assert [client.get("/api/meta").status_code for _ in range(3)] == [200] * 3


def test_garbage_and_huge_headers_get_json_400(running: serve.Running) -> None:
    huge = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000  # unfinished
    for request in (b"NOT HTTP AT ALL\r\n\r\n", huge):
        with _connect(running.url) as sock:
            sock.sendall(request)
            assert _status_and_error(_read_all(sock))[0] == 400


def test_limits_are_checked() -> None:
    for bad in ({"max_connections": 0}, {"header_timeout": 0}, {"body_timeout": float("nan")}):
        with pytest.raises(UsageError):
            Limits(**bad)  # type: ignore[arg-type]


def _low_fd_limit() -> None:  # in the server's process, before exec
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_300_idle_sockets_do_not_stop_a_server_with_256_descriptors(objects_store: Path) -> None:
    """The attack of issue 27: 300 idle or half-sent connections against ``batchseg serve``
    limited to 256 file descriptors; with --max-connections 32 --timeout 2 it still answers."""
    port = free_port()
    exe = [sys.executable, "-m", "batchseg.cli", "serve", str(objects_store), "--port", str(port)]
    exe += ["--max-connections", "32", "--timeout", "2"]
    proc = subprocess.Popen(
        exe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_low_fd_limit
    )
    url, socks = f"http://127.0.0.1:{port}", []

    def answered() -> bool:  # 503 while the limit is full; 200 once the timeouts close them
        try:
            answer = httpx.get(url + "/api/summary", timeout=5)
        except httpx.TransportError:
            return False
        assert answer.status_code in (200, 503) and answer.headers["content-type"] == JSON
        return answer.status_code == 200

    try:
        wait_listening(port, proc)
        for i in range(300):
            s = _connect(url)
            if i % 2:
                s.sendall(HALF_HEADER)
            socks.append(s)
        wait_for("an answer while 300 connections are held open", answered, 30)
        assert proc.poll() is None
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        proc.wait(10)
