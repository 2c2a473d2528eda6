"""A read-only local web app to browse and query a store (``batchseg serve``).

Starlette on uvicorn, imported lazily: without them :func:`require` raises one line naming
``pip install 'batchseg[serve]'``. Modules: :mod:`~batchseg.serve.state` (the open store and
its cached table columns), :mod:`~batchseg.serve.api` (routes), :mod:`~batchseg.serve.page`
(the page), :mod:`~batchseg.serve.hosts` (the ``Host`` check), :mod:`~batchseg.serve.redact`
(no absolute paths in answers), :mod:`~batchseg.serve.limits` and
:mod:`~batchseg.serve.protocol` (connection limit, header and body timeouts). The app never
writes to the store.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from batchseg.errors import BatchsegError
from batchseg.serve.hosts import allowed_hosts, is_loopback_name
from batchseg.serve.limits import Limits

log = logging.getLogger(__name__)

__all__ = ["Limits", "Running", "is_loopback", "make_app", "require", "serve_app", "start"]

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8765
#: The limits a server holds to unless told otherwise.
DEFAULT_LIMITS = Limits()


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


def make_app(
    path: str,
    *,
    bind: str = DEFAULT_HOST,
    hosts: Iterable[str] = (),
    show_paths: bool = False,
    **kwargs: Any,
) -> Any:
    """The Starlette app for the store at ``path`` (see :func:`batchseg.serve.api.make_app`):
    it answers requests for the loopback names, ``bind`` and ``hosts``; absolute paths only
    with ``show_paths``."""
    require()
    from batchseg.serve.api import make_app as build

    allowed = allowed_hosts(bind, hosts)
    return build(path, hosts=allowed, show_paths=show_paths, **kwargs)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (127.0.0.0/8, ::1 or localhost)."""
    return is_loopback_name(host)


def _config(app: Any, host: str, port: int, limits: Limits) -> Any:
    import uvicorn

    from batchseg.serve.protocol import protocol_class

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        http=protocol_class(limits),
        ws="none",
        timeout_keep_alive=max(1, round(limits.keep_alive)),
    )


def serve_app(
    app: Any, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, limits: Limits = DEFAULT_LIMITS
) -> None:
    """Serve an app of :func:`make_app` until interrupted (blocks), within ``limits``."""
    import uvicorn

    uvicorn.Server(_config(app, host, port, limits)).run()


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


def start(
    path: str,
    host: str = DEFAULT_HOST,
    port: int = 0,
    timeout: float = 30.0,
    *,
    limits: Limits = DEFAULT_LIMITS,
    hosts: Iterable[str] = (),
    show_paths: bool = False,
) -> Running:
    """Serve ``path`` from a background thread (``port`` 0: a free one); returns once it
    accepts connections. ``limits``, ``hosts`` and ``show_paths`` as for :func:`serve_app`
    and :func:`make_app`."""
    import uvicorn

    if port == 0:
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
    app = make_app(path, bind=host, hosts=hosts, show_paths=show_paths)
    server = uvicorn.Server(_config(app, host, port, limits))
    thread = threading.Thread(target=server.run, name="batchseg-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise BatchsegError(f"the web app did not start on {host}:{port}")
        time.sleep(0.02)
    shown = f"[{host}]" if ":" in host else host
    return Running(f"http://{shown}:{port}", server, thread)
