"""Pictures out of a store: ``mask`` (PNG) and ``export`` (OME-Zarr, COCO, COCO panoptic)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from batchseg.cli.core import StoreArgument, app, guard
from batchseg.cli.mask_options import MaskDrawing, MaskOptions
from batchseg.cli.text import echo, plural, printable
from batchseg.core.kinds import Kind
from batchseg.errors import BatchsegError, StoreError, UsageError


def check_png_output(output: Path) -> None:
    """Refuse an output whose suffix is not ``.png`` (a ``.jpg`` must not hold PNG bytes) and
    create its missing folders; one line (exit 2 for the suffix, 1 for a folder)."""
    if output.suffix.lower() != ".png":
        raise UsageError(f"--output must end in .png (mask writes PNG images), got {str(output)!r}")
    parent = output.parent
    if not parent.is_dir():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BatchsegError(f"cannot create {parent}: {exc.strerror or exc}") from None


HideOption = Annotated[
    list[str] | None,
    typer.Option(
        "--hide",
        metavar="CLASS",
        help="Class maps: leave this class (name or index) uncoloured (repeatable).",
    ),
]
OutlinesOption = Annotated[
    bool,
    typer.Option(
        "--outlines/--no-outlines",
        help="--overlay of region labels: draw region outlines (thin or none where regions "
        "are small at this size).",
    ),
]
TruthOption = Annotated[
    str | None,
    typer.Option(
        "--truth",
        metavar="DIR",
        help="Draw the ground truth beside the prediction (a folder or CSV, read with the "
        "settings of the store's evaluation against it).",
    ),
]


@app.command()
def mask(
    store_path: StoreArgument,
    image_id: Annotated[
        str | None,
        typer.Argument(help="Image id as listed by `batchseg query` (or --where for many)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="PNG file to write (missing folders are created)."),
    ] = None,
    overlay: Annotated[
        bool, typer.Option("--overlay", help="Blend the mask over the source image.")
    ] = False,
    alpha: Annotated[float, typer.Option(help="Overlay opacity 0-1.")] = 0.5,
    confidence: Annotated[
        bool,
        typer.Option(
            "--confidence", help="Write the confidence map (semantic) in viridis with a scale bar."
        ),
    ] = False,
    legend: Annotated[
        bool, typer.Option("--legend", help="Draw the class colour legend beside the picture.")
    ] = False,
    level: Annotated[
        int,
        typer.Option(help="Tiled images: pyramid level (each halves the size; 0 = full size)."),
    ] = 0,
    max_pixels: Annotated[
        int | None,
        typer.Option(
            "--max-pixels",
            help="--overlay: largest source image decoded whole (default 268435456; bomb guard).",
        ),
    ] = None,
    object_label: Annotated[
        int | None,
        typer.Option(
            "--object",
            metavar="LABEL",
            help="--overlay of region labels: fill and outline this object only "
            "(label as listed by `batchseg objects`).",
        ),
    ] = None,
    where: Annotated[
        str | None,
        typer.Option(
            "--where", "-w", metavar="EXPR", help="Many images: those this query selects."
        ),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", metavar="DIR", help="--where: folder for one PNG per image."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", metavar="N", help="--where: at most N images.")
    ] = None,
    hide: HideOption = None,
    outlines: OutlinesOption = True,
    truth: TruthOption = None,
    channels: Annotated[
        str | None,
        typer.Option(
            "--channels",
            metavar="I|I,J,K|mean",
            help="--overlay of a stack's plane: the channel (or three as RGB, or mean) drawn "
            "under the mask (default: what the method saw).",
        ),
    ] = None,
) -> None:
    """Write an image's label map as a colour PNG, or as an overlay on the source image
    (region and object outlines drawn; --object highlights one object); --where with
    --output-dir writes one PNG per selected image."""
    options = MaskOptions(overlay, alpha, confidence, legend, level, max_pixels, object_label)
    options = replace(
        options, hidden=tuple(hide or ()), outlines=outlines, truth=truth, channels=channels
    )
    if where is not None or output_dir is not None:
        guard(lambda: _mask_many(store_path, image_id, output, where, output_dir, limit, options))
        return
    guard(lambda: _mask(store_path, image_id, output, options))


def _mask(path: str, image_id: str | None, output: Path | None, options: MaskOptions) -> None:
    import batchseg
    from batchseg import render

    if image_id is None or output is None:
        raise UsageError("give IMAGE_ID and --output F.png (or --where EXPR --output-dir DIR)")
    options = options.check()
    check_png_output(output)
    view = batchseg.open(path)
    if options.object_label is not None and Kind(view.kind).class_map:
        raise UsageError(f"{path} holds class maps; --object needs region labels (objects)")
    drawing = MaskDrawing.of(view, options)
    render.save_png(_mask_picture(view, image_id, options, drawing), str(output))
    echo(f"wrote {output}")


def _mask_picture(
    view: Any, image_id: str, options: MaskOptions, drawing: MaskDrawing | None = None
) -> Any:
    """The picture ``batchseg mask`` writes for one image (an H x W x 3 uint8 array)."""
    import numpy as np

    from batchseg import render
    from batchseg.io.windowed import read_overlay_source
    from batchseg.report.pictures import legend_entries

    if options.confidence:
        return render.confidence_picture(view.confidence(image_id))
    drawing = drawing or MaskDrawing()
    labels = view.mask(image_id, level=options.level)
    # instance ids are drawn like regions: the class colours are for class maps
    colours = (
        np.asarray(view.colours, dtype=np.uint8)
        if view.colours and Kind(view.kind).class_map
        else None
    )
    if options.overlay:
        image = read_overlay_source(
            view.uri(image_id),
            labels.shape,
            options.level,
            options.max_pixels,
            stacks=view.stack_view(options.channels),
        )
        label = options.object_label
        if label is not None and not (labels == label).any():
            top = int(labels.max()) if labels.size else 0
            raise StoreError(
                f"object {label} is not in image {image_id!r} (labels 1..{top}"
                f"{' at this level' if options.level else ''}); list them with batchseg objects"
            )
        picture = render.overlay(
            image,
            labels,
            colours,
            view.kind,
            options.alpha,
            highlight=label,
            hidden=drawing.hidden,
            outlines=options.outlines,
        )
    else:
        image = None
        picture = render.colourise(labels, colours, kind=view.kind, hidden=drawing.hidden)
    if drawing.truth is not None:
        picture = _beside_truth(view, image_id, picture, image, options, drawing)
    if options.legend:
        title = "classes" if Kind(view.kind).class_map else "regions (colours arbitrary)"
        title += "; left prediction, right truth" if drawing.truth is not None else ""
        entries = legend_entries(view, options.overlay, drawing.hidden)
        picture = render.with_legend(picture, entries, title)
    return picture


def _beside_truth(
    view: Any, image_id: str, picture: Any, image: Any, options: MaskOptions, drawing: MaskDrawing
) -> Any:
    """``picture`` with the image's truth drawn the same way on its right."""
    from batchseg import render
    from batchseg.report.pictures import truth_picture
    from batchseg.report.truth import truth_labels

    truth = truth_labels(view, drawing.truth, image_id)
    if truth is None:
        raise UsageError(f"no truth for {image_id!r} in {drawing.truth.truth}")
    drawn = truth_picture(
        view,
        drawing.truth,
        truth,
        level=options.level,
        image=image,
        alpha=options.alpha,
        hidden=drawing.hidden,
        outlines=options.outlines,
    )
    return render.beside(picture, drawn, gap=8)


