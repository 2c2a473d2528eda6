"""The report's gallery: which images it shows and their source | labels | overlay thumbnails,
and the truth beside them once the store was evaluated against truth images.

Only the gallery's images are decoded: the selection comes from the table (a query with
``--where``/``--sort``, or a seeded sample of the done images), then each chosen image's
labels are read once and its source decoded once.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchseg.errors import BatchsegError, one_line
from batchseg.query import Page, Selection
from batchseg.query.display import cell
from batchseg.report import pictures
from batchseg.report.index import CatalogueIndex, IndexedView
from batchseg.report.truth import TruthSource, find_source

log = logging.getLogger(__name__)

#: Statistics shown under each thumbnail (besides the id and status).
STATS_PER_CARD = 6


@dataclass
class Card:
    """One gallery entry: the image id, its key statistics and its thumbnails (data URIs)."""

    image_id: str
    status: str
    stats: list[tuple[str, str]]
    images: dict[str, str] = field(default_factory=dict)
    problem: str = ""


@dataclass
class Gallery:
    """The gallery's caption (how images were chosen) and its cards."""

    caption: str
    cards: list[Card]


def choose(
    view: Any, where: str | None, sort: str | None, sample: int, seed: int = 0
) -> tuple[str, Page, dict[str, str]]:
    """The gallery's rows: the ``where`` selection sorted by ``sort`` (first ``sample``), or,
    without either, a seeded random sample of ``sample`` done images in id order; and the
    error of each chosen image that failed."""
    if where or sort:
        plan = Selection(where, sort=sort, limit=sample).plan(view.columns())
        table = view.table([*plan.read, "error"])
        selection = plan.apply(table)
        what = f"where {where}" if where else "all images"
        order = f", sorted by {sort}" if sort else ""
        caption = f"{what}{order}: first {len(selection.rows)} of {selection.total:,}"
    else:
        plan = Selection("status == 'done'").plan(view.columns())
        table = view.table([*plan.read, "error"])
        done = np.flatnonzero((table["status"] == "done").to_numpy())
        rng = np.random.default_rng(seed)
        picked = np.sort(rng.choice(done, size=min(sample, done.size), replace=False))
        table = table.iloc[picked]
        selection = Page(int(done.size), plan.apply(table).rows)
        caption = f"a random sample (seed {seed}) of {len(picked)} of {done.size:,} done images"
    chosen = set(selection.rows["image_id"].astype(str))
    shown = table[table["image_id"].astype(str).isin(chosen)]
    errors = {str(i): str(e or "") for i, e in zip(shown["image_id"], shown["error"], strict=True)}
    return caption, selection, errors


def build(
    view: Any,
    where: str | None = None,
    sort: str | None = None,
    sample: int = 48,
    seed: int = 0,
    size: int = 160,
) -> Gallery:
    """The gallery: chosen rows and their thumbnails (``size`` px longest side)."""
    caption, selection, errors = choose(view, where, sort, sample, seed)
    records = selection.records()
    truth = _truth_source(view)
    statuses = {str(r["image_id"]): str(r.get("status") or "") for r in records}
    if records:  # one catalogue read instead of a scan per image
        index = CatalogueIndex(view.group)
        view = IndexedView(view.path, index, lambda i: (statuses[i], errors.get(i, "")))
    cards = []
    for record in records:
        image_id = str(record.pop("image_id"))
        status = str(record.pop("status", "")) or "unknown"
        stats = [(k, cell(v)) for k, v in record.items() if k not in ("error", "uri")]
        card = Card(image_id, status, stats[:STATS_PER_CARD])
        try:
            if status == "done":
                thumbs = _thumbnails(view, image_id, size, truth, card)
                card.images = {
                    "source": pictures.data_uri(thumbs["source"], "jpeg"),
                    "labels": pictures.data_uri(thumbs["mask"], "png"),
                    "overlay": pictures.data_uri(thumbs["overlay"], "jpeg"),
                }
                if "truth" in thumbs:
                    card.images["truth"] = pictures.data_uri(thumbs["truth"], "png")
            else:
                card.problem = errors.get(image_id) or status
        except (BatchsegError, OSError) as exc:
            card.problem = one_line(exc)
            log.debug("gallery: %s", card.problem)
        cards.append(card)
    broken = [c for c in cards if c.problem and c.status == "done" and not c.images]
    if broken:
        log.warning(
            "gallery: %d of %d images could not be drawn (first: %s)",
            len(broken),
            len(cards),
            broken[0].problem,
        )
    if truth is not None:
        caption += f"; truth from evaluation {truth.evaluation!r} ({truth.truth})"
    return Gallery(caption, cards)


def _truth_source(view: Any) -> TruthSource | None:
    """The newest evaluation's truth (a folder or CSV that is still there), else None."""
    try:
        source = find_source(view)
    except BatchsegError as exc:
        log.warning("gallery: no truth pictures: %s", one_line(exc))
        return None
    if source is not None and "://" not in source.truth and not os.path.exists(source.truth):
        log.warning("gallery: no truth pictures: %s is gone", source.truth)
        return None
    return source


def _thumbnails(
    view: Any, image_id: str, size: int, truth: TruthSource | None, card: Card
) -> dict[str, Any]:
    """The card's thumbnails; a truth that cannot be drawn is the card's problem, and the
    prediction is still shown."""
    if truth is None:
        return pictures.triptych(view, image_id, size)
    try:
        return pictures.triptych(view, image_id, size, truth=truth)
    except (BatchsegError, OSError) as exc:
        thumbs = pictures.triptych(view, image_id, size)  # raises when the prediction fails
        card.problem = f"truth: {one_line(exc)}"
        return thumbs
