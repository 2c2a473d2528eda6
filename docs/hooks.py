"""MkDocs hook: the command-line reference, generated from the Typer app at build time.

``docs/reference/cli.md`` holds the marker ``<!-- cli-reference -->``; this hook replaces it
with the Markdown that typer's own generator (``typer.cli.get_docs_for_click``) makes from
``batchseg.cli.app``, so the reference can never drift from ``batchseg --help``.
"""

from __future__ import annotations

from typing import Any

MARKER = "<!-- cli-reference -->"


def cli_markdown() -> str:
    """The whole command line as Markdown, commands as level-2 headings."""
    import typer
    import typer.main
    from typer.cli import get_docs_for_click

    from batchseg.cli import app

    command = typer.main.get_command(app)
    text = get_docs_for_click(
        obj=command, ctx=typer.Context(command), name="batchseg", indent=1, title="`batchseg`"
    )
    return text.strip() + "\n"


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Fill the CLI reference page's marker."""
    if MARKER in markdown:
        return markdown.replace(MARKER, cli_markdown())
    return markdown
