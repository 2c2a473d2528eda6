"""``batchseg methods`` and ``batchseg demo-data``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from batchseg.cli.core import app, guard
from batchseg.cli.text import echo, plural
from batchseg.core.kinds import Kind


@app.command()
def methods(
    method_id: Annotated[
        str | None,
        typer.Argument(metavar="[METHOD]", help="Show only this method (e.g. skimage.slic)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List every method (or one) with its parameters, defaults, output kind and the package
    it comes from (installed plug-ins; a function's id is module:function)."""
    guard(lambda: _methods(method_id, as_json))


def _methods(method_id: str | None, as_json: bool) -> None:
    from batchseg.methods import all_methods, get_method
    from batchseg.methods.base import describe

    chosen = [get_method(method_id)] if method_id is not None else all_methods()
    # the class names of pretrained weights need torch: only for JSON or one method
    full = as_json or method_id is not None
    info = [
        describe([m], classes=full or m.family not in ("semantic", "instance"))[0] for m in chosen
    ]
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    for m in info:
        output = {"classes": "class map", "instances": "instance labels"}.get(
            m["kind"], "region labels"
        )
        source = f"  (from {m['package']})" if m["package"] != "batchseg" else ""
        typer.echo(f"{m['id']}  [{m['family']}, {output}]  {m['description']}{source}")
        if m["classes"]:
            more = " ..." if len(m["classes"]) > 12 else ""
            typer.echo(f"    classes: {', '.join(m['classes'][:12])}{more}")
        elif Kind(m["kind"]).class_map and not full:
            typer.echo(f"    classes: see `batchseg methods {m['id']}`")
        for p in m["params"]:
            choices = f" one of {p['choices']}" if p["choices"] else ""
            typer.echo(
                f"    {p['name']} ({p['type']}, default {p['default']!r}){choices}: {p['help']}"
            )


@app.command("demo-data")
def demo_data(
    folder: Annotated[Path, typer.Argument(help="Folder to fill with the sample collection.")],
    count: Annotated[int, typer.Option(help="Number of images.")] = 36,
) -> None:
    """Make an offline sample collection from scikit-image's bundled pictures."""
    from batchseg.demo import make_collection

    n = guard(lambda: make_collection(folder, count))
    echo(f"wrote {plural(n, 'image')} to {folder}")
