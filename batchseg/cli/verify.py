"""``batchseg verify``: check that every done image has its data; mark the damaged ones."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from batchseg.cli.core import EXIT_FAILED_IMAGES, EXIT_OK, StoreArgument, app, guard
from batchseg.cli.text import echo, failure_lines


@app.command()
def verify(
    store_path: StoreArgument,
    mark: Annotated[
        bool,
        typer.Option(
            "--mark/--no-mark",
            help="Set damaged images back to pending, so the next run segments them again.",
        ),
    ] = True,
    show_all: Annotated[
        bool, typer.Option("--all", help="List every damaged image (default: grouped by reason).")
    ] = False,
) -> None:
    """Check that every done image has intact data; exit 3 if any is damaged (see --mark)."""
    code = guard(lambda: verify_store(store_path, mark=mark, show_all=show_all))
    raise typer.Exit(code)


def verify_store(
    path: str, *, mark: bool = True, show_all: bool = False, quiet: bool = False
) -> int:
    """Verify ``path``, print one line per damaged image (grouped when many); the exit code
    (0 clean, 3 damage found). ``quiet`` prints nothing (``status --verify --json``)."""
    from batchseg.store.verify import verify as verify_data

    if mark:  # marking writes the store: not while a launcher runs on it
        from batchseg import store
        from batchseg.store.lock import store_lock

        store.open_group(path, mode="r")  # "no store at ..." before any lock file is made

        with store_lock(path):
            report = verify_data(path, mark=True)
    else:
        report = verify_data(path, mark=False)
    damaged = [(str(image_id), str(reason)) for image_id, reason in report.damaged]
    # a damaged consolidated table is damage until it is rebuilt (nothing stored is lost)
    table_left = bool(report.table_damaged) and not report.table_rebuilt
    if quiet:
        return EXIT_FAILED_IMAGES if damaged or table_left or report.metadata else EXIT_OK
    if report.metadata_recorded:
        echo(f"{path}: recorded the metadata of every array (a store written before the record)")
    for node in report.metadata:
        echo(
            f"{path}: the zarr.json of {node} is not what the store recorded (data type, "
            "chunking or codecs edited); restore it, or rerun the job with --overwrite"
        )
    table_left = table_left or bool(report.metadata)
    if report.table_stale:
        echo(
            f"{path}: the consolidated table did not match the catalogue (rebuilt by the next run)"
        )
    if report.table_damaged:
        echo(
            f"{path}: the consolidated table is damaged: {report.table_damaged}; {_fix(report, mark)}"
        )
    if not damaged:
        found = "no image damaged" if report.table_damaged or report.metadata else "no damage found"
        echo(f"{path}: {report.checked} done images checked, {found}")
        return EXIT_FAILED_IMAGES if table_left else EXIT_OK
    marked = (
        f"; {report.marked} set back to pending, rerun the job to segment them again"
        if report.marked
        else ""
    )
    echo(f"{path}: {report.checked} done images checked, {len(damaged)} damaged{marked}")
    for line in failure_lines(
        damaged, label="damaged", show_all=show_all, command="batchseg verify STORE"
    ):
        echo(line)
    return EXIT_FAILED_IMAGES


def _fix(report: Any, mark: bool) -> str:
    """What became of a damaged consolidated table."""
    if report.table_rebuilt:
        return "rebuilt from the per-shard arrays"
    if mark:
        return "set aside: readers use the per-shard arrays, the next run rebuilds it"
    return "run batchseg verify STORE (without --no-mark) to rebuild it"
