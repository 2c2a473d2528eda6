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
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME",
            help="Another name the app may be reached by (Host header; repeatable). Loopback "
            "names and the --host address are always answered, any other name refused.",
        ),
    ] = None,
    show_paths: Annotated[
        bool,
        typer.Option(
            "--show-paths", help="Show where the store and images live (uri column, full paths)."
        ),
    ] = False,
    max_connections: Annotated[
        int, typer.Option(help="Connections held open at once; more are answered 503.")
    ] = 64,
    timeout: Annotated[
        float,
        typer.Option(help="Seconds a request's headers, and then its body, may take to arrive."),
    ] = 10.0,
) -> None:
    """Browse and query a store in a web browser: a read-only local app with a JSON API."""
    hosts = list(allowed_host or [])
    guard(lambda: _serve(store_path, host, port, hosts, show_paths, max_connections, timeout))


def _serve(
    path: str,
    host: str,
    port: int,
    hosts: list[str],
    show_paths: bool,
    max_connections: int,
    timeout: float,
) -> None:
    from batchseg import serve as web
    from batchseg.errors import UsageError

    if not 0 <= port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    limits = web.Limits(max_connections, header_timeout=timeout, body_timeout=timeout)
    web.require()
    # opens the store first: a bad path is one line, no server
    app_ = web.make_app(path, bind=host, hosts=hosts, show_paths=show_paths)
    shown = f"[{host}]" if ":" in host else host
    if web.is_loopback(host):
        reach = "loopback only: other machines cannot connect (--host 0.0.0.0 opens it)"
    else:
        reach = f"listening on {host}: reachable from the network, with no authentication"
        if host in ("0.0.0.0", "::") and not hosts:
            reach += "; name this machine's names or addresses with --allowed-host"
    echo(f"serving {printable(path)} read-only at http://{shown}:{port}/ ({reach}); Ctrl-C stops")
    web.serve_app(app_, host, port, limits)
