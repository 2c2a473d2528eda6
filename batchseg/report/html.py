"""The report as one self-contained HTML page: inline CSS, no scripts, images as data URIs.

A Content-Security-Policy in the page itself forbids every network fetch (only ``data:``
images and inline styles are allowed), so it opens the same anywhere, offline.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from batchseg.core.kinds import Kind
from batchseg.report.facts import Facts
from batchseg.report.gallery import Gallery

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 16px;
color:#222}
h1{font-size:22px;margin:16px 0 4px}h2{font-size:18px;border-bottom:1px solid #ddd;
padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f4f4f4}td.n{text-align:right}
code{background:#f4f4f4;padding:0 3px;word-break:break-all}
.cards{display:flex;gap:12px;flex-wrap:wrap}.stat{border:1px solid #ddd;border-radius:6px;
padding:8px 14px;min-width:90px}.stat b{display:block;font-size:20px}
.done b{color:#1a7f37}.failed b{color:#c62828}.pending b{color:#8a6d00}
.legend span.sw{display:inline-block;width:14px;height:14px;border:1px solid #777;
vertical-align:middle;margin-right:4px}.legend li{display:inline-block;margin-right:14px}
.legend ul{padding:0;list-style:none;margin:4px 0}
.plots{display:flex;flex-wrap:wrap;gap:16px}.plots figure{margin:0;border:1px solid #eee;
padding:6px}.plots img{max-width:520px;height:auto;display:block}
figcaption{font-weight:600;margin-bottom:4px}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:12px}
.card{border:1px solid #ddd;border-radius:6px;padding:6px}.card .row{display:flex;gap:4px}
.card img{width:calc((100% - 8px)/3);height:auto;image-rendering:auto;background:#eee}
.card .id{font-family:monospace;font-size:12px;word-break:break-all;font-weight:600}
.card .kv{font-size:12px;color:#444}.card .problem{color:#c62828;font-size:12px}
.note{color:#666;font-size:13px}details{margin:6px 0}
"""


def page(facts: Facts, gallery: Gallery, plots: Sequence[tuple[str, str]], evaluation: str) -> str:
    """The whole report page."""
    title = f"batchseg report: {facts.store}"
    body = "\n".join(
        [
            header(facts),
            status_section(facts),
            plots_section(facts, plots),
            evaluation,
            gallery_section(gallery),
            _footer(facts),
        ]
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: frozenset[int] = frozenset()
) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    lines = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{escape(str(v))}</td>' if i in numeric else f"<td>{escape(str(v))}</td>"
            for i, v in enumerate(row)
        )
        lines.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def legend(entries: Sequence[tuple[str, Sequence[int]]]) -> str:
    """Class names with their colour swatches."""
    items = "".join(
        f'<li><span class="sw" style="background:rgb({int(c[0])},{int(c[1])},{int(c[2])})">'
        f"</span>{escape(str(name))}</li>"
        for name, c in entries
    )
    return f'<div class="legend"><ul>{items}</ul></div>'


def _size(n: int | None) -> str:
    if n is None:
        return "unknown (not a local store)"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def header(facts: Facts) -> str:
    """Method, parameters, legend, store size, versions and runs."""
    params = json.dumps(facts.params, sort_keys=True)
    what = (
        "classes" if Kind(facts.kind).class_map else "label colours (region colours are arbitrary)"
    )
    versions = ", ".join(f"{k} {v}" for k, v in facts.versions.items())
    runs = [
        (
            i + 1,
            str(r.get("finished", "")).replace("T", " "),
            f"{float(r.get('seconds', 0)):.1f}",
            r.get("processed", ""),
            f"{float(r.get('images_per_second', 0)):.2f}",
            f"{r.get('done', '')} / {r.get('failed', '')} / {r.get('pending', '')}",
        )
        for i, r in enumerate(facts.runs)
    ]
    run_table = (
        _table(
            ["run", "finished", "seconds", "processed", "images/s", "done / failed / pending"],
            runs,
            numeric=frozenset({0, 2, 3, 4}),
        )
        if runs
        else '<p class="note">no run has finished yet</p>'
    )
    return (
        f"<header><h1>{escape(facts.store)}</h1>"
        f"<p>method <code>{escape(facts.method)}</code> ({escape(facts.kind)}), parameters "
        f"<code>{escape(params)}</code></p>"
        + (f"<p>stacks: {escape(facts.stacks)}</p>" if facts.stacks else "")
        + f"<p>{escape(what)}:</p>{legend(facts.legend)}"
        f"<p>store size {escape(_size(facts.store_bytes))}; created {escape(facts.created)}; "
        f"cluster: {escape(facts.cluster)}</p>"
        f"<details><summary>versions</summary><p>{escape(versions)}</p></details>"
        f'<h2 id="runs">Runs</h2>{run_table}</header>'
    )


