"""Looking at a store's results: a self-contained HTML report (:func:`write_report`).

Modules:
:mod:`~batchseg.report.pictures` (source, labels, overlay and confidence pictures and
thumbnails), :mod:`~batchseg.report.facts` (numbers from the table and attributes),
:mod:`~batchseg.report.plots` (matplotlib figures), :mod:`~batchseg.report.gallery` and
:mod:`~batchseg.report.html` (the page).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from batchseg.errors import BatchsegError, UsageError

log = logging.getLogger(__name__)

__all__ = ["ReportResult", "build_report", "write_report"]


@dataclass(frozen=True)
class ReportResult:
    """What :func:`write_report` wrote: the file, its size, the gallery size and the time."""

    path: str
    bytes: int
    images: int
    seconds: float


def build_report(
    store: str,
    where: str | None = None,
    sort: str | None = None,
    sample: int = 48,
    seed: int = 0,
    thumbnail: int = 160,
) -> tuple[str, int]:
    """The report page of ``store`` as HTML text, and how many gallery images it shows.

    Statistics come from the table; only the gallery's images are decoded.

    Raises
    ------
    StoreError
        ``store`` is not a batchseg store.
    QueryError, UsageError
        A bad ``where`` or ``sort``, or ``sample`` out of range.
    """
    import batchseg
    from batchseg.report import facts as facts_mod
    from batchseg.report import gallery, html, plots

    if not 0 <= sample <= 10_000:
        raise UsageError("--sample must be between 0 and 10000")
    plots.require_matplotlib()
    view = batchseg.open(store)
    facts = facts_mod.gather(view)
    shown = gallery.build(view, where, sort, sample, seed, size=thumbnail)
    drawn = [
        plots.class_distribution(facts),
        *plots.per_image(facts),
        plots.image_sizes(facts),
        plots.throughput(facts),
    ]
    figures = [p for p in drawn if p is not None]
    ev_plots = [
        [p for p in (plots.iou_bars(ev), plots.confusion(ev)) if p is not None]
        for ev in facts.evaluations
    ]
    evaluation = html.evaluation_section(facts.evaluations, ev_plots)
    return html.page(facts, shown, figures, evaluation), len(shown.cards)


def write_report(
    store: str,
    output: str | os.PathLike[str],
    where: str | None = None,
    sort: str | None = None,
    sample: int = 48,
    seed: int = 0,
) -> ReportResult:
    """Write the report of ``store`` to ``output`` (written beside it, then renamed)."""
    started = time.perf_counter()
    out = Path(output)
    if out.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"--output must end in .html, got {str(out)!r}")
    text, images = build_report(store, where, sort, sample, seed)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f".{out.name}.partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(out)
    except OSError as exc:
        raise BatchsegError(f"cannot write {out}: {exc.strerror or exc}") from None
    size = out.stat().st_size
    log.debug("report of %s: %d bytes, %d gallery images", store, size, images)
    return ReportResult(str(out), size, images, time.perf_counter() - started)
