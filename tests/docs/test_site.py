"""The docs stay true to the code and to the issue's rules (fast checks, no build)."""

from __future__ import annotations

import importlib.util
import re

from tests.helpers.docs_blocks import REPO


def test_readme_is_short_and_keeps_the_two_setup_commands() -> None:
    readme = (REPO / "README.md").read_text().splitlines()
    assert len(readme) <= 200
    assert any(line.startswith("make demo") for line in readme)
    assert any(line.startswith("make test") for line in readme)


def test_store_format_page_specifies_the_current_schema_version() -> None:
    from batchseg.core.meta import SCHEMA_VERSION

    page = (REPO / "docs/reference/store-format.md").read_text()
    assert f"**Store schema version {SCHEMA_VERSION}**" in page
    assert f"This page specifies version {SCHEMA_VERSION};" in page


def test_job_spec_page_lists_every_key_and_no_other() -> None:
    from batchseg.job.spec import PARAM_KEYS, SPEC_KEYS

    page = (REPO / "docs/reference/job-spec.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    listed = {key for row in rows for key in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert listed == {*SPEC_KEYS, "pre", *PARAM_KEYS}


def test_performance_pages_are_dated_and_name_no_commit_or_outside_path() -> None:
    pages = sorted((REPO / "docs/performance").glob("2*.md"))
    assert pages
    for page in pages:
        text = page.read_text()
        date = page.name[:10]
        assert f"**Date:** {date}" in text and "**Machine:**" in text and "**Command:**" in text
        assert not re.search(r"`[0-9a-f]{7,40}`|\bcommit\b", text), page.name
        assert "../" not in re.sub(r"\]\(\.\./[^)]*\)", "", text), page.name  # links are fine
        assert "/tmp/" not in text, page.name


def test_cli_reference_is_generated_from_the_app() -> None:
    """The hook fills the reference page with every command of ``batchseg --help``."""
    spec = importlib.util.spec_from_file_location("docs_hooks", REPO / "docs/hooks.py")
    assert spec and spec.loader
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    page = (REPO / "docs/reference/cli.md").read_text()
    text = hooks.on_page_markdown(page, page=None)
    for command in (
        "run",
        "status",
        "query",
        "objects",
        "mask",
        "evaluate",
        "serve",
        "cluster show",
    ):
        assert f"## `batchseg {command}`" in text
    assert "`--colors FILE.csv`" in text  # an option of run, as --help words it


def test_stale_statements_are_gone() -> None:
    """Issue 26: colours said to be missing, a bare objects folder given to pandas."""
    texts = [(REPO / "README.md").read_text()]
    texts += [p.read_text() for p in (REPO / "docs").rglob("*.md")]
    for text in texts:
        assert "are not there yet" not in text
        assert 'read_parquet("cells.zarr/objects")' not in text
