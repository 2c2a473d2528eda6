"""``batchseg run``: segment a collection (or print its plan with ``--dry-run``)."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from batchseg.cli.cluster_options import (
    ClusterOption,
    GpusOption,
    SchedulerOption,
    ThreadsPerWorkerOption,
    TlsCaFileOption,
    TlsCertOption,
    TlsKeyOption,
    WorkersOption,
)
from batchseg.cli.core import EXIT_OK, app, guard
from batchseg.cli.progress import progress_reporter
from batchseg.cli.text import echo, plural
from batchseg.words import rate_text, size_text

if TYPE_CHECKING:
    from batchseg.job.dryrun import PlanReport


# Options of `batchseg run` (module level, so that the command reads as a list).
SourceOption = Annotated[
    str,
    typer.Argument(
        metavar="INPUT", help="Image folder, glob, manifest (.txt/.csv) or job spec (.toml)."
    ),
]
MethodOption = Annotated[
    str | None,
    typer.Option("--method", "-m", metavar="METHOD", help="Method id, see `batchseg methods`."),
]
OutputOption = Annotated[
    str | None, typer.Option("--output", "-o", metavar="STORE", help="Zarr store to write.")
]
ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param", "-p", metavar="KEY=VALUE", help="Method parameter KEY=VALUE (repeatable)."
    ),
]
PreOption = Annotated[
    list[str] | None,
    typer.Option(
        "--pre",
        metavar="FILTER[:K=V,...]",
        help="Preprocessing before the method, in order (repeatable): gaussian, median, "
        "rescale_intensity, clahe, unsharp_mask; e.g. --pre gaussian:sigma=2 --pre clahe.",
    ),
]
ShardSizeOption = Annotated[
    int | None,
    typer.Option(
        help="Images per task (default: about 8 tasks per worker thread, at most 128, "
        "larger past 1.28e7 images so that a job has at most 100,000 tasks)."
    ),
]
OverwriteOption = Annotated[
    bool | None,
    typer.Option("--overwrite", help="Replace an existing store instead of resuming it."),
]
AppendOption = Annotated[
    bool | None,
    typer.Option(
        "--append",
        help="Add the input's images that the store does not hold yet (same method and "
        "parameters); stored images are kept as they are.",
    ),
]
RetryFailedOption = Annotated[
    bool | None,
    typer.Option(
        "--retry-failed/--no-retry-failed",
        help="On resume, try failed images again (default yes).",
    ),
]
MaxPixelsOption = Annotated[
    int | None, typer.Option(help="Refuse images with more pixels (decompression-bomb guard).")
]
FollowLinksOption = Annotated[
    bool | None,
    typer.Option(
        "--follow-links",
        help="Follow folder symlinks that lead out of the input folder (default: skip them).",
    ),
]
ObjectsOption = Annotated[
    bool | None,
    typer.Option(
        "--objects/--no-objects",
        help="Measure every object into the store's object table (default: on for "
        "skimage.objects, watershed and canny; off for superpixel methods).",
    ),
]
ColorsOption = Annotated[
    str | None,
    typer.Option(
        "--colors",
        metavar="FILE.csv",
        help="Class colours stored with a new store: class,r,g,b or class,#rrggbb.",
    ),
]
IoThreadsOption = Annotated[int | None, typer.Option(help="Decoding threads per task.")]
TileThresholdOption = Annotated[
    int | None,
    typer.Option(
        help="Segment images with more pixels tile by tile (default 67108864 = 8192^2; 0 = never)."
    ),
]
TileSizeOption = Annotated[
    int | None,
    typer.Option(help="Tile side for those images (multiple of 256; default 2048)."),
]
PlanesOption = Annotated[
    str | None,
    typer.Option(
        metavar="z|t|zt",
        help="Segment every plane of a stack as its own image (ids like embryo.tif#t=3,z=12; "
        "t and z columns in the table). A stack without it is refused.",
    ),
]
ChannelsOption = Annotated[
    str | None,
    typer.Option(
        metavar="I|I,J,K|mean",
        help="Channels the method sees: one index (from 0), three as RGB (2,1,0), or mean.",
    ),
]
ProjectOption = Annotated[
    str | None,
    typer.Option(metavar="max|mean", help="Project z-stacks to one plane before segmenting."),
]
AxesOption = Annotated[
    str | None,
    typer.Option(
        metavar="AXES",
        help="Axes of arrays that do not name them (plain Zarr, some TIFFs): e.g. tczyx, zyx, "
        "cyx, yxc.",
    ),
]
MeasureChannelsOption = Annotated[
    str | None,
    typer.Option(
        metavar="all|none",
        help="Per-channel intensities (mean, max, min, integrated) per image and per object "
        "(default: all for multi-channel inputs).",
    ),
]
WeightsOption = Annotated[
    str | None,
    typer.Option(help="Semantic: torchvision weights name (DEFAULT, ...) or state_dict file."),
]
ModelOption = Annotated[str | None, typer.Option(help="Semantic: TorchScript model file.")]
ClassesOption = Annotated[
    str | None, typer.Option(help="Semantic: file with one class name per line.")
]
BatchSizeOption = Annotated[int | None, typer.Option(help="Semantic: images per forward pass.")]
PrecisionOption = Annotated[str | None, typer.Option(help="Semantic: fp32, fp16 or bf16.")]
DeviceOption = Annotated[str | None, typer.Option(help="Semantic: auto, cpu or cuda.")]
ResizeOption = Annotated[
    str | None, typer.Option(help="Semantic: run the model at H,W (logits upsampled back).")
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Print the plan (no pixel work) and exit.")
]
AsJsonOption = Annotated[bool, typer.Option("--json", help="With --dry-run: JSON output.")]


@app.command()
def run(
    source: SourceOption,
    method: MethodOption = None,
    output: OutputOption = None,
    param: ParamOption = None,
    pre: PreOption = None,
    workers: WorkersOption = None,
    threads_per_worker: ThreadsPerWorkerOption = None,
    scheduler: SchedulerOption = None,
    cluster: ClusterOption = None,
    shard_size: ShardSizeOption = None,
    overwrite: OverwriteOption = None,
    append: AppendOption = None,
    retry_failed: RetryFailedOption = None,
    max_pixels: MaxPixelsOption = None,
    follow_links: FollowLinksOption = None,
    objects: ObjectsOption = None,
    colors: ColorsOption = None,
    io_threads: IoThreadsOption = None,
    tile_threshold: TileThresholdOption = None,
    tile_size: TileSizeOption = None,
    planes: PlanesOption = None,
    channels: ChannelsOption = None,
    project: ProjectOption = None,
    axes: AxesOption = None,
    measure_channels: MeasureChannelsOption = None,
    weights: WeightsOption = None,
    model: ModelOption = None,
    classes: ClassesOption = None,
    batch_size: BatchSizeOption = None,
    precision: PrecisionOption = None,
    device: DeviceOption = None,
    resize: ResizeOption = None,
    gpus: GpusOption = None,
    tls_ca_file: TlsCaFileOption = None,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    dry_run: DryRunOption = False,
    as_json: AsJsonOption = False,
) -> None:
    """Segment a collection into a Zarr store (resumes an existing store by default)."""
    options = dict(locals())
    source, dry_run, as_json = options.pop("source"), options.pop("dry_run"), options.pop("as_json")
    code = guard(lambda: _run(source, _flags(options), dry_run=dry_run, as_json=as_json))
    raise typer.Exit(code)


#: ``run`` options that are parameters of the semantic methods.
_SEMANTIC = ("weights", "model", "classes", "batch_size", "precision", "device", "resize")


def _flags(options: dict[str, Any]) -> dict[str, Any]:
    """The job-spec overrides given by ``run``'s options (None: not given)."""
    semantic = {k: options.pop(k) for k in _SEMANTIC}
    given = {k: v for k, v in semantic.items() if v is not None}
    options["params"] = {**given, **dict(_params(options.pop("param")))} or None
    options["pre"] = options.get("pre") or None  # not given: the job spec's chain stays
    return options


