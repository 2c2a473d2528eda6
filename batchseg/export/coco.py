"""COCO exports: instance stores as COCO JSON (RLE masks), panoptic stores as COCO panoptic.

``coco`` (:func:`export_coco`): one JSON file with ``images`` (``file_name`` = the image id),
``categories`` (the store's classes but class 0, ``id`` = class index) and one annotation per
instance present in the label map: ``segmentation`` (compressed RLE of
``pycocotools.mask.encode``, ``counts`` as a string), ``area`` and ``bbox`` ``[x, y, w, h]``
of that mask (``pycocotools.mask.area`` / ``toBbox``), ``category_id``, ``score`` (from the
object table), ``iscrowd`` 0. Annotations are written as they are made, so memory holds one
image at a time (and the list of images).

``coco-panoptic`` (:func:`export_coco_panoptic`): a folder with one PNG per image, RGB with
segment id ``R + 256 G + 256^2 B`` (the store's label, ``class_index * 1000 + instance``; 0 is
void) and ``panoptic.json`` (``images``, ``annotations`` with ``file_name`` and
``segments_info`` [``id``, ``category_id``, ``area``, ``bbox``, ``iscrowd``], ``categories``
with ``isthing`` and ``color``).

Outputs are written beside their final path and moved into place at the end; an existing
output is replaced only with ``overwrite`` (a COCO JSON file, or a folder that is empty or holds
an earlier panoptic export).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
import zarr

from batchseg import store
from batchseg.core.kinds import Kind
from batchseg.core.meta import StoreMeta
from batchseg.errors import BatchsegError, StoreError, UsageError
from batchseg.measure.annotations import instance_annotations
from batchseg.measure.panoptic import OFFSET, PanopticClasses, segments
from batchseg.store.instance_table import InstanceTable

__all__ = [
    "PANOPTIC_JSON",
    "export_coco",
    "export_coco_panoptic",
]

log = logging.getLogger(__name__)

PANOPTIC_JSON = "panoptic.json"
_MAX_SEGMENT_ID = (1 << 24) - 1


def _mask_api() -> Any:
    try:
        from pycocotools import mask
    except ImportError:
        raise BatchsegError(
            "--format coco needs pycocotools: pip install 'batchseg[coco]'"
        ) from None
    return mask


def _open(path: str, kind: Kind, fmt: str) -> tuple[zarr.Group, StoreMeta]:
    root = store.open_group(path)
    meta = store.read_meta(root, path)
    if meta.kind is not kind:
        raise UsageError(
            f"--format {fmt} needs a store of {kind} results; {path} holds {meta.kind}"
        )
    return root, meta


def _images(root: zarr.Group, image_id: str | None) -> list[store.ImageInfo]:
    """The one image asked for (it must be done), or every done image."""
    if image_id is not None:
        info = store.image_info(root, image_id)
        info.require_done()
        return [info]
    return [i for i in store.image_infos(root) if i.status == store.DONE]


def _info(path: str, meta: StoreMeta) -> dict[str, Any]:
    return {
        "description": f"batchseg export of {path}",
        "batchseg": {
            "store": path,
            "store_id": meta.store_id or None,
            "method": meta.method.id,
        },
    }


def _image_entry(index: int, info: store.ImageInfo) -> dict[str, Any]:
    assert info.bucket is not None
    h, w = int(info.bucket["height"]), int(info.bucket["width"])
    return {"id": index, "file_name": info.image_id, "height": h, "width": w}


# ------------------------------------------------------------------------ COCO instances


def export_coco(
    store_path: str,
    image_id: str | None,
    output: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> dict[str, int]:
    """Write the instances of ``image_id`` (or of every done image, None) as COCO JSON.

    Returns the number of images, annotations and categories written.
    """
    mask_api = _mask_api()
    root, meta = _open(store_path, Kind.INSTANCES, "coco")
    target = _file_target(Path(output), overwrite)
    names = list(meta.classes)
    categories = [
        {"id": i, "name": str(name), "supercategory": ""} for i, name in enumerate(names) if i
    ]
    instances = InstanceTable(store_path, root, meta)
    entries: list[dict[str, Any]] = []
    n_annotations = 0
    with _replacing_file(target) as f:
        f.write(f'{{"info": {json.dumps(_info(store_path, meta))}, "licenses": [], ')
        f.write(f'"categories": {json.dumps(categories)}, "annotations": [')
        for index, info in enumerate(_images(root, image_id), start=1):
            ids = store.read_map(root, info)
            kinds, scores = instances.of(info, ids)
            for ann in instance_annotations(mask_api, ids, kinds, scores):
                n_annotations += 1
                record = {"id": n_annotations, "image_id": index, **ann}
                f.write(("" if n_annotations == 1 else ", ") + json.dumps(record))
            entries.append(_image_entry(index, info))
        f.write(f'], "images": {json.dumps(entries)}}}\n')
    log.info("wrote %s: %d images, %d annotations", target, len(entries), n_annotations)
    return {"images": len(entries), "annotations": n_annotations, "categories": len(categories)}


def _file_target(output: Path, overwrite: bool) -> Path:
    if output.is_symlink() or output.is_dir():
        raise UsageError(f"--output {str(output)!r} is a folder or a link; give a .json file")
    if output.exists() and not overwrite:
        raise UsageError(f"{output} exists; use --overwrite to replace it")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchsegError(f"cannot create {output.parent}: {exc.strerror or exc}") from None
    return output


@contextlib.contextmanager
def _replacing_file(target: Path) -> Iterator[IO[str]]:
    """A temporary file beside ``target``, moved onto it when the block ends without error."""
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            yield f
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


# ------------------------------------------------------------------------ COCO panoptic


def export_coco_panoptic(
    store_path: str,
    image_id: str | None,
    output: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> dict[str, int]:
    """Write ``image_id`` (or every done image, None) of a panoptic store as COCO panoptic:
    a PNG per image and ``panoptic.json`` in the folder ``output``.

    Returns the number of images, segments and categories written.
    """
    from batchseg.render import save_png, stored_colours

    root, meta = _open(store_path, Kind.PANOPTIC, "coco-panoptic")
    target = Path(output)
    _check_folder(target, overwrite)
    names = list(meta.classes)
    is_thing = list(meta.is_thing or [False] * len(names))
    stored = stored_colours(meta.raw.get("colours"), names, str(store_path))
    colours = stored or [[0, 0, 0]] * len(names)
    classes = PanopticClasses(tuple(names), tuple(is_thing), (), ())
    categories = [
        {
            "id": i,
            "name": names[i],
            "supercategory": "thing" if is_thing[i] else "stuff",
            "isthing": int(is_thing[i]),
            "color": [int(c) for c in colours[i]],
        }
        for i in range(1, len(names))
    ]
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    tmp.mkdir(parents=True)
    try:
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        used: set[str] = set()
        for index, info in enumerate(_images(root, image_id), start=1):
            labels = store.read_map(root, info)
            if labels.size and int(labels.max()) > _MAX_SEGMENT_ID:
                raise StoreError(f"image {info.image_id!r}: label {labels.max()} needs > 24 bits")
            name = _png_name(info.image_id, used)
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            save_png(_id_rgb(labels), tmp / name)
            segs = segments(labels, classes)
            annotations.append(
                {"image_id": index, "file_name": name, "segments_info": _segments_info(segs)}
            )
            images.append(_image_entry(index, info))
        doc = {
            "info": {**_info(store_path, meta), "label_offset": OFFSET},
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
        (tmp / PANOPTIC_JSON).write_text(json.dumps(doc), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    n_segments = sum(len(a["segments_info"]) for a in annotations)
    log.info("wrote %s: %d images, %d segments", target, len(images), n_segments)
    return {"images": len(images), "segments": n_segments, "categories": len(categories)}


def _check_folder(target: Path, overwrite: bool) -> None:
    """Refuse an output folder that exists, unless ``overwrite`` and it is empty or an earlier
    panoptic export (its ``panoptic.json`` says batchseg wrote it)."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise UsageError(f"--output {str(target)!r} is not a folder")
    if not target.exists():
        return
    if not overwrite:
        raise UsageError(f"{target} exists; use --overwrite to replace it")
    if not any(target.iterdir()):
        return
    try:
        doc = json.loads((target / PANOPTIC_JSON).read_text(encoding="utf-8"))
        ours = isinstance(doc, dict) and "batchseg" in doc.get("info", {})
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise UsageError(
            f"--overwrite refuses to replace {target}: not empty and not a batchseg "
            "coco-panoptic export"
        )