def mask_file_names(image_ids: list[str]) -> list[str]:
    """A relative PNG path per image id for ``--output-dir``: the id's folders kept, its
    suffix replaced by ``.png`` (``cam/a.jpg`` -> ``cam/a.png``); ``..``, ``.`` and empty
    segments are neutralised so every name stays inside the folder; clashes get ``~N``."""
    names: list[str] = []
    used: set[str] = set()
    for image_id in image_ids:
        parts = [p for p in image_id.replace("\\", "/").split("/") if p not in ("", ".")]
        parts = ["__" if p == ".." else p.replace(":", "_") for p in parts] or ["image"]
        stem = parts[-1].rsplit(".", 1)[0] if "." in parts[-1].lstrip(".") else parts[-1]
        base = "/".join([*parts[:-1], stem or "image"])
        name, n = f"{base}.png", 1
        while name.lower() in used:
            n += 1
            name = f"{base}~{n}.png"
        used.add(name.lower())
        names.append(name)
    return names


def _mask_many(
    path: str,
    image_id: str | None,
    output: Path | None,
    where: str | None,
    output_dir: Path | None,
    limit: int | None,
    options: MaskOptions,
) -> None:
    import batchseg
    from batchseg import render
    from batchseg.errors import one_line
    from batchseg.query import Selection, select

    if image_id is not None or output is not None:
        raise UsageError("--where/--output-dir write many images: no IMAGE_ID or --output")
    if where is None or output_dir is None:
        raise UsageError("give both --where EXPR and --output-dir DIR")
    if limit is not None and limit < 0:
        raise UsageError("--limit must be >= 0")
    options = options.check()
    if options.object_label is not None:
        raise UsageError("--object is for one image (IMAGE_ID), not --where")
    view = batchseg.open(path)
    drawing = MaskDrawing.of(view, options)
    chosen = select(view, Selection(where, "status")).rows
    done = chosen[chosen["status"] == "done"]
    ids = [str(i) for i in done["image_id"]][:limit]
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchsegError(f"cannot create {output_dir}: {exc.strerror or exc}") from None
    root = output_dir.resolve()
    failures: list[tuple[str, str]] = []
    for name, image in zip(mask_file_names(ids), ids, strict=True):
        target = (root / name).resolve()
        if root not in target.parents:  # never outside the folder (names are sanitised too)
            failures.append((image, "its file name leaves the output folder"))
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            render.save_png(_mask_picture(view, image, options, drawing), str(target))
        except (BatchsegError, OSError) as exc:
            failures.append((image, one_line(exc)))
    skipped = len(chosen) - len(done)
    echo(
        f"wrote {plural(len(ids) - len(failures), 'PNG')} to {output_dir} "
        f"({plural(len(chosen), 'matching image')}"
        + (f", {skipped} not done" if skipped else "")
        + (f", {len(failures)} failed" if failures else "")
        + ")"
    )
    for image, error in failures[:5]:
        echo(f"  {printable(image)}: {error}", err=True)
    if failures:
        raise typer.Exit(1)


