"""``batchseg methods`` and ``batchseg demo-data``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from batchseg.cli.core import app, guard
from batchseg.cli.text import echo


@app.command()
def methods(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List every method with its parameters, defaults and output kind."""
    guard(lambda: _methods(as_json))


def _methods(as_json: bool) -> None:
    from batchseg.methods import all_methods
    from batchseg.methods.base import describe

    info = describe(all_methods())
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    for m in info:
        output = "class map" if m["kind"] == "classes" else "region labels"
        typer.echo(f"{m['id']}  [{m['family']}, {output}]  {m['description']}")
        if m["classes"]:
            typer.echo(
                f"    classes: {', '.join(m['classes'][:12])}{' ...' if len(m['classes']) > 12 else ''}"
            )
        for p in m["params"]:
            choices = f" one of {p['choices']}" if p["choices"] else ""
            typer.echo(
                f"    {p['name']} ({p['type']}, default {p['default']!r}){choices}: {p['help']}"
            )


@app.command("demo-data")
def demo_data(
    folder: Annotated[Path, typer.Argument(help="Folder to fill with the sample collection.")],
    count: Annotated[int, typer.Option(help="Number of images.")] = 240,
) -> None:
    """Make an offline sample collection from scikit-image's bundled pictures."""
    from batchseg.demo import make_collection

    n = guard(lambda: make_collection(folder, count))
    echo(f"wrote {n} images to {folder}")