def _png_name(image_id: str, used: set[str]) -> str:
    """A relative PNG path for ``image_id`` inside the export (no ``..``), unique in ``used``."""
    parts = [
        p for p in PurePosixPath(image_id.replace("\\", "/")).parts if p not in ("/", ".", "..")
    ]
    stem = PurePosixPath(*parts) if parts else PurePosixPath("image")
    name = str(stem.with_suffix(".png")) if stem.suffix else f"{stem}.png"
    n = 1
    while name in used:
        n += 1
        name = f"{stem}-{n}.png"
    used.add(name)
    return name


def _id_rgb(labels: np.ndarray) -> np.ndarray:
    """COCO panoptic colour of each segment id: ``id = R + 256 G + 256^2 B``."""
    ids = labels.astype(np.uint32)
    return np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)


def _segments_info(segs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    return [
        {
            "id": int(segs["label"][i]),
            "category_id": int(segs["class_index"][i]),
            "area": int(segs["area"][i]),
            "bbox": [
                int(segs["bbox_min_col"][i]),
                int(segs["bbox_min_row"][i]),
                int(segs["bbox_max_col"][i] - segs["bbox_min_col"][i]),
                int(segs["bbox_max_row"][i] - segs["bbox_min_row"][i]),
            ],
            "iscrowd": 0,
        }
        for i in range(len(segs["label"]))
    ]