def _params(items: list[str] | None) -> Iterator[tuple[str, str]]:
    if not items:
        return  # (no import of the job layer yet: the fork server starts first)
    from batchseg.job.spec import parse_param

    for item in items:
        yield parse_param(item)


def _may_start_local_cluster(source: str, flags: dict[str, Any]) -> bool:
    """Whether this run will likely start an embedded CPU cluster, judged cheaply before the
    slow imports: no scheduler, other profile or GPUs in the flags or the job file, and a new
    store or ``--overwrite`` (a resume may find nothing to do and start no cluster)."""
    data: dict[str, Any] = {}
    if source.lower().endswith(".toml"):
        try:
            with open(source, "rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError):
            return False  # the real parse reports it
    cluster = data.get("cluster")
    table: dict[str, Any] = cluster if isinstance(cluster, dict) else {}
    local = table.get("profile", "local") == "local" and flags.get("cluster") in (None, "local")
    remote = flags.get("scheduler") or data.get("scheduler") or table.get("address")
    gpus = flags.get("gpus") or data.get("gpus") or table.get("gpus")
    if not local or remote or gpus:
        return False
    output = flags.get("output") or data.get("output")
    overwrite = (
        flags.get("overwrite") if flags.get("overwrite") is not None else data.get("overwrite")
    )
    return bool(overwrite) or output is None or not os.path.exists(str(output))


def _run(source: str, flags: dict[str, Any], *, dry_run: bool, as_json: bool) -> int:
    if not dry_run and _may_start_local_cluster(source, flags):
        from batchseg.cluster import forkserver

        forkserver.start()  # its imports overlap the launcher's (below) until the cluster starts
    if dry_run:
        from batchseg.job.dryrun import plan_job
        from batchseg.job.spec import resolve_spec

        report = plan_job(resolve_spec(source, flags))
        if as_json:
            typer.echo(json.dumps(report, indent=2))  # JSON escapes control characters
        else:
            _print_plan(report)
        return EXIT_OK
    from batchseg import api_jobs

    with progress_reporter("segmenting") as on_progress:
        result = api_jobs.run(source, **flags, on_progress=on_progress)
    counts = (
        f"{result.done} done, {result.failed} failed, {result.pending} pending "
        f"of {plural(result.images, 'image')}"
    )
    if result.nothing_to_do:
        echo(f"{result.store}: nothing to do: {counts}")
    else:
        echo(
            f"{result.store}: {counts}; {result.processed} processed in {result.seconds:.1f} s "
            f"({rate_text(result.processed, result.seconds)})"
        )
    if result.added:
        echo(f"{result.store}: appended {plural(result.added, 'new image')}")
    if result.gone:
        echo(
            f"{result.store}: {plural(result.gone, 'stored image')} no longer in the input "
            "(kept in the store)"
        )
    if result.failed:
        echo(f"see failures: batchseg status {result.store}", err=True)
    return result.exit_code


def _print_plan(r: PlanReport) -> None:
    objects = "; object tables on" if r["objects"] else ""
    what = "append to" if r.get("append") else "plan for"
    echo(f"{what} {r['output']}: {r['method']} {r['params']}{objects}")
    echo(
        f"  {plural(r['images'], 'image')} ({plural(r['headers_read'], 'header')} read, "
        f"{r['unreadable_headers']} unreadable) in {plural(r['buckets'], 'shape bucket')}"
    )
    for b in r["largest_buckets"]:
        echo(f"    {b['shape'][0]}x{b['shape'][1]}: {plural(b['images'], 'image')}")
        for axes, files in (b.get("axes") or {}).items():
            echo(f"      axes {axes}: {plural(files, 'file')}")
    if "channels" in r:
        names = ", ".join(r["channels"]) or "none"
        echo(f"  channels measured per image and object: {names}")
    echo(
        f"  {plural(r['tasks'], 'task')} of <= {plural(r['shard_size'], 'image')} "
        f"({plural(r['table_rows'], 'table row')})"
    )
    echo(
        f"  labels {r['label_bytes_uncompressed'] / 1e9:.3f} GB uncompressed "
        f"(compressed typically 15-60x smaller, see README), statistics "
        f"{size_text(r['stats_bytes_uncompressed'])}"
    )
    if r["existing_store"]:
        e = r["existing_store"]
        if e["same_job"]:
            what = "resumable"
        elif e.get("appendable"):
            what = "same method and parameters, other images: --append adds them"
        else:
            what = "ANOTHER job: refused without --overwrite"
        echo(
            f"  existing store ({what}): {e['done']} done, {e['failed']} failed, "
            f"{e['pending']} pending"
        )
        if "new" in e:
            _print_append(e.get("new", 0), e.get("stored", 0), e.get("gone", []))
    echo(f"  planned in {r['plan_seconds']:.2f} s")


def _print_append(new: int, stored: int, gone: list[str], shown: int = 20) -> None:
    """The ``--append`` part of a dry run: new, stored and gone images (the first gone ids)."""
    echo(
        f"  append: {plural(new, 'new image')}, {stored - len(gone)} already stored, "
        f"{plural(len(gone), 'stored image')} no longer in the input (kept)"
    )
    for image_id in gone[:shown]:
        echo(f"    gone: {image_id}")
    if len(gone) > shown:
        echo(f"    ... and {len(gone) - shown} more (--json lists every one)")
