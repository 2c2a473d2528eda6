"""The ``batchseg`` command line: thin commands, errors turned into exit codes at the edge.

Exit codes: 0 success; 1 the job could not run; 2 usage error; 3 some images failed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from batchseg.cluster.profiles import QUIET_DISTRIBUTED
from batchseg.errors import BatchsegError, UsageError

log = logging.getLogger("batchseg")
app = typer.Typer(
    name="batchseg",
    help="Segment whole image collections with Dask into a queryable Zarr v3 store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"verbose": False}
T = TypeVar("T")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_FAILED_IMAGES = 0, 1, 2, 3


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
    _state["verbose"] = verbose
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("batchseg")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    if not verbose and "DASK_LOGGING__DISTRIBUTED" not in os.environ:
        # read by dask.config when distributed is imported, here and in local worker processes;
        # the marker tells batchseg.cluster.connect to give batch-job workers their usual log level
        os.environ["DASK_LOGGING__DISTRIBUTED"] = "error"
        os.environ[QUIET_DISTRIBUTED] = "1"


@contextmanager
def _errors() -> Iterator[None]:
    """Turn domain errors into one clear line and an exit code."""
    try:
        yield
    except typer.Exit:
        raise
    except UsageError as exc:
        _fail(exc, EXIT_USAGE)
    except BatchsegError as exc:
        _fail(exc, EXIT_ERROR)
    except KeyboardInterrupt:
        typer.echo("error: interrupted; rerun the same command to resume", err=True)
        raise typer.Exit(130) from None
    except Exception as exc:  # noqa: BLE001 - the edge of the program
        _fail(exc, EXIT_ERROR, prefix=f"{type(exc).__name__}: ")


def _fail(exc: BaseException, code: int, prefix: str = "") -> None:
    if _state["verbose"]:
        import traceback

        traceback.print_exception(exc)
    message = " ".join(f"{prefix}{exc}".split())
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code) from None


def _guard(fn: Callable[[], T]) -> T:
    with _errors():
        return fn()
    raise AssertionError("unreachable")  # pragma: no cover


@app.command()
def run(
    source: Annotated[
        str, typer.Argument(help="Image folder, glob, manifest (.txt/.csv) or job spec (.toml).")
    ],
    method: Annotated[
        str | None, typer.Option("--method", "-m", help="Method id, see `batchseg methods`.")
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Zarr store to write.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Method parameter KEY=VALUE (repeatable)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes of the embedded cluster (default: one per core)."),
    ] = None,
    threads_per_worker: Annotated[
        int | None, typer.Option(help="Threads per worker process (default 1).")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Attach to an existing Dask scheduler (tcp://host:8786); implies --cluster address."
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            metavar="PROFILE",
            help="Cluster profile: local (default), address, slurm, pbs or kubernetes; "
            "settings in the job spec's [cluster] table.",
        ),
    ] = None,
    shard_size: Annotated[
        int | None,
        typer.Option(
            help="Images per task (default: about 8 tasks per worker thread, at most 128)."
        ),
    ] = None,
    overwrite: Annotated[
        bool | None,
        typer.Option("--overwrite", help="Replace an existing store instead of resuming it."),
    ] = None,
    retry_failed: Annotated[
        bool | None,
        typer.Option(
            "--retry-failed/--no-retry-failed",
            help="On resume, try failed images again (default yes).",
        ),
    ] = None,
    max_pixels: Annotated[
        int | None, typer.Option(help="Refuse images with more pixels (decompression-bomb guard).")
    ] = None,
    io_threads: Annotated[int | None, typer.Option(help="Decoding threads per task.")] = None,
    tile_threshold: Annotated[
        int | None,
        typer.Option(
            help="Segment images with more pixels tile by tile (default 67108864 = 8192^2; "
            "0 = never)."
        ),
    ] = None,
    tile_size: Annotated[
        int | None,
        typer.Option(help="Tile side for those images (multiple of 256; default 2048)."),
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option(help="Semantic: torchvision weights name (DEFAULT, ...) or state_dict file."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Semantic: TorchScript model file.")] = None,
    classes: Annotated[
        str | None, typer.Option(help="Semantic: file with one class name per line.")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Semantic: images per forward pass.")
    ] = None,
    precision: Annotated[str | None, typer.Option(help="Semantic: fp32, fp16 or bf16.")] = None,
    device: Annotated[str | None, typer.Option(help="Semantic: auto, cpu or cuda.")] = None,
    resize: Annotated[
        str | None, typer.Option(help="Semantic: run the model at H,W (logits upsampled back).")
    ] = None,
    gpus: Annotated[
        int | None, typer.Option(help="Embedded cluster: one worker process per GPU.")
    ] = None,
    tls_ca_file: Annotated[
        str | None,
        typer.Option(help="TLS: CA certificate (PEM) that signs the cluster's certificates."),
    ] = None,
    tls_cert: Annotated[
        str | None, typer.Option(help="TLS: this client's certificate (PEM); with --tls-key.")
    ] = None,
    tls_key: Annotated[
        str | None, typer.Option(help="TLS: private key (PEM) of --tls-cert.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan (no pixel work) and exit.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --dry-run: JSON output.")] = False,
) -> None:
    """Segment a collection into a Zarr store (resumes an existing store by default)."""
    semantic = {
        "weights": weights,
        "model": model,
        "classes": classes,
        "batch_size": batch_size,
        "precision": precision,
        "device": device,
        "resize": resize,
    }
    code = _guard(
        lambda: _run(
            source,
            {
                "method": method,
                "output": output,
                "params": {
                    **{k: v for k, v in semantic.items() if v is not None},
                    **dict(_params(param)),
                }
                or None,
                "gpus": gpus,
                "workers": workers,
                "threads_per_worker": threads_per_worker,
                "scheduler": scheduler,
                "cluster": cluster,
                "shard_size": shard_size,
                "overwrite": overwrite,
                "retry_failed": retry_failed,
                "max_pixels": max_pixels,
                "io_threads": io_threads,
                "tile_threshold": tile_threshold,
                "tile_size": tile_size,
                "tls_ca_file": tls_ca_file,
                "tls_cert": tls_cert,
                "tls_key": tls_key,
            },
            dry_run=dry_run,
            as_json=as_json,
        )
    )
    raise typer.Exit(code)


def _params(items: list[str] | None) -> Iterator[tuple[str, str]]:
    from batchseg.job.spec import parse_param

    for item in items or []:
        yield parse_param(item)


def _run(source: str, flags: dict[str, Any], *, dry_run: bool, as_json: bool) -> int:
    from batchseg.job.run import plan_job, run_job
    from batchseg.job.spec import build_spec, load_spec

    if source.lower().endswith(".toml"):
        spec = load_spec(source, flags)
    else:
        spec = build_spec({"input": source}, flags)
    if dry_run:
        report = plan_job(spec)
        if as_json:
            typer.echo(json.dumps(report, indent=2))
        else:
            _print_plan(report)
        return EXIT_OK
    with _progress() as on_progress:
        result = run_job(spec, on_progress=on_progress)
    typer.echo(
        f"{result.store}: {result.done} done, {result.failed} failed, {result.pending} pending "
        f"of {result.images} images; {result.processed} processed in {result.seconds:.1f} s "
        f"({result.images_per_second:.1f} images/s)"
    )
    if result.failed:
        typer.echo(f"see failures: batchseg status {result.store}", err=True)
    return result.exit_code


def _print_plan(r: dict[str, Any]) -> None:
    typer.echo(f"plan for {r['output']}: {r['method']} {r['params']}")
    typer.echo(
        f"  {r['images']} images ({r['headers_read']} headers read, "
        f"{r['unreadable_headers']} unreadable) in {r['buckets']} shape buckets"
    )
    for b in r["largest_buckets"]:
        typer.echo(f"    {b['shape'][0]}x{b['shape'][1]}: {b['images']} images")
    typer.echo(
        f"  {r['tasks']} tasks of <= {r['shard_size']} images ({r['table_rows']} table rows)"
    )
    typer.echo(
        f"  labels {r['label_bytes_uncompressed'] / 1e9:.3f} GB uncompressed "
        f"(compressed typically 15-60x smaller, see README), statistics "
        f"{r['stats_bytes_uncompressed'] / 1e6:.1f} MB"
    )
    if r["existing_store"]:
        e = r["existing_store"]
        what = "resumable" if e["same_job"] else "ANOTHER job: refused without --overwrite"
        typer.echo(
            f"  existing store ({what}): {e['done']} done, {e['failed']} failed, "
            f"{e['pending']} pending"
        )
    typer.echo(f"  planned in {r['plan_seconds']:.2f} s")


@contextmanager
def _progress() -> Iterator[Callable[[int, int, int], None]]:
    """A rich progress bar on a terminal, periodic log lines otherwise."""
    start = time.perf_counter()
    if sys.stderr.isatty():
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("segmenting"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}"),
            TextColumn("{task.fields[rate]:.1f} img/s"),
            TimeRemainingColumn(),
            transient=False,
        ) as bar:
            task = bar.add_task("run", total=None, failed=0, rate=0.0)

            def update(done: int, failed: int, total: int) -> None:
                rate = (done + failed) / max(1e-9, time.perf_counter() - start)
                bar.update(task, completed=done + failed, total=total, failed=failed, rate=rate)

            yield update
        return
    last = [0.0]

    def log_line(done: int, failed: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] < 10 and done + failed < total:
            return
        last[0] = now
        elapsed = now - start
        rate = (done + failed) / max(1e-9, elapsed)
        eta = (total - done - failed) / rate if rate > 0 else float("inf")
        log.info(
            "progress: %d/%d done, %d failed, %.1f images/s, ETA %.0f s",
            done + failed,
            total,
            failed,
            rate,
            eta,
        )

    yield log_line


cluster_app = typer.Typer(
    help="Cluster profiles: what a job's [cluster] table or --cluster would start.",
    no_args_is_help=True,
)
app.add_typer(cluster_app, name="cluster")


@cluster_app.command("show")
def cluster_show(
    spec_path: Annotated[str, typer.Argument(metavar="JOB.toml", help="A job spec.")],
    cluster: Annotated[
        str | None,
        typer.Option("--cluster", metavar="PROFILE", help="Override the spec's profile."),
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Existing scheduler (implies --cluster address).")
    ] = None,
) -> None:
    """Print the batch job script (slurm, pbs) or pod spec (kubernetes) that `run` would submit."""
    code = _guard(lambda: _cluster_show(spec_path, cluster, scheduler))
    raise typer.Exit(code)


def _cluster_show(path: str, profile_flag: str | None, scheduler: str | None) -> int:
    from batchseg.job.spec import load_spec

    spec = load_spec(path, {"cluster": profile_flag, "scheduler": scheduler})
    from batchseg.cluster.connect import TLSFiles, describe

    tls = TLSFiles.from_options(spec.tls_ca_file, spec.tls_cert, spec.tls_key)
    typer.echo(describe(spec.profile, tls).rstrip("\n"))
    return EXIT_OK


@app.command()
def methods(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List every method with its parameters, defaults and output kind."""
    _guard(lambda: _methods(as_json))


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