def status_section(facts: Facts) -> str:
    """Done / failed / pending counts and the failures grouped by error."""
    c = facts.counts
    cards = "".join(
        f'<div class="stat {k}"><b>{c.get(k, 0):,}</b>{k}</div>'
        for k in ("done", "failed", "pending", "damaged")
        if k != "damaged" or c.get(k)
    )
    parts = [
        f'<section id="status"><h2>Status</h2><p>{c["images"]:,} images</p>',
        f'<div class="cards">{cards}</div>',
    ]
    if facts.failures:
        rows = [(g["count"], g["error"], ", ".join(g["ids"])) for g in facts.failures]
        parts.append("<h3>Failures by error</h3>")
        parts.append(_table(["images", "error", "first ids"], rows, numeric=frozenset({0})))
        if facts.failure_groups_left:
            parts.append(
                f'<p class="note">{facts.failure_groups_left} more errors: '
                "<code>batchseg status STORE --all</code></p>"
            )
    parts.append("</section>")
    return "".join(parts)


def figures(plots: Sequence[tuple[str, str]]) -> str:
    """Plots as figures (each an ``img`` with a data URI)."""
    return "".join(
        f'<figure><figcaption>{escape(t)}</figcaption><img alt="{escape(t)}" src="{uri}"></figure>'
        for t, uri in plots
    )


def plots_section(facts: Facts, plots: Sequence[tuple[str, str]]) -> str:
    """The distributions, with what the store records about timing."""
    note = (
        "The store records, per run, when it finished, its wall time and images per second "
        "(attrs <code>runs</code>), and per image only the worker's segmentation time (the "
        "<code>seconds</code> column): there are no per-image completion times, so throughput "
        "is drawn per run, not over the course of a run."
    )
    empty = "" if plots else '<p class="note">no finished images to plot</p>'
    return (
        f'<section id="distributions"><h2>Distributions</h2>{empty}'
        f'<div class="plots">{figures(plots)}</div><p class="note">{note}</p></section>'
    )


def evaluation_section(
    evaluations: Sequence[dict[str, Any]], plots: list[list[tuple[str, str]]]
) -> str:
    """Each evaluation's name, summary numbers, plots and worst images ("" without any)."""
    if not evaluations:
        return ""
    parts = ['<section id="evaluation"><h2>Evaluation</h2>']
    for ev, ev_plots in zip(evaluations, plots, strict=True):
        name = ev.get("name") or ev.get("reference") or "evaluation"
        parts.append(f"<h3>{escape(str(name))}</h3>")
        hidden = ("name", "node")
        scalars = [
            (k, f"{v:.4g}" if isinstance(v, float) else v)
            for k, v in ev.items()
            if isinstance(v, int | float | str) and k not in hidden
        ]
        if scalars:
            parts.append(_table(["measure", "value"], scalars))
        parts.append(f'<div class="plots">{figures(ev_plots)}</div>')
        worst = ev.get("worst") or ev.get("worst_images") or []
        if isinstance(worst, list) and worst:
            rows = [_worst_row(w) for w in worst[:20]]
            parts.append(
                "<h4>Worst images</h4>" + _table(["image", "score"], rows, numeric=frozenset({1}))
            )
    parts.append("</section>")
    return "".join(parts)


def _worst_row(entry: Any) -> tuple[str, str]:
    """(image id, "metric value") of one worst image."""
    if not isinstance(entry, dict):
        return str(entry), ""
    scores = [(k, v) for k, v in entry.items() if k != "image_id"]
    text = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in scores)
    return str(entry.get("image_id", "")), text


def gallery_section(gallery: Gallery) -> str:
    """The gallery: per image its id, statistics and source | labels | overlay (| truth)
    thumbnails."""
    cards = []
    for card in gallery.cards:
        imgs = "".join(
            f'<img alt="{kind} of {escape(card.image_id)}" title="{kind}" src="{uri}">'
            for kind, uri in card.images.items()
        )
        stats = " &middot; ".join(f"{escape(k)} {escape(v)}" for k, v in card.stats)
        problem = f'<div class="problem">{escape(card.problem)}</div>' if card.problem else ""
        cards.append(
            f'<div class="card"><div class="id">{escape(card.image_id)}</div>'
            f'<div class="row">{imgs}</div><div class="kv">{stats}</div>{problem}</div>'
        )
    empty = "" if cards else '<p class="note">no image matches</p>'
    truth = " | truth" if any("truth" in c.images for c in gallery.cards) else ""
    return (
        f'<section id="gallery"><h2>Gallery</h2><p class="note">{escape(gallery.caption)}; '
        f"each: source | labels | overlay{truth}</p>{empty}"
        f'<div class="gallery">{"".join(cards)}</div></section>'
    )


def _footer(facts: Facts) -> str:
    from batchseg import __version__

    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f'<footer><p class="note">written by batchseg {escape(__version__)} at {now}</p></footer>'
    )
