"""``batchseg evaluate``: score a store against ground truth; ``--show`` prints stored results."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from batchseg.cli.cluster_options import (
    ClusterOption,
    ClusterSpecOption,
    GpusOption,
    SchedulerOption,
    ThreadsPerWorkerOption,
    TlsCaFileOption,
    TlsCertOption,
    TlsKeyOption,
    WorkersOption,
    cluster_flags,
)
from batchseg.cli.core import StoreArgument, app, guard
from batchseg.cli.progress import progress_reporter
from batchseg.cli.text import echo, plural
from batchseg.errors import UsageError
from batchseg.io.read import DEFAULT_MAX_PIXELS

#: Dataset values printed by the text output, in order (those the evaluation has).
SHOWN = (
    "pixel_accuracy",
    "mean_class_accuracy",
    "miou",
    "fw_iou",
    "mean_dice",
    "adapted_rand_error",
    "rand_precision",
    "rand_recall",
    "variation_of_information",
    "vi_split",
    "vi_merge",
    "boundary_precision",
    "boundary_recall",
    "boundary_f",
    "ap",
    "ap50",
    "ap75",
    "ap_small",
    "ap_medium",
    "ap_large",
    "ar100",
    "pq",
    "sq",
    "rq",
    "pq_things",
    "sq_things",
    "rq_things",
    "pq_stuff",
    "sq_stuff",
    "rq_stuff",
)
#: Per-class values printed on one line each: instances (AP), panoptic (PQ).
PER_CLASS = ("ap", "pq")

#: Options kept out of the command's signature (its length is bounded).
TruthComponentsOption = Annotated[
    int | None,
    typer.Option(
        metavar="VALUE",
        help="Region stores: score against the 4-connected components of this truth "
        "value (e.g. 255: the cells of 0/255 EM truth).",
    ),
]
VoidOption = Annotated[
    list[str] | None,
    typer.Option(
        metavar="CLASS",
        help="Class maps: void class (repeatable; 'none': no class); its truth pixels are "
        "left out and it is not averaged. Default: classes named void or unlabelled.",
    ),
]
MaxPixelsOption = Annotated[
    int, typer.Option(metavar="N", help="Largest truth image decoded (pixels), as for run.")
]
TruthOption = Annotated[
    str | None,
    typer.Option(
        "--truth",
        metavar="TRUTH",
        help="Folder of truth label images (matched by relative path, any image suffix) "
        "or a CSV image_id,truth_path; instance and panoptic stores: a COCO JSON file "
        "(panoptic PNGs in <json stem>/ or beside it).",
    ),
]
TruthStoreOption = Annotated[
    str | None,
    typer.Option(
        metavar="STORE",
        help="Instead of --truth: another store's label maps (another method, or annotations "
        "from batchseg import), matched by image id.",
    ),
]
DeleteOption = Annotated[
    str | None,
    typer.Option(
        "--delete",
        metavar="NAME",
        help="Remove the stored evaluation NAME (its columns and result) and exit.",
    ),
]
ComponentsOption = Annotated[
    str | None,
    typer.Option(
        metavar="CLASS",
        help="Class maps: also score this class's connected components as regions "
        "(Rand error, VI, boundary F), e.g. the cells of EM slices.",
    ),
]


NameOption = Annotated[
    str, typer.Option(help="Evaluation name: per-image columns <name>_<metric>.")
]
ToleranceOption = Annotated[
    float | None,
    typer.Option(metavar="PX", help="Boundary match distance (default 0.0075 x image diagonal)."),
]


@app.command()
def evaluate(
    store_path: StoreArgument,
    truth: TruthOption = None,
    truth_store: TruthStoreOption = None,
    truth_pattern: Annotated[
        str | None,
        typer.Option(
            metavar="PATTERN",
            help="Truth file from an image's stem: '{stem}_L.png'; '{stem}_*.png' scores "
            "every annotator and averages.",
        ),
    ] = None,
    truth_classes: Annotated[
        str | None,
        typer.Option(
            metavar="MAP.csv",
            help="CSV value,class: truth grey values or colours (#rrggbb / 'r g b') to the "
            "store's classes or 'ignore'; default: values are class indices.",
        ),
    ] = None,
    ignore: Annotated[
        list[int] | None,
        typer.Option(metavar="VALUE", help="Truth value left out of scoring (repeatable)."),
    ] = None,
    name: NameOption = "eval",
    boundary_tolerance: ToleranceOption = None,
    components: ComponentsOption = None,
    truth_components: TruthComponentsOption = None,
    void: VoidOption = None,
    max_pixels: MaxPixelsOption = DEFAULT_MAX_PIXELS,
    workers: WorkersOption = None,
    threads_per_worker: ThreadsPerWorkerOption = None,
    scheduler: SchedulerOption = None,
    cluster: ClusterOption = None,
    cluster_spec: ClusterSpecOption = None,
    gpus: GpusOption = None,
    tls_ca_file: TlsCaFileOption = None,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    show: Annotated[
        bool,
        typer.Option("--show", help="Print stored evaluations (--name: that one) without scoring."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The whole result as JSON.")] = False,
    delete: DeleteOption = None,
) -> None:
    """Score a store's label maps against ground truth (exit 3: some images not scored)."""
    if show or delete is not None:
        guard(lambda: _stored(store_path, name, as_json, delete, truth is not None or show))
        return
    flags = cluster_flags(locals())
    scoring = (truth_pattern, truth_classes, ignore or [], name, boundary_tolerance)
    code = guard(
        lambda: _evaluate(
            store_path,
            truth,
            *scoring,
            cluster_spec,
            flags,
            as_json,
            components,
            extra=dict(
                truth_components=truth_components,
                max_pixels=max_pixels,
                void=tuple(void) if void else None,
                truth_store=truth_store,
            ),
        )  # fmt: skip
    )
    raise typer.Exit(code)


