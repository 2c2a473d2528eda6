"""Pictures out of a store: ``mask`` (PNG) and ``export`` (OME-Zarr)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from batchseg.cli.core import app, guard
from batchseg.cli.text import echo, plural
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


@app.command()
def mask(
    store_path: Annotated[str, typer.Argument(metavar="STORE", help="A batchseg Zarr store.")],
    image_id: Annotated[str, typer.Argument(help="Image id as listed by `batchseg query`.")],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="PNG file to write (missing folders are created)."),
    ],
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
) -> None:
    """Write an image's label map as a colour PNG, or as an overlay on the source image
    (region and object outlines drawn; --object highlights one object)."""
    guard(
        lambda: _mask(
            store_path,
            image_id,
            output,
            overlay,
            alpha,
            confidence,
            level,
            max_pixels,
            object_label,
        )  # fmt: skip
    )


def _mask(
    path: str,
    image_id: str,
    output: Path,
    overlay: bool,
    alpha: float,
    confidence: bool,
    level: int = 0,
    max_pixels: int | None = None,
    object_label: int | None = None,
) -> None:
    import numpy as np

    import batchseg
    from batchseg import render
    from batchseg.io.read import DEFAULT_MAX_PIXELS
    from batchseg.io.windowed import read_overlay_source

    if not 0.0 <= alpha <= 1.0:
        raise UsageError("--alpha must be between 0 and 1")
    if level < 0:
        raise UsageError("--level must be >= 0")
    if max_pixels is None:
        max_pixels = DEFAULT_MAX_PIXELS
    elif max_pixels < 1:
        raise UsageError("--max-pixels must be >= 1")
    if level and confidence:
        raise UsageError("--level is for label maps only: confidence maps have no stored levels")
    if object_label is not None and (not overlay or confidence):
        raise UsageError("--object highlights an object on an --overlay (not with --confidence)")
    check_png_output(output)
    view = batchseg.open(path)
    if object_label is not None and view.kind == "classes":
        raise UsageError(f"{path} holds class maps; --object needs region labels (objects)")
    if confidence:
        render.save_png(view.confidence(image_id), str(output))
        echo(f"wrote {output}")
        return
    labels = view.mask(image_id, level=level)
    # instance ids are drawn like regions: the class colours are for class maps
    colours = (
        np.asarray(view.colours, dtype=np.uint8)
        if view.colours and view.kind == "classes"
        else None
    )
    if overlay:
        image = read_overlay_source(view.uri(image_id), labels.shape, level, max_pixels)
        if object_label is not None and not (labels == object_label).any():
            top = int(labels.max()) if labels.size else 0
            raise StoreError(
                f"object {object_label} is not in image {image_id!r} (labels 1..{top}"
                f"{' at this level' if level else ''}); list them with batchseg objects"
            )
        picture = render.overlay(
            image, labels, colours, kind=view.kind, alpha=alpha, highlight=object_label
        )
    else:
        picture = render.colourise(labels, colours, kind=view.kind)
    render.save_png(picture, str(output))
    echo(f"wrote {output}")


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
    guard(lambda: _export(store_path, image_id, output, fmt, levels, overwrite))


def _export(
    path: str, image_id: str, output: Path, fmt: str, levels: int | None, overwrite: bool
) -> None:
    from batchseg.export.ome_zarr import export_ome_zarr

    if fmt != "ome-zarr":
        raise UsageError(f"--format must be ome-zarr, got {fmt!r}")
    result = export_ome_zarr(path, image_id, output, levels=levels, overwrite=overwrite)
    shape = "x".join(str(s) for s in result["image_shapes"][0])
    echo(
        f"wrote {output}: image {shape} in {plural(int(result['levels']), 'level')}, labels "
        f"'segmentation' ({result['label_values_listed']} of {result['label_values_total']} "
        "label values listed)"
    )
