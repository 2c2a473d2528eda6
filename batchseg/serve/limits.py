"""What one web-app server holds open: connections, and how long a request may take to arrive.

uvicorn times out only idle keep-alive connections (after a response); a client that connects
and sends nothing, or half a header, or a body it never finishes, would hold a socket (a file
descriptor) forever, and a few hundred such clients make the server stop answering.
:class:`Limits` bounds all three (enforced by :mod:`batchseg.serve.protocol`); every refusal is
a JSON ``{"error": ...}`` answer before the connection is closed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from batchseg.errors import UsageError

#: Largest accepted timeout (seconds) and connection limit.
MAX_TIMEOUT, MAX_CONNECTIONS = 3600.0, 100_000


@dataclass(frozen=True)
class Limits:
    """Bounds on one server's connections (checked on construction: UsageError).

    Parameters
    ----------
    max_connections : int
        Connections held open at once; one more is answered 503 and closed at once.
    header_timeout : float
        Seconds from a connection's start (or the end of its previous answer) until the
        request's headers are complete; then 408 and closed.
    body_timeout : float
        Seconds from the end of the headers until the request's body is complete.
    keep_alive : float
        Seconds an idle connection is kept open after an answer (uvicorn's keep-alive).
    """

    max_connections: int = 64
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive: float = 5.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_connections <= MAX_CONNECTIONS:
            raise UsageError(f"--max-connections must be between 1 and {MAX_CONNECTIONS}")
        for name in ("header_timeout", "body_timeout", "keep_alive"):
            value = getattr(self, name)
            if not 0 < value <= MAX_TIMEOUT:  # also refuses nan
                flag = "--timeout" if name != "keep_alive" else "keep_alive"
                raise UsageError(f"{flag} must be above 0 and at most {MAX_TIMEOUT:g} seconds")


def error_answer(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP/1.1 answer ``{"error": message}`` that closes the connection."""
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body
