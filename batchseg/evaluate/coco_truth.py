"""COCO ground truth: instance JSON (``--truth FILE.json``) and COCO panoptic (JSON + PNGs).

Images are matched to store image ids like folder truth: by the truth image's ``file_name``
as a relative path without its suffix (``photos/a.jpg`` <- ``file_name`` ``photos/a.png``);
truth images the store does not have are left out, store images the truth does not list are
"without truth". Categories are matched to the store's classes by name (case-insensitive,
surrounding blanks and underscores ignored); a truth category the store does not know is an
error naming it. Store classes the truth does not list are not scored (their predictions are
left out) and are listed in the result as ``classes_not_in_truth``.

Panoptic PNGs are looked up in ``<json folder>/<json stem>/`` (the COCO layout:
``annotations/panoptic_val2017.json`` and ``annotations/panoptic_val2017/``) when that folder
exists, else beside the JSON (the layout ``batchseg export --format coco-panoptic`` writes).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from batchseg.errors import UsageError
from batchseg.evaluate.coco_geometry import annotation_problem
from batchseg.evaluate.truth import image_key
from batchseg.evaluate.truth_read import outside
from batchseg.measure.panoptic import class_key


@dataclass(frozen=True)
class ObjectTruth:
    """What a scoring task needs of one image's COCO truth: its size and, for panoptic truth,
    the segment-id PNG and its segments ``(id, store class index, iscrowd)``. ``error``: why
    the image cannot be scored (a bad annotation, a PNG outside the truth folder)."""

    height: int
    width: int
    png: str = ""
    segments: tuple[tuple[int, int, bool], ...] = ()
    error: str = ""


@dataclass
class CocoTruth:
    """A COCO truth file matched to a store.

    ``doc``: the parsed JSON; ``images``: store image id -> truth image entry; ``classes``:
    truth category id -> store class index; ``missing``: store ids without truth.
    """

    path: str
    doc: dict[str, Any]
    images: dict[str, dict[str, Any]]
    classes: dict[int, int]
    missing: list[str] = field(default_factory=list)

    @property
    def scored_classes(self) -> list[int]:
        """Store class indices the truth lists, ascending."""
        return sorted(set(self.classes.values()))

    def not_in_truth(self, class_names: Sequence[str]) -> list[str]:
        """Store classes (but class 0) the truth does not list."""
        listed = set(self.classes.values())
        return [str(n) for i, n in enumerate(class_names) if i and i not in listed]


def read_coco_truth(path: str, image_ids: Sequence[str], class_names: Sequence[str]) -> CocoTruth:
    """The COCO JSON at ``path`` matched to ``image_ids`` and ``class_names`` (see module)."""
    doc = _load(path)
    for key in ("images", "categories"):
        if not isinstance(doc.get(key), list):
            raise UsageError(f"{path} is not COCO JSON: no {key!r} list")
    by_key: dict[str, dict[str, Any]] = {}
    for image in doc["images"]:
        key = image_key(str(image.get("file_name", "")))
        if key in by_key:
            raise UsageError(
                f"{path}: two truth images for {key!r}: {by_key[key]['file_name']!r} and "
                f"{image['file_name']!r}"
            )
        by_key[key] = image
    images = {i: by_key[image_key(i)] for i in image_ids if image_key(i) in by_key}
    missing = [i for i in image_ids if i not in images]
    return CocoTruth(path, doc, images, match_categories(path, doc["categories"], class_names),
                     missing)  # fmt: skip


def match_categories(
    path: str, categories: Sequence[Mapping[str, Any]], class_names: Sequence[str]
) -> dict[int, int]:
    """Truth category id -> store class index, by name; UsageError naming unknown ones."""
    index = {class_key(n): i for i, n in enumerate(class_names) if i}
    out: dict[int, int] = {}
    unknown = []
    for cat in categories:
        key = class_key(str(cat.get("name", "")))
        if key in index:
            out[int(cat["id"])] = index[key]
        else:
            unknown.append(str(cat.get("name")))
    if unknown:
        raise UsageError(
            f"{path}: categories not among the store's classes: {', '.join(unknown)} "
            f"(store classes: {', '.join(str(n) for n in class_names[1:])}); categories are "
            "matched by name, case-insensitive"
        )
    return out


def panoptic_items(truth: CocoTruth) -> dict[str, ObjectTruth]:
    """Per store image id: its PNG and segments (COCO panoptic ``annotations``)."""
    annotations = truth.doc.get("annotations")
    if not isinstance(annotations, list):
        raise UsageError(f"{truth.path} is not COCO panoptic JSON: no 'annotations' list")
    by_image = {a.get("image_id"): a for a in annotations}
    folder = png_folder(truth.path)
    out: dict[str, ObjectTruth] = {}
    for image_id, image in truth.images.items():
        ann = by_image.get(image.get("id"))
        if ann is None or "segments_info" not in ann:
            raise UsageError(f"{truth.path}: no segments_info for {image.get('file_name')!r}")
        unknown = {s["category_id"] for s in ann["segments_info"]} - set(truth.classes)
        if unknown:
            raise UsageError(
                f"{truth.path}: {ann['file_name']}: segments of category ids not in "
                f"'categories': {', '.join(str(c) for c in sorted(unknown))}"
            )
        segments = tuple(
            (int(s["id"]), truth.classes[int(s["category_id"])], bool(s.get("iscrowd", 0)))
            for s in ann["segments_info"]
        )
        png = os.path.join(folder, str(ann["file_name"]))
        height, width, error = _size(image)
        error = error or outside(folder, str(ann["file_name"])) or ""
        out[image_id] = ObjectTruth(height, width, png, segments, error)
    return out


def instance_items(truth: CocoTruth) -> dict[str, ObjectTruth]:
    """Per store image id: its truth size (checked against the prediction in the task), and
    the first problem of its annotations' geometry (:mod:`batchseg.evaluate.coco_geometry`):
    such an image fails with that reason and its annotations are never rasterised."""
    by_image: dict[Any, list[Mapping[str, Any]]] = {}
    for ann in truth.doc.get("annotations") or []:
        if isinstance(ann, dict):
            by_image.setdefault(ann.get("image_id"), []).append(ann)
    out = {}
    for image_id, image in truth.images.items():
        height, width, error = _size(image)
        if not error:
            found = (
                annotation_problem(a, height, width) for a in by_image.get(image.get("id"), [])
            )
            error = next((e for e in found if e), "")
        out[image_id] = ObjectTruth(height, width, error=error)
    return out


def _size(image: Mapping[str, Any]) -> tuple[int, int, str]:
    """A truth image's height and width, or ``0, 0`` and why they are not positive integers."""
    height, width = image.get("height"), image.get("width")
    if all(_positive_int(v) for v in (height, width)):
        return int(height), int(width), ""  # type: ignore[arg-type]
    return 0, 0, f"truth image size {height!r}x{width!r} (height x width) is not positive integers"


def _positive_int(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value == int(value) and 0 < value < 1 << 31


def png_folder(path: str) -> str:
    """Where the panoptic PNGs of the JSON at ``path`` are (see the module docstring)."""
    stem = os.path.splitext(path)[0]
    return stem if os.path.isdir(stem) else os.path.dirname(os.path.abspath(path))


def is_coco_json(path: str) -> bool:
    """Whether ``path`` names a JSON file (COCO truth rather than a folder or CSV)."""
    return path.lower().endswith(".json")


def _load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except OSError as exc:
        raise UsageError(f"cannot read truth {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"truth {path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{path} is not COCO JSON (not an object)")
    return doc
