"""uvicorn's h11 protocol with the web app's :class:`~batchseg.serve.limits.Limits` enforced.

Each connection waits in one phase at a time: for a request's headers (h11's ``IDLE``), for its
body (``SEND_BODY``), or for the app (nothing to time out). Entering a waiting phase starts one
deadline for the whole phase (a client trickling a byte a second gains nothing); a deadline
that passes answers 408 and closes the connection (a connection that sent nothing is closed
without an answer). A connection over the limit is answered 503 at once and closed when its
request arrives (at the latest after :data:`REFUSED_LINGER`), so idle clients never use up the
server's file descriptors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from batchseg.serve.limits import Limits, error_answer

log = logging.getLogger(__name__)

#: Seconds a refused connection (its 503 sent) waits for the client's request before closing.
REFUSED_LINGER = 0.5


class LimitedH11Protocol(H11Protocol):
    """H11Protocol with a connection limit and header and body timeouts (see the module)."""

    limits: ClassVar[Limits] = Limits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._phase: Any = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self._refused = True
            _warn_refused(len(self.connections))
            message = f"too many connections (at most {self.limits.max_connections}); retry"
            transport.write(error_answer(503, "Service Unavailable", message))
            transport.write_eof()
            # closed once the client's request is read (closing on unread bytes would reset
            # the connection and lose the answer), at the latest after REFUSED_LINGER seconds
            self.transport = transport
            self._timer = self.loop.call_later(REFUSED_LINGER, transport.close)
            return
        super().connection_made(transport)
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self.transport.close()
            return
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request h11 cannot parse (or headers over 16 KiB), as JSON."""
        self.transport.write(error_answer(400, "Bad Request", msg))
        self.transport.close()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _watch(self) -> None:
        """Start the deadline of the phase the connection is in now (when it changed)."""
        phase = self.conn.their_state
        if phase is self._phase or self.transport.is_closing():
            return
        self._stop_timer()
        self._phase = phase
        if phase is h11.IDLE:
            self._timer = self.loop.call_later(self.limits.header_timeout, self._expire, phase)
        elif phase is h11.SEND_BODY:
            self._timer = self.loop.call_later(self.limits.body_timeout, self._expire, phase)

    def _expire(self, phase: Any) -> None:
        """The phase's deadline passed: answer 408 (unless nothing was sent) and close."""
        self._timer = None
        if self.transport.is_closing() or self.conn.their_state is not phase:
            return
        waited = "headers" if phase is h11.IDLE else "body"
        partial = phase is h11.SEND_BODY or bool(self.conn.trailing_data[0])
        cycle = self.cycle
        if partial and (cycle is None or cycle.response_complete or not cycle.response_started):
            seconds = self.limits.header_timeout if phase is h11.IDLE else self.limits.body_timeout
            message = f"the request's {waited} did not arrive within {seconds:g} s"
            self.transport.write(error_answer(408, "Request Timeout", message))
        log.info("closed a connection: its request's %s did not arrive in time", waited)
        self.transport.close()


_last_warning = [0.0]


def _warn_refused(open_now: int) -> None:
    """Log refused connections at most once every 10 s (an attack would flood the log)."""
    now = time.monotonic()
    if now - _last_warning[0] >= 10:
        _last_warning[0] = now
        log.warning("refusing connections: %d are open (--max-connections)", open_now)


def protocol_class(limits: Limits) -> type[LimitedH11Protocol]:
    """A :class:`LimitedH11Protocol` bound to ``limits`` (for ``uvicorn.Config(http=...)``)."""
    return type("LimitedH11Protocol", (LimitedH11Protocol,), {"limits": limits})
