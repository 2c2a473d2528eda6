"""A read-only local web app to browse and query a store (``batchseg serve``).

Starlette on uvicorn, imported lazily: without them :func:`require` raises one line naming
``pip install 'batchseg[serve]'``. Modules: :mod:`~batchseg.serve.state` (the open store and
its cached table columns), :mod:`~batchseg.serve.api` (routes), :mod:`~batchseg.serve.page`
(the page). The app never writes to the store.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from batchseg.errors import BatchsegError

log = logging.getLogger(__name__)

__all__ = ["Running", "is_loopback", "make_app", "require", "serve_app", "start"]

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8765


def require() -> None:
    """BatchsegError with the install line when starlette or uvicorn is missing."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise BatchsegError(
            f"batchseg serve needs starlette and uvicorn ({exc.name} is missing): "
            "pip install 'batchseg[serve]'"
        ) from None


def make_app(path: str, **kwargs: Any) -> Any:
    """The Starlette app for the store at ``path`` (see :func:`batchseg.serve.api.make_app`)."""
    require()
    from batchseg.serve.api import make_app as build

    return build(path, **kwargs)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (127.0.0.0/8, ::1 or localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _config(app: Any, host: str, port: int) -> Any:
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)


def serve_app(app: Any, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve an app of :func:`make_app` until interrupted (blocks)."""
    import uvicorn

    uvicorn.Server(_config(app, host, port)).run()


@dataclass
class Running:
    """A server started by :func:`start`: its URL; :meth:`stop` ends it."""

    url: str
    server: Any
    thread: threading.Thread

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to exit and wait for its thread."""
        self.server.should_exit = True
        self.thread.join(timeout)


def start(path: str, host: str = DEFAULT_HOST, port: int = 0, timeout: float = 30.0) -> Running:
    """Serve ``path`` from a background thread (``port`` 0: a free one); returns once it
    accepts connections."""
    import uvicorn

    if port == 0:
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
    server = uvicorn.Server(_config(make_app(path), host, port))
    thread = threading.Thread(target=server.run, name="batchseg-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise BatchsegError(f"the web app did not start on {host}:{port}")
        time.sleep(0.02)
    shown = f"[{host}]" if ":" in host else host
    return Running(f"http://{shown}:{port}", server, thread)
