"""``batchseg serve``: a read-only local web app to browse and query a store."""

from __future__ import annotations

from typing import Annotated

import typer

from batchseg.cli.core import StoreArgument, app, guard
from batchseg.cli.text import echo, printable


@app.command()
def serve(
    store_path: StoreArgument,
    host: Annotated[
        str, typer.Option(help="Address to listen on (default: loopback, this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
) -> None:
    """Browse and query a store in a web browser: a read-only local app with a JSON API."""
    guard(lambda: _serve(store_path, host, port))


def _serve(path: str, host: str, port: int) -> None:
    from batchseg import serve as web
    from batchseg.errors import UsageError

    if not 0 <= port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    web.require()
    app_ = web.make_app(path)  # opens the store first: a bad path is one line, no server
    shown = f"[{host}]" if ":" in host else host
    if web.is_loopback(host):
        reach = "loopback only: other machines cannot connect (--host 0.0.0.0 opens it)"
    else:
        reach = f"listening on {host}: reachable from the network, with no authentication"
    echo(f"serving {printable(path)} read-only at http://{shown}:{port}/ ({reach}); Ctrl-C stops")
    web.serve_app(app_, host, port)
