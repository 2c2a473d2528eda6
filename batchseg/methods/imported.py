"""Label maps another tool wrote, as methods: ``import.regions``, ``import.classes``,
``import.instances`` (``batchseg import``).

They segment nothing: for each image their runner reads the image's *partner* label file in
the ``labels`` folder and returns its values as the image's labels, so a job of them writes a
store of that kind (statistics, object tables) through the very path a segmentation takes.
The partner of ``photos/a.jpg`` is ``LABELS/photos/a.<any image suffix>``, matched as
``batchseg evaluate --truth`` matches truth files, or ``LABELS/photos/<pattern>`` with
``{stem}`` replaced (``{stem}_mask.png``). A missing, ambiguous, unreadable or differently
sized partner fails that image alone, with the reason.

What the values mean, by kind: ``regions``: region ids as stored (0 none; a colour image: each
colour a region, black none); ``instances``: each id (or colour) one instance of class
``object``, renumbered 1..n; ``classes``: the ``values`` parameter maps grey values or colours
to class names (``0=background;255=cell;#ff0000=road``); an unlisted value fails the image.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from batchseg.core.kinds import Kind
from batchseg.errors import ImageError, UsageError
from batchseg.io.formats import IMAGE_SUFFIXES
from batchseg.io.read import DEFAULT_MAX_PIXELS, read_header, read_label_image
from batchseg.methods.base import Method, Param, Segmentation

__all__ = ["IMPORT_KINDS", "METHODS", "import_method_id", "parse_values", "partner"]

#: The kinds ``batchseg import --kind`` takes.
IMPORT_KINDS: tuple[Kind, ...] = (Kind.REGIONS, Kind.CLASSES, Kind.INSTANCES)
#: Class names of imported instances (every instance is one ``object``).
INSTANCE_CLASSES = ["background", "object"]
#: Region and instance ids are kept as large as the files hold them.
MAX_ID = 2**32 - 1


def import_method_id(kind: str) -> str:
    """The method id importing label maps of ``kind`` (``import.regions``...)."""
    if kind not in IMPORT_KINDS:
        raise UsageError(f"--kind must be one of {', '.join(IMPORT_KINDS)}, got {kind!r}")
    return f"import.{kind}"


def partner(labels: str, image_id: str, pattern: str = "") -> str:
    """The label file of ``image_id`` in the folder ``labels`` (module docstring); ImageError
    saying why when there is none, more than one, or one leading outside ``labels``."""
    path = PurePosixPath(image_id)
    where = os.path.join(labels, *path.parent.parts)
    if pattern:
        spelled = os.path.join(where, pattern.replace("{stem}", glob.escape(path.stem)))
        found = sorted(glob.glob(spelled)) if glob.has_magic(pattern) else [spelled]
        found = [f for f in found if os.path.isfile(f)]
    else:
        names = {path.stem + s for suffix in IMAGE_SUFFIXES for s in (suffix, suffix.upper())}
        found = sorted(p for n in names if os.path.isfile(p := os.path.join(where, n)))
    if not found:
        shown = pattern.replace("{stem}", path.stem) if pattern else f"{path.stem}.<image suffix>"
        raise ImageError(f"no label file {os.path.join(where, shown)}")
    if len(found) > 1:
        raise ImageError(f"two label files: {found[0]} and {found[1]} (--pattern says which)")
    root = os.path.join(os.path.realpath(labels), "")
    if not os.path.realpath(found[0]).startswith(root):
        raise ImageError(f"label file {found[0]} leads outside the labels folder {labels}")
    return found[0]


def parse_values(text: str) -> dict[int | tuple[int, int, int], int]:
    """The ``values`` parameter (``0=background;#ff0000=road``) as value -> class index, the
    classes numbered in order of first appearance (:func:`value_classes`)."""
    names = value_classes(text)
    out: dict[int | tuple[int, int, int], int] = {}
    for item in filter(None, text.split(";")):
        value, _, name = item.partition("=")
        value = value.strip()
        if value.startswith("#") and len(value) == 7:
            out[(int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16))] = names.index(
                name.strip()
            )
        else:
            out[int(value)] = names.index(name.strip())
    return out


def value_classes(text: str) -> list[str]:
    """The class names of a ``values`` parameter, in order of first appearance."""
    names: list[str] = []
    for item in filter(None, text.split(";")):
        value, sep, name = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"values: {item!r} is not value=class")
        if name.strip() not in names:
            names.append(name.strip())
    return names


def _check_values(params: dict[str, Any]) -> None:
    if not params.get("labels"):
        raise UsageError("import needs the folder of label files (parameter labels)")
    pattern = str(params.get("pattern") or "")
    if pattern and "{stem}" not in pattern:
        raise UsageError(f"--pattern must contain {{stem}}, got {pattern!r}")


def _check_classes(params: dict[str, Any]) -> None:
    _check_values(params)
    if not params.get("values"):
        raise UsageError("--kind classes needs --classes CSV (value,class: what each value is)")
    try:
        parse_values(str(params["values"]))
    except ValueError:
        raise UsageError(f"values: {params['values']!r} has a value that is no integer") from None


def _read_partner(image: np.ndarray, path: str, max_pixels: int | None) -> np.ndarray:
    """The label file at ``path``, which must have the image's size (checked from its header)."""
    height, width = image.shape[:2]
    found = read_header(path, max_pixels)
    if found != (height, width):
        raise ImageError(
            f"label file {os.path.basename(path)} is {found[0]}x{found[1]}, the image "
            f"{height}x{width} (height x width); never resized"
        )
    labels = read_label_image(path, max(1, height * width))
    if not np.issubdtype(labels.dtype, np.integer) and labels.dtype != bool:
        raise ImageError(f"label file {os.path.basename(path)} holds {labels.dtype} values")
    return labels


def _ids(labels: np.ndarray) -> np.ndarray:
    """Region ids of a label image: grey values, or colour codes (black 0) of an RGB one."""
    if labels.ndim == 2:
        return labels
    rgb = labels[..., :3].astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def to_classes(labels: np.ndarray, values: Mapping[Any, int]) -> np.ndarray:
    """Class indices of a label image through ``values``; ValueError naming an unlisted value."""
    colour = labels.ndim == 3
    codes = _ids(labels).astype(np.int64)
    table = {((k[0] << 16) | (k[1] << 8) | k[2]) if isinstance(k, tuple) else k: v
             for k, v in values.items() if isinstance(k, tuple) == colour}  # fmt: skip
    found, inverse = np.unique(codes, return_inverse=True)
    mapped = np.empty(found.shape, dtype=np.int64)
    for k, v in enumerate(found.tolist()):
        if v not in table:
            shown = f"#{v:06x}" if colour else str(v)
            raise ValueError(f"label value {shown} is not in --classes")
        mapped[k] = table[v]
    return mapped[inverse.reshape(codes.shape)]


def to_instances(labels: np.ndarray) -> Segmentation:
    """Instances of an id map: ids renumbered 1..n in order, each of class 1 (``object``),
    score 1, its box the bounding box of its pixels."""
    from scipy import ndimage

    found, inverse = np.unique(_ids(labels), return_inverse=True)
    inverse = inverse.reshape(labels.shape[:2])
    ids = inverse if found[0] == 0 else inverse + 1  # 0 stays none; ids 1..n
    n = int(np.count_nonzero(found))
    boxes = ndimage.find_objects(ids, max_label=n)
    box = np.array([[b[0].start, b[1].start, b[0].stop, b[1].stop] for b in boxes], float)
    box = box.reshape(n, 4)
    instances = {
        "class_index": np.ones(n, dtype=np.int64),
        "score": np.ones(n, dtype=np.float64),
        "box_min_row": box[:, 0],
        "box_min_col": box[:, 1],
        "box_max_row": box[:, 2],
        "box_max_col": box[:, 3],
    }
    return Segmentation(ids, classes=(ids > 0).astype(np.uint8), instances=instances)


class ImportRunner:
    """Reads each image's partner label file (:func:`partner`) as its segmentation."""

    batch_size = 1
    #: the job engine passes the images' ids (``segment_batch(images, image_ids=...)``)
    reads_partners = True

    def __init__(self, kind: str, params: Mapping[str, Any]) -> None:
        self.kind = kind
        self.labels = str(params["labels"])
        self.pattern = str(params.get("pattern") or "")
        self.values = parse_values(str(params.get("values") or ""))
        self.max_pixels = DEFAULT_MAX_PIXELS

    def segment_batch(
        self, images: Sequence[np.ndarray], image_ids: Sequence[str] = ()
    ) -> list[Segmentation | Exception]:
        if len(image_ids) != len(images):
            return [ImageError("import: the image's id was not given") for _ in images]
        out: list[Segmentation | Exception] = []
        for image, image_id in zip(images, image_ids, strict=True):
            try:
                out.append(self.segment_one(image, image_id))
            except Exception as exc:  # noqa: BLE001 - recorded per image
                out.append(exc)
        return out

    def segment_one(self, image: np.ndarray, image_id: str) -> Segmentation:
        """The imported labels of one image."""
        labels = _read_partner(image, partner(self.labels, image_id, self.pattern), self.max_pixels)
        if Kind(self.kind).class_map:
            return Segmentation(to_classes(labels, self.values))
        if Kind(self.kind) is Kind.INSTANCES:
            return to_instances(labels)
        return Segmentation(_ids(labels))


def _kernel(image: np.ndarray, **params: Any) -> np.ndarray:
    raise UsageError("import methods read label files by image id: batchseg import")


def _method(kind: Kind) -> Method:
    common: list[Param] = [
        Param("labels", str, "", "Folder of the label files (absolute path)."),
        Param("pattern", str, "", "Label file from an image's stem, e.g. '{stem}_mask.png'.",
              omit_default=True),
    ]  # fmt: skip
    if Kind(kind).class_map:
        common.append(Param("values", str, "", "Value to class: '0=background;#ff0000=road'."))
    return Method(
        id=f"import.{kind}",
        kind=kind,
        kernel=_kernel,
        description=f"Imported {kind[:-1]} label maps another tool wrote (batchseg import).",
        params=tuple(common),
        class_names={
            "classes": lambda p: value_classes(str(p.get("values") or "")),
            "instances": lambda p: list(INSTANCE_CLASSES),
            "regions": None,
        }[kind],
        max_label=(lambda p, h, w: MAX_ID) if Kind(kind) is Kind.REGIONS else None,
        family="import",
        make_runner=lambda p: ImportRunner(kind, p),
        check=_check_classes if Kind(kind).class_map else _check_values,
        untiled_reason="imported label maps are read whole",
        objects_default=not Kind(kind).class_map,
    )


METHODS: tuple[Method, ...] = tuple(_method(k) for k in IMPORT_KINDS)
