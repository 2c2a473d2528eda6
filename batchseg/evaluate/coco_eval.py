"""COCO AP of instance masks: pycocotools' ``COCOeval`` (``iouType="segm"``), run once by the
launcher on every scored image's detections (COCO RLE with scores, made by the tasks).

Dataset values are ``COCOeval.summarize``'s twelve numbers (``ap`` = AP at IoU .50:.05:.95,
``ap50``, ``ap75``, ``ap_small``, ``ap_medium``, ``ap_large``, ``ar1``, ``ar10``, ``ar100``,
``ar_small``, ``ar_medium``, ``ar_large``) and per class ``ap``, ``ap50``, ``ap75`` (area
"all", 100 detections). Per image: ``n_truth`` (truth objects that count: not crowd, not
ignored), ``n_pred`` (detections of the scored classes), ``matched50`` (detections matched to a
truth object at IoU 0.5, area "all", the first 100 per class by score), and ``ap``, ``ap50``,
``ap75``: ``COCOeval.accumulate`` restricted to that image, so the mean over the classes with
truth objects in it (NaN without any; a false positive of a class the image has no truth of
does not lower it: see ``n_pred`` and ``matched50``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from batchseg.errors import BatchsegError
from batchseg.evaluate.coco_truth import CocoTruth

log = logging.getLogger(__name__)

STATS = (
    "ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
    "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large",
)  # fmt: skip
#: Per-image values, in column order.
IMAGE_METRICS = ("ap", "ap50", "ap75", "n_truth", "n_pred", "matched50")


def _api() -> tuple[Any, Any, Any]:
    try:
        from pycocotools import mask
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise BatchsegError(
            "scoring instances needs pycocotools: pip install 'batchseg[coco]'"
        ) from None
    return COCO, COCOeval, mask


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """pycocotools prints progress: captured and logged at debug level instead."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        yield
    if out.getvalue().strip():
        log.debug("pycocotools: %s", " | ".join(out.getvalue().split("\n")))