@app.command()
def status(
    store_path: Annotated[str, typer.Argument(metavar="STORE", help="A batchseg Zarr store.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Done / failed / pending counts and the failed images with their errors."""
    code = _guard(lambda: _status(store_path, as_json))
    raise typer.Exit(code)


def _status(path: str, as_json: bool) -> int:
    import batchseg

    report = batchseg.open(path).status()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        typer.echo(
            f"{path}: {report['images']} images: {report['done']} done, "
            f"{report['failed']} failed, {report['pending']} pending"
        )
        for f in report["failures"]:
            typer.echo(f"  failed  {f['image_id']}: {f['error']}")
    return EXIT_OK


@app.command()
def query(
    store_path: Annotated[str, typer.Argument(metavar="STORE", help="A batchseg Zarr store.")],
    where: Annotated[
        str | None,
        typer.Option("--where", "-w", help="Boolean expression over the statistics columns."),
    ] = None,
    columns: Annotated[
        str | None, typer.Option("--columns", "-c", help="Comma-separated columns (globs allowed).")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n", help="At most N rows.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv or json.")] = "table",
) -> None:
    """Images whose statistics satisfy an expression, e.g. "fraction_road > 0.3"."""
    _guard(lambda: _query(store_path, where, columns, limit, fmt))


def _query(path: str, where: str | None, columns: str | None, limit: int | None, fmt: str) -> None:
    import batchseg
    from batchseg import query as query_lang

    if fmt not in ("table", "csv", "json"):
        raise UsageError(f"--format must be table, csv or json, got {fmt!r}")
    if limit is not None and limit < 0:
        raise UsageError("--limit must be >= 0")
    view = batchseg.open(path)
    available = [c for c in view.columns() if c != "image_id"]
    if columns:
        cols = query_lang.parse_columns(columns, available)
    else:
        cols = ["status"] + [
            c for c in available if c.startswith(("fraction_", "n_regions", "mean_conf"))
        ]
    cols = [c for c in cols if c != "image_id"]
    rows = view.query(where or "height >= 0", columns=cols)
    out = rows if limit is None else rows.head(limit)
    total = view.attrs.get("n_images", len(rows))
    if fmt == "json":
        typer.echo(out.to_json(orient="records", indent=2))
    elif fmt == "csv":
        typer.echo(out.to_csv(index=False), nl=False)
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table(caption=f"{len(out)} of {len(rows)} matching images ({total} in store)")
        for c in out.columns:
            t.add_column(c, overflow="fold")
        for record in out.itertuples(index=False):
            t.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in record])
        Console().print(t)


@app.command()
def mask(
    store_path: Annotated[str, typer.Argument(metavar="STORE", help="A batchseg Zarr store.")],
    image_id: Annotated[str, typer.Argument(help="Image id as listed by `batchseg query`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG file to write.")],
    overlay: Annotated[
        bool, typer.Option("--overlay", help="Blend the mask over the source image.")
    ] = False,
    alpha: Annotated[float, typer.Option(help="Overlay opacity 0-1.")] = 0.5,
    confidence: Annotated[
        bool, typer.Option("--confidence", help="Write the confidence map (semantic) as grey PNG.")
    ] = False,
    level: Annotated[
        int,
        typer.Option(help="Tiled images: pyramid level (each halves the size; 0 = full size)."),
    ] = 0,
) -> None:
    """Write an image's label map as a colour PNG, or as an overlay on the source image."""
    _guard(lambda: _mask(store_path, image_id, output, overlay, alpha, confidence, level))


def _mask(
    path: str,
    image_id: str,
    output: Path,
    overlay: bool,
    alpha: float,
    confidence: bool,
    level: int = 0,
) -> None:
    import numpy as np

    import batchseg
    from batchseg import render
    from batchseg.io import read as readers

    if not 0.0 <= alpha <= 1.0:
        raise UsageError("--alpha must be between 0 and 1")
    view = batchseg.open(path)
    if confidence:
        render.save_png(view.confidence(image_id), str(output))
        typer.echo(f"wrote {output}")
        return
    if level < 0 or (level and confidence):
        raise UsageError("--level must be >= 0 (and is for label maps only)")
    labels = view.mask(image_id, level=level)
    colours = np.asarray(view.colours, dtype=np.uint8) if view.colours else None
    if overlay and level:
        from batchseg.io.windowed import read_strided

        image = read_strided(view.uri(image_id), 1 << level)
        picture = render.overlay(image, labels, colours, kind=view.kind, alpha=alpha)
    elif overlay:
        image = readers.read_image(view.uri(image_id), max_pixels=None)
        picture = render.overlay(image, labels, colours, kind=view.kind, alpha=alpha)
    else:
        picture = render.colourise(labels, colours, kind=view.kind)
    render.save_png(picture, str(output))
    typer.echo(f"wrote {output}")


@app.command()
def export(
    store_path: Annotated[str, typer.Argument(metavar="STORE", help="A batchseg Zarr store.")],
    image_id: Annotated[str, typer.Argument(help="Image id as listed by `batchseg query`.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Image to write (OUT.zarr or OUT.ome.zarr).")
    ],
    fmt: Annotated[str, typer.Option("--format", "-f", help="Export format: ome-zarr.")] = (
        "ome-zarr"
    ),
    levels: Annotated[
        int | None,
        typer.Option(help="Pyramid levels, factor 2 each (default: down to <= 256 px, at most 8)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output.")
    ] = False,
) -> None:
    """Write one image and its labels as OME-Zarr (NGFF 0.5) pyramids for viewers."""
    _guard(lambda: _export(store_path, image_id, output, fmt, levels, overwrite))


def _export(
    path: str, image_id: str, output: Path, fmt: str, levels: int | None, overwrite: bool
) -> None:
    from batchseg.export.ome_zarr import export_ome_zarr

    if fmt != "ome-zarr":
        raise UsageError(f"--format must be ome-zarr, got {fmt!r}")
    result = export_ome_zarr(path, image_id, output, levels=levels, overwrite=overwrite)
    shape = "x".join(str(s) for s in result["image_shapes"][0])
    typer.echo(
        f"wrote {output}: image {shape} in {result['levels']} levels, labels "
        f"'segmentation' ({result['label_values_listed']} of {result['label_values_total']} "
        "label values listed)"
    )


@app.command()
def stats(
    store_path: Annotated[str, typer.Argument(metavar="STORE", help="A batchseg Zarr store.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Dataset summary: images, pixels per class or regions per image, failures, throughput."""
    _guard(lambda: _stats(store_path, as_json))


def _stats(path: str, as_json: bool) -> None:
    import batchseg

    s = batchseg.open(path).summary()
    if as_json:
        typer.echo(json.dumps(s, indent=2))
        return
    typer.echo(f"{path}: method {s['method']} {s['params']}")
    typer.echo(
        f"images {s['images']} ({s['done']} done, {s['failed']} failed, {s['pending']} pending), "
        f"{s['shapes']} shapes, {s['pixels']} pixels"
    )
    if "classes" in s:
        for name, c in s["classes"].items():
            typer.echo(
                f"  {name:>20}: {c['fraction']:7.2%} of pixels, in {c['images_with_class']} images"
            )
        if s.get("mean_confidence") is not None:
            typer.echo(f"  mean confidence {s['mean_confidence']:.3f}")
    else:
        r = s["regions"]
        typer.echo(f"  regions: {r['total']} in all")
        if r["per_image"]:
            d = r["per_image"]
            typer.echo(
                f"  regions per image: min {d['min']:.0f}, median {d['median']:.0f}, "
                f"mean {d['mean']:.1f}, max {d['max']:.0f}"
            )
    if s["seconds_per_image"]:
        typer.echo(f"  seconds per image (median): {s['seconds_per_image']['median']:.4f}")
    if s.get("runs"):
        last = s["runs"][-1]
        typer.echo(
            f"  last run: {last['processed']} images in {last['seconds']:.1f} s "
            f"({last['images_per_second']:.2f} images/s)"
        )


@app.command("demo-data")
def demo_data(
    folder: Annotated[Path, typer.Argument(help="Folder to fill with the sample collection.")],
    count: Annotated[int, typer.Option(help="Number of images.")] = 240,
) -> None:
    """Make an offline sample collection from scikit-image's bundled pictures."""
    from batchseg.demo import make_collection

    n = _guard(lambda: make_collection(folder, count))
    typer.echo(f"wrote {n} images to {folder}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
