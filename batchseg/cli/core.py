"""The Typer app, logging set-up and the edge where errors become one line and an exit code.

Exit codes: 0 success; 1 the job could not run; 2 usage error; 3 some images failed.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from batchseg.cli.text import PrintableFormatter, echo
from batchseg.cluster.profiles import QUIET_DISTRIBUTED
from batchseg.errors import BatchsegError, UsageError, one_line

log = logging.getLogger("batchseg")
#: The STORE argument of every command that reads a store.
StoreArgument = Annotated[str, typer.Argument(metavar="STORE", help="A batchseg Zarr store.")]


class _Group(TyperGroup):
    """The app's group: every command also accepts ``-v``/``-q`` after its name."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for command in self.commands.values():
            _add_verbosity(command)


app = typer.Typer(
    name="batchseg",
    cls=_Group,
    help="Segment whole image collections with Dask into a queryable Zarr v3 store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain click help: rich markup would eat "[cluster]" and cut long option names at 80
    # columns; click wraps the help text and never truncates an option name
    rich_markup_mode=None,
)
_state = {"verbose": False, "quiet": False}
T = TypeVar("T")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_FAILED_IMAGES = 0, 1, 2, 3
#: Exit code when the reader of stdout went away (128 + SIGPIPE, as a shell reports it).
EXIT_BROKEN_PIPE = 141


def quiet_broken_pipe() -> None:
    """Point stdout at /dev/null so that flushing it at exit raises nothing more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (a test runner's buffer)
        pass


def _version(value: bool) -> None:
    if value:
        from batchseg import __version__

        typer.echo(f"batchseg {__version__}")
        raise typer.Exit()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is now (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


@app.callback()
def main_callback(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logs and tracebacks.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Warnings and errors only.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Segment whole image collections with Dask into a queryable Zarr v3 store."""
    configure_logging(verbose=verbose, quiet=quiet)


def configure_logging(*, verbose: bool, quiet: bool) -> None:
    """Route batchseg's log to stderr at the level ``-v``/``-q`` ask for (``-v`` wins)."""
    _state["verbose"], _state["quiet"] = verbose, quiet
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = _StderrHandler()
    handler.setFormatter(PrintableFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("batchseg")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    if not verbose and "DASK_LOGGING__DISTRIBUTED" not in os.environ:
        # read by dask.config when distributed is imported, here and in local worker processes;
        # the marker tells batchseg.cluster.jobqueue to give batch-job workers their usual log level
        os.environ["DASK_LOGGING__DISTRIBUTED"] = "error"
        os.environ[QUIET_DISTRIBUTED] = "1"
    elif verbose and os.environ.get(QUIET_DISTRIBUTED) == "1":  # -v after the command name
        os.environ.pop("DASK_LOGGING__DISTRIBUTED", None)
        os.environ.pop(QUIET_DISTRIBUTED, None)


def _verbose_after(value: bool) -> None:
    """``-v`` after a command's name: applied on top of what was given before it."""
    if value:
        configure_logging(verbose=True, quiet=bool(_state["quiet"]))


def _quiet_after(value: bool) -> None:
    if value:
        configure_logging(verbose=bool(_state["verbose"]), quiet=True)


def _verbosity_template(
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", callback=_verbose_after, help="Debug logs and tracebacks."),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", callback=_quiet_after, help="Warnings and errors only.")
    ] = False,
) -> None:
    """Only its options are used: every command gets them (see :func:`_add_verbosity`)."""


def _verbosity_options() -> list[Any]:
    """``-v``/``-q`` as options of a command that pass nothing to its function."""
    template = typer.Typer(add_completion=False)
    template.command()(_verbosity_template)
    params = list(typer.main.get_command(template).params)
    for param in params:
        param.expose_value = False
    return params


def _add_verbosity(command: Any) -> None:
    """Give ``command`` (and a group's commands) the global ``-v``/``-q`` options."""
    taken = {opt for p in command.params for opt in getattr(p, "opts", ())}
    command.params.extend(p for p in _verbosity_options() if not taken & set(p.opts))
    for sub in getattr(command, "commands", {}).values():
        _add_verbosity(sub)


@contextmanager
def errors() -> Iterator[None]:
    """Turn domain errors into one clear line and an exit code."""
    try:
        yield
    except typer.Exit:
        raise
    except UsageError as exc:
        _fail(exc, EXIT_USAGE)
    except BatchsegError as exc:
        _fail(exc, EXIT_ERROR)
    except BrokenPipeError:  # `batchseg status STORE | head`: the reader left; end quietly
        quiet_broken_pipe()
        raise typer.Exit(EXIT_BROKEN_PIPE) from None
    except KeyboardInterrupt:
        typer.echo("error: interrupted; rerun the same command to resume", err=True)
        raise typer.Exit(130) from None
    except Exception as exc:  # noqa: BLE001 - the edge of the program
        _fail(exc, EXIT_ERROR)


def _fail(exc: BaseException, code: int) -> None:
    if _state["verbose"]:
        import traceback

        traceback.print_exception(exc)
    echo(f"error: {one_line(exc, limit=2000)}", err=True)
    raise typer.Exit(code) from None


def guard(fn: Callable[[], T]) -> T:
    """``fn()`` with :func:`errors` around it."""
    with errors():
        return fn()
    raise AssertionError("unreachable")  # pragma: no cover