EXPORT_FORMATS = ("ome-zarr", "coco", "coco-panoptic")


@app.command()
def export(
    store_path: StoreArgument,
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="OUT.zarr (ome-zarr), F.json (coco) or a folder (coco-panoptic).",
        ),
    ],
    image_id: Annotated[
        str | None,
        typer.Argument(
            metavar="IMAGE_ID",
            help="Image id as listed by `batchseg query` (coco formats: or --all).",
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="ome-zarr; coco (instance stores: COCO JSON with RLE masks); coco-panoptic "
            "(panoptic stores: PNG per image + panoptic.json).",
        ),
    ] = "ome-zarr",
    levels: Annotated[
        int | None,
        typer.Option(help="Pyramid levels, factor 2 each (default: down to <= 256 px, at most 8)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output.")
    ] = False,
    all_images: Annotated[
        bool, typer.Option("--all", help="coco formats: export every done image.")
    ] = False,
) -> None:
    """Write one image and its labels as OME-Zarr (NGFF 0.5) pyramids for viewers, or instance
    and panoptic results in COCO formats."""
    guard(lambda: _export(store_path, image_id, output, fmt, levels, overwrite, all_images))


def _export(
    path: str,
    image_id: str | None,
    output: Path,
    fmt: str,
    levels: int | None,
    overwrite: bool,
    all_images: bool = False,
) -> None:
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"--format must be ome-zarr, coco or coco-panoptic, got {fmt!r}")
    if fmt != "ome-zarr":
        _export_coco(path, image_id, output, fmt, levels, overwrite, all_images)
        return
    from batchseg.export.ome_zarr import export_ome_zarr

    if all_images or image_id is None:
        raise UsageError("--format ome-zarr exports one IMAGE_ID (--all is for the coco formats)")
    result = export_ome_zarr(path, image_id, output, levels=levels, overwrite=overwrite)
    shape = "x".join(str(s) for s in result["image_shapes"][0])
    echo(
        f"wrote {output}: image {shape} in {plural(int(result['levels']), 'level')}, labels "
        f"'segmentation' ({result['label_values_listed']} of {result['label_values_total']} "
        "label values listed)"
    )


def _export_coco(
    path: str,
    image_id: str | None,
    output: Path,
    fmt: str,
    levels: int | None,
    overwrite: bool,
    all_images: bool,
) -> None:
    from batchseg.export.coco import export_coco, export_coco_panoptic

    if levels is not None:
        raise UsageError("--levels is for --format ome-zarr")
    if all_images == (image_id is not None):
        raise UsageError(f"--format {fmt} exports one IMAGE_ID or --all (not both)")
    if fmt == "coco":
        done = export_coco(path, image_id, output, overwrite=overwrite)
        what = plural(done["annotations"], "annotation")
    else:
        done = export_coco_panoptic(path, image_id, output, overwrite=overwrite)
        what = plural(done["segments"], "segment")
    echo(
        f"wrote {output}: {plural(done['images'], 'image')}, {what}, "
        f"{plural(done['categories'], 'category', 'categories')}"
    )