def _evaluate(
    path: str,
    truth: str | None,
    pattern: str | None,
    truth_classes: str | None,
    ignore: list[int],
    name: str,
    tolerance: float | None,
    cluster_spec: str | None,
    cluster_flags: dict[str, Any],
    as_json: bool,
    components: str | None = None,
    extra: dict[str, Any] | None = None,
) -> int:
    from batchseg import api_jobs

    if truth is None and not (extra or {}).get("truth_store"):
        raise UsageError(
            "--truth or --truth-store is required (or --show to print stored evaluations)"
        )
    with progress_reporter("scoring") as on_progress:
        result = api_jobs.evaluate(
            path,
            truth=truth,
            name=name,
            truth_pattern=pattern,
            truth_classes=truth_classes,
            ignore=ignore,
            boundary_tolerance=tolerance,
            components=components,
            cluster_spec=cluster_spec,
            on_progress=on_progress,
            **cluster_flags,
            **(extra or {}),
        )
    failed = {f.image_id: f.error for f in result.failures}
    if as_json:
        payload = {**result.metrics, "missing": list(result.missing), "failed": failed}
        typer.echo(json.dumps({name: payload}, indent=2))
    else:
        _print(name, dict(result.metrics))
        if result.missing:
            echo(
                f"no truth for {plural(len(result.missing), 'image')}: "
                + ", ".join(result.missing[:5])
                + (" ..." if len(result.missing) > 5 else ""),
                err=True,
            )
        for image_id, error in list(failed.items())[:5]:
            echo(f"not scored: {image_id}: {error}", err=True)
    return result.exit_code


def _stored(path: str, name: str, as_json: bool, delete: str | None, other: bool) -> None:
    """``--show`` (stored results; ``--name``: that one) or ``--delete NAME`` (``other``:
    --truth or --show given too)."""
    import batchseg

    if delete is None:
        _show(path, name if name != "eval" else None, as_json)
        return
    if other or as_json:
        raise UsageError("--delete takes no --truth, --show or --json")
    batchseg.delete_evaluation(path, delete)
    echo(f"{path}: deleted evaluation {delete!r}")


def _show(path: str, name: str | None, as_json: bool) -> None:
    from batchseg.evaluate.job import stored

    found = stored(path, name)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    if not found:
        echo(f"{path}: no evaluations (batchseg evaluate {path} --truth TRUTH)")
    for key, result in sorted(found.items()):
        _print(key, result)


def _print(name: str, result: dict[str, Any]) -> None:
    echo(
        f"evaluation {name!r}: {plural(result.get('images_scored', 0), 'image')} scored "
        f"against {result.get('truth')}"
    )
    for key in SHOWN:
        value = result.get(key)
        if isinstance(value, int | float):
            echo(f"  {key:<26} {value:.4f}")
    iou = result.get("iou")
    if isinstance(iou, dict) and iou:
        parts = [f"{k} {v:.3f}" for k, v in iou.items() if v is not None]
        echo("  iou: " + ", ".join(parts))
    per_class = result.get("per_class")
    if isinstance(per_class, dict) and per_class:
        for metric in PER_CLASS:
            parts = [
                f"{k} {v[metric]:.3f}"
                for k, v in per_class.items()
                if isinstance(v, dict) and isinstance(v.get(metric), int | float)
            ]
            if parts:
                echo(f"  {metric}: " + ", ".join(parts))
