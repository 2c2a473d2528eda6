"""The ``batchseg`` command line: thin commands, errors turned into exit codes at the edge.

Exit codes: 0 success; 1 the job could not run; 2 usage error; 3 some images failed.
One module per command group registers its commands on :data:`app` (in help order).
"""

from __future__ import annotations

from batchseg.cli import cluster as _cluster_commands  # noqa: F401 - `cluster show`
from batchseg.cli import evaluate as _evaluate_commands  # noqa: F401 - `evaluate`
from batchseg.cli import export as _export_commands  # noqa: F401 - `mask`, `export`
from batchseg.cli import inspect as _inspect_commands  # noqa: F401 - `status`, `query`, `stats`
from batchseg.cli import labels_import as _import_commands  # noqa: F401 - `import`
from batchseg.cli import misc as _misc_commands  # noqa: F401 - `methods`, `demo-data`
from batchseg.cli import objects as _objects_commands  # noqa: F401 - `objects`
from batchseg.cli import panoptic as _panoptic_commands  # noqa: F401 - `panoptic`
from batchseg.cli import report as _report_commands  # noqa: F401 - `report`
from batchseg.cli import run as _run_commands  # noqa: F401 - registers `run`
from batchseg.cli import serve as _serve_commands  # noqa: F401 - `serve`
from batchseg.cli import verify as _verify_commands  # noqa: F401 - `verify`
from batchseg.cli.core import (
    EXIT_BROKEN_PIPE,
    EXIT_ERROR,
    EXIT_FAILED_IMAGES,
    EXIT_OK,
    EXIT_USAGE,
    app,
    quiet_broken_pipe,
)

#: Commands in the order ``batchseg --help`` lists them (groups such as ``cluster`` follow).
_HELP_ORDER = (
    "run",
    "methods",
    "status",
    "query",
    "objects",
    "panoptic",
    "import",
    "evaluate",
    "mask",
    "export",
    "stats",
    "report",
    "serve",
    "verify",
    "demo-data",
)


def _help_position(name: str) -> int:
    """Position in ``--help``: the listed commands first, any other after them."""
    return _HELP_ORDER.index(name) if name in _HELP_ORDER else len(_HELP_ORDER)


app.registered_commands.sort(  # a stable sort: unlisted commands keep their order
    key=lambda c: _help_position(c.name or getattr(c.callback, "__name__", "").replace("_", "-"))
)

__all__ = ["EXIT_ERROR", "EXIT_FAILED_IMAGES", "EXIT_OK", "EXIT_USAGE", "app", "main"]


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BrokenPipeError:  # output cut short outside a command (help text piped to head)
        quiet_broken_pipe()
        raise SystemExit(EXIT_BROKEN_PIPE) from None


if __name__ == "__main__":  # pragma: no cover
    main()