def coco_ap(
    truth: CocoTruth,
    detections: Mapping[str, Sequence[Mapping[str, Any]]],
    class_names: Sequence[str],
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Dataset result and per-image rows (:data:`IMAGE_METRICS`) of ``detections`` (store
    image id -> COCO annotations with store class indices as ``category_id``) against
    ``truth``, over the images of ``detections``."""
    COCO, COCOeval, mask_api = _api()
    ids = sorted(detections)
    coco_ids = {i: truth.images[i]["id"] for i in ids}
    category: dict[int, int] = {}
    for cat_id, cls in sorted(truth.classes.items()):
        category.setdefault(cls, cat_id)  # two categories of one name: the first
    with _quiet():
        gt = _coco(COCO, truth.doc, set(coco_ids.values()), mask_api)
        dt = COCO()
        dt.dataset = {
            "images": gt.dataset["images"],
            "categories": truth.doc["categories"],
            "annotations": list(_results(detections, coco_ids, category)),
        }
        dt.createIndex()
        ev = COCOeval(gt, dt, "segm")
        ev.params.imgIds = sorted(coco_ids.values())
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        result: dict[str, Any] = {k: _value(v) for k, v in zip(STATS, ev.stats, strict=True)}
        result["per_class"] = _per_class(ev, truth.classes, class_names)
        rows = _image_rows(ev, ids, coco_ids, detections)
    result["n_truth"] = int(sum(r[3] for r in rows.values()))
    result["n_pred"] = int(sum(r[4] for r in rows.values()))
    return result, rows


def _coco(COCO: Any, doc: Mapping[str, Any], image_ids: set[int], mask_api: Any) -> Any:
    """A pycocotools COCO of the truth's images in ``image_ids`` and their annotations, with
    ``iscrowd`` 0, ``id`` and ``area`` (of the mask) filled in where the file has none."""
    images = [im for im in doc["images"] if im.get("id") in image_ids]
    sizes = {im["id"]: (int(im["height"]), int(im["width"])) for im in images}
    anns = []
    for k, ann in enumerate(doc.get("annotations") or [], start=1):
        if ann.get("image_id") not in image_ids:
            continue
        ann = {"iscrowd": 0, "id": k, **ann}
        if "area" not in ann:
            h, w = sizes[ann["image_id"]]
            ann["area"] = float(mask_api.area(_rle(mask_api, ann["segmentation"], h, w)))
        anns.append(ann)
    coco = COCO()
    coco.dataset = {"images": images, "categories": doc["categories"], "annotations": anns}
    coco.createIndex()
    return coco


def _rle(mask_api: Any, segm: Any, h: int, w: int) -> Any:
    if isinstance(segm, list):
        return mask_api.merge(mask_api.frPyObjects(segm, h, w))
    if isinstance(segm.get("counts"), list):
        return mask_api.frPyObjects(segm, h, w)
    return segm


def _results(
    detections: Mapping[str, Sequence[Mapping[str, Any]]],
    coco_ids: Mapping[str, int],
    category: Mapping[int, int],
) -> Iterator[dict[str, Any]]:
    n = 0
    for image_id, anns in detections.items():
        for ann in anns:
            n += 1
            cat = category[int(ann["category_id"])]
            yield {**ann, "id": n, "image_id": coco_ids[image_id], "category_id": cat}


def _value(v: float) -> float | None:
    return None if v < 0 or not np.isfinite(v) else float(v)


def _mean_defined(p: np.ndarray) -> float | None:
    defined = p[p > -1]
    return float(defined.mean()) if defined.size else None


def _per_class(ev: Any, classes: Mapping[int, int], names: Sequence[str]) -> dict[str, Any]:
    """``{class: {ap, ap50, ap75}}`` from ``precision[T, R, K, A, M]`` (area all, 100)."""
    precision = ev.eval["precision"]
    thresholds = list(np.round(ev.params.iouThrs, 2))
    t50, t75 = thresholds.index(0.5), thresholds.index(0.75)
    out = {}
    for k, cat_id in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        out[str(names[classes[cat_id]])] = {
            "ap": _mean_defined(p),
            "ap50": _mean_defined(p[t50]),
            "ap75": _mean_defined(p[t75]),
        }
    return out


def _image_rows(
    ev: Any,
    ids: Sequence[str],
    coco_ids: Mapping[str, int],
    detections: Mapping[str, Sequence[Mapping[str, Any]]],
) -> dict[str, np.ndarray]:
    """Per-image values (see the module docstring) from ``evalImgs``, laid out by ``evaluate``
    as ``[category][area range][image]`` (area "all" first)."""
    params = ev.params
    n_img, n_area = len(params.imgIds), len(params.areaRng)
    position = {img: n for n, img in enumerate(params.imgIds)}
    t50 = list(np.round(params.iouThrs, 2)).index(0.5)
    rows = {}
    for image_id in ids:
        i = position[coco_ids[image_id]]
        n_truth = matched = 0
        mine: list[tuple[int, dict[str, Any]]] = []
        for k, cat_id in enumerate(params.catIds):
            e = ev.evalImgs[k * n_area * n_img + i]
            if e is None:
                continue
            n_truth += int(np.sum(np.asarray(e["gtIgnore"]) == 0))
            dt_ok = ~np.asarray(e["dtIgnore"], dtype=bool).reshape(len(params.iouThrs), -1)[t50]
            hits = np.asarray(e["dtMatches"]).reshape(len(params.iouThrs), -1)[t50] > 0
            matched += int(np.sum(hits & dt_ok))
            mine.append((cat_id, e))
        ap = _image_ap(ev, coco_ids[image_id], mine)
        values = [ap[0], ap[1], ap[2], n_truth, len(detections[image_id]), matched]
        rows[image_id] = np.array([np.nan if v is None else v for v in values], dtype=float)
    return rows


def _image_ap(
    ev: Any, coco_id: int, entries: Sequence[tuple[int, dict[str, Any]]]
) -> tuple[float | None, float | None, float | None]:
    """AP, AP50, AP75 of one image: ``accumulate`` on a copy of ``ev`` that holds only that
    image's ``evalImgs`` (area "all", the last ``maxDets``)."""
    if not entries:
        return None, None, None
    sub = copy.copy(ev)
    params = copy.copy(ev.params)
    params.imgIds, params.catIds = [coco_id], [c for c, _ in entries]
    params.areaRng, params.areaRngLbl = [params.areaRng[0]], ["all"]
    params.maxDets = [params.maxDets[-1]]
    sub.params, sub._paramsEval = params, copy.copy(params)  # noqa: SLF001 - pycocotools' own
    sub.evalImgs = [e for _, e in entries]
    sub.accumulate()
    precision = sub.eval["precision"][:, :, :, 0, 0]
    thresholds = list(np.round(params.iouThrs, 2))
    return (
        _mean_defined(precision),
        _mean_defined(precision[thresholds.index(0.5)]),
        _mean_defined(precision[thresholds.index(0.75)]),
    )
