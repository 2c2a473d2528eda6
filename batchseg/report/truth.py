"""Ground truth to draw beside a prediction (``mask --truth``, the report's gallery).

The truth of an image is found and mapped as the store's evaluation of that truth found and
mapped it (its ``--truth-pattern``, ``--truth-classes`` and ``--ignore``); a truth source no
evaluation used is read as ``evaluate`` reads it without options (class indices, or region
labels, matched by relative path). An evaluation against another store (``--truth-store``)
draws that store's label map of the image, its classes matched by name. Truth pixels left out of scoring (``ignore``) get the id
:attr:`TruthSource.ignored` and are drawn grey, or show the image on overlays.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from batchseg.core.kinds import Kind
from batchseg.errors import ImageError, UsageError
from batchseg.store import DONE

#: Colour of truth pixels left out of scoring on colour pictures of the truth.
IGNORED_COLOUR = (128, 128, 128)
#: Kinds of store whose truth is an image (instances and panoptic are scored on COCO JSON).
TRUTH_KINDS = ("classes", "regions")


@dataclass(frozen=True)
class TruthSource:
    """Where an image's truth is and how its values become the store's labels."""

    truth: str
    pattern: str | None = None
    truth_classes: str | None = None
    ignore: tuple[int, ...] = ()
    #: evaluation the settings come from ("" when no evaluation used this truth)
    evaluation: str = ""
    #: the label id ignored truth pixels get (the number of classes; class maps only)
    ignored: int = 0
    #: ``truth`` is a store (``evaluate --truth-store``), not a folder or CSV
    store: bool = False


def find_source(view: Any, truth: str | None = None) -> TruthSource | None:
    """The truth source of ``truth`` (settings from the evaluation that used it, if any); with
    ``truth`` None, that of the newest evaluation with a truth folder or CSV (None without)."""
    if view.kind not in TRUTH_KINDS:
        if truth is None:
            return None
        raise UsageError(
            f"--truth is for class and region stores; {view.kind} stores are scored against "
            "COCO JSON (see batchseg evaluate)"
        )
    ignored = len(view.classes or []) if Kind(view.kind).class_map else 0
    entries = sorted(
        view.evaluations().items(), key=lambda kv: str(kv[1].get("created") or ""), reverse=True
    )
    for name, entry in entries:
        source = str(entry.get("truth") or "")
        if entry.get("truth_store") and truth is None:
            ignore = tuple(int(v) for v in entry.get("ignore") or ())
            return TruthSource(str(entry["truth_store"]), None, None, ignore, name, ignored, True)
        if not source or entry.get("truth_store") or source.lower().endswith(".json"):
            continue
        if truth is None or _same_path(source, truth):
            return TruthSource(
                truth if truth is not None else source,
                entry.get("truth_pattern"),
                entry.get("truth_classes"),
                tuple(int(v) for v in entry.get("ignore") or ()),
                name,
                ignored,
            )
    return None if truth is None else TruthSource(truth, ignored=ignored)


def truth_labels(view: Any, source: TruthSource, image_id: str) -> np.ndarray | None:
    """The truth of ``image_id`` as labels of the store's kind, at the image's full size
    (class maps: ignored pixels are :attr:`TruthSource.ignored`); None when the truth has no
    file for the image. ImageError when it cannot be read or does not fit."""
    from batchseg.evaluate.truth import IGNORE, ValueMap, match_truth, read_value_map

    if source.store:
        return _stored_truth(view, source, image_id)
    files = match_truth(source.truth, [image_id], source.pattern).files.get(image_id)
    if not files:
        return None
    info = view.locate(image_id)
    info.require_done()
    shape = (int(info.bucket["height"]), int(info.bucket["width"]))
    truth = _read(files[0], shape)
    if not Kind(view.kind).class_map:
        if truth.ndim != 2 or not np.issubdtype(truth.dtype, np.integer):
            raise ImageError(f"{files[0]}: region truth must be a single-channel label image")
        return truth
    classes = list(view.classes or [])
    value_map = read_value_map(source.truth_classes, classes) if source.truth_classes else None
    try:
        mapped = (value_map or ValueMap()).apply(truth, source.ignore)
    except ValueError as exc:
        raise ImageError(f"{files[0]}: {exc}") from None
    return np.where(mapped == IGNORE, source.ignored, mapped)


def _stored_truth(view: Any, source: TruthSource, image_id: str) -> np.ndarray | None:
    """The truth of ``image_id`` from the truth store of ``source`` (None: not done there),
    class maps mapped to the store's classes by name, as ``evaluate --truth-store`` does."""
    from batchseg.api import open as open_store
    from batchseg.errors import StoreError
    from batchseg.evaluate.truth import IGNORE, ValueMap
    from batchseg.evaluate.truth_store import class_value_map

    other = open_store(source.truth)
    try:
        found = other.locate(image_id)
    except StoreError:
        return None
    if found.status != DONE:
        return None
    info = view.locate(image_id)
    info.require_done()
    truth = other.mask(image_id)
    if truth.shape != (int(info.bucket["height"]), int(info.bucket["width"])):
        raise ImageError(
            f"{source.truth}: truth of {image_id} is {truth.shape[0]}x{truth.shape[1]}, the "
            f"image {info.bucket['height']}x{info.bucket['width']}; never resized"
        )
    if not Kind(view.kind).class_map:
        return truth
    value_map = class_value_map(source.truth, other.classes or [], view.classes or [])
    mapped = (value_map or ValueMap()).apply(truth, source.ignore)
    return np.where(mapped == IGNORE, source.ignored, mapped)


def _read(path: str, shape: tuple[int, int]) -> np.ndarray:
    """A truth image as stored (palette indices stay indices, RGBA loses alpha); its size is
    checked from the header before it is decoded (never resized)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if (im.height, im.width) != shape:
                raise ImageError(
                    f"{path}: truth is {im.height}x{im.width}, the image {shape[0]}x{shape[1]} "
                    "(height x width); never resized"
                )
            array = np.asarray(im)
    except OSError as exc:
        raise ImageError(f"cannot read truth {path}: {exc}") from None
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]
    return array


def _same_path(a: str, b: str) -> bool:
    """Whether two spellings name one truth source (``./t/`` and ``t``)."""
    if a == b:
        return True
    if "://" in a or "://" in b:
        return a.rstrip("/") == b.rstrip("/")
    return os.path.realpath(a) == os.path.realpath(b)
