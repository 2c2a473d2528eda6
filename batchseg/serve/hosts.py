"""Which ``Host`` headers the web app answers (a guard against DNS rebinding).

A page on ``http://attacker.test:8765`` whose name the attacker re-points at 127.0.0.1 is, to
the browser, the attacker's own origin: it could read the app's answers. Such requests carry
``Host: attacker.test:8765``, so the app answers only the loopback names, the address it was
started on and the names added with ``--allowed-host``; anything else gets 400 and
``{"error": ...}``. A plain ASGI middleware: no Starlette needed.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from batchseg.errors import UsageError

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Addresses that listen everywhere: not names a client can send.
WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def host_name(header: str) -> str:
    """The host of a ``Host`` header without its port, lower case (``[::1]:8765`` -> ``::1``)."""
    text = header.strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    if text.count(":") == 1:
        text = text.partition(":")[0]
    return text.rstrip(".") if text not in (".", "") else text


def is_loopback_name(name: str) -> bool:
    """Whether ``name`` (a bare host) is ``localhost`` or a loopback address."""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The names answered besides loopback: the bind address and ``extra`` (UsageError for a
    name that is not a bare host or host:port)."""
    names = set()
    for given in extra:
        if not given.strip() or any(c in given for c in "/@ *?#\\\t\r\n"):
            raise UsageError(f"--allowed-host {given!r}: give a host name or address (no URL)")
        names.add(host_name(given))
    bound = host_name(bind)
    if bound not in WILDCARDS:
        names.add(bound)
    return frozenset(names)


class HostGuard:
    """ASGI middleware: requests whose ``Host`` is not allowed answer 400 ``{"error": ...}``."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    def allows(self, header: str | None) -> bool:
        """Whether a request with this ``Host`` header (None: none) is answered."""
        if header is None:
            return False
        name = host_name(header)
        return is_loopback_name(name) or name in self.allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan (uvicorn runs with websockets off)
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw = headers.get(b"host")
        header = raw.decode("latin-1") if raw is not None else None
        if self.allows(header):
            await self.app(scope, receive, send)
            return
        log.warning("refused a request for host %r", header)
        shown = repr(header[:100]) if header is not None else "(none)"
        message = (
            f"host {shown} is not served here (DNS rebinding guard): use localhost or "
            "the address it listens on, or start it with --allowed-host NAME"
        )
        body = json.dumps({"error": message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
