"""The report's plots: matplotlib figures (no pyplot, so no GUI backend) as SVG data URIs.

Each function returns ``(title, data_uri)`` or None when the store has nothing to plot for it.
Text stays text in the SVG (``svg.fonttype: none``), so plots are small and searchable.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from batchseg.errors import BatchsegError
from batchseg.report.facts import Facts, class_pixels

Plot = tuple[str, str]
_FIGSIZE = (5.0, 3.0)
_BAR = "#4c72b0"


def require_matplotlib() -> None:
    """BatchsegError naming the extra when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BatchsegError(
            "the report's plots need matplotlib: pip install 'batchseg[report]'"
        ) from None


def _figure(size: tuple[float, float] = _FIGSIZE) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="tight")
    return fig, fig.add_subplot()


def _uri(fig: Any) -> str:
    from matplotlib import rc_context

    buffer = io.BytesIO()
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "batchseg"}):
        fig.savefig(buffer, format="svg")
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _hex(colour: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*tuple(int(c) for c in colour[:3]))


def class_distribution(facts: Facts) -> Plot | None:
    """Share of all pixels per class (class maps), bars in the class colours."""
    rows = class_pixels(facts)
    if not rows:
        return None
    total = max(1, sum(p for _, p, _ in rows))
    fig, ax = _figure((5.0, max(2.0, 0.3 * len(rows) + 1.0)))
    names = [n for n, _, _ in rows][::-1]
    shares = [p / total for _, p, _ in rows][::-1]
    colours = [_hex(c) for _, _, c in rows][::-1]
    ax.barh(names, shares, color=colours, edgecolor="#555555", linewidth=0.5)
    ax.set_xlabel("fraction of all pixels (done images)")
    ax.set_xlim(0, max(shares) * 1.1 or 1)
    return "Pixels per class", _uri(fig)


def histogram(values: np.ndarray, title: str, xlabel: str, log: bool = False) -> Plot | None:
    """A histogram of the finite ``values`` (None when there are none)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    fig, ax = _figure()
    if log and (values > 0).all() and values.max() > 10 * values.min():
        bins: Any = np.geomspace(values.min(), values.max(), 40)
        ax.set_xscale("log")
    else:
        bins = min(40, max(1, np.unique(values).size))
    ax.hist(values, bins=bins, color=_BAR)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images")
    ax.set_title(f"n = {values.size:,}, median {np.median(values):.4g}", fontsize=9)
    return title, _uri(fig)


def per_image(facts: Facts) -> list[Plot]:
    """Histograms of the per-image statistics the store has."""
    t = facts.table
    wanted = [
        ("n_regions", "Regions per image", "regions", True),
        ("n_objects", "Objects per image", "objects", True),
        ("mean_confidence", "Mean confidence per image", "mean confidence", False),
        ("seconds", "Segmentation time per image", "seconds (worker)", True),
    ]
    out = []
    for column, title, label, log in wanted:
        if column in t:
            plot = histogram(t[column].to_numpy(), title, label, log=log)
            if plot:
                out.append(plot)
    return out


def image_sizes(facts: Facts, top: int = 12) -> Plot | None:
    """The most common image sizes (width x height) and how many done images have each."""
    sizes = facts.sizes.head(top)
    if sizes.empty:
        return None
    fig, ax = _figure((5.0, max(2.0, 0.28 * len(sizes) + 1.0)))
    labels = [f"{int(w)} x {int(h)}" for h, w in zip(sizes["height"], sizes["width"], strict=True)]
    ax.barh(labels[::-1], sizes["images"].to_numpy()[::-1], color=_BAR)
    ax.set_xlabel("images")
    rest = len(facts.sizes) - len(sizes)
    ax.set_title(f"{len(facts.sizes)} sizes" + (f" ({rest} not shown)" if rest else ""), fontsize=9)
    return "Image sizes (width x height)", _uri(fig)


def throughput(facts: Facts) -> Plot | None:
    """Images per second of each recorded run, against when it finished."""
    runs = [r for r in facts.runs if r.get("images_per_second") is not None]
    if not runs:
        return None
    fig, ax = _figure()
    labels = [
        f"{i + 1}\n{str(r.get('finished', ''))[:16].replace('T', ' ')}" for i, r in enumerate(runs)
    ]
    rates = [float(r["images_per_second"]) for r in runs]
    ax.bar(range(len(runs)), rates, color=_BAR, tick_label=labels)
    ax.set_ylabel("images / s (whole run)")
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title("per run: processed images / wall seconds", fontsize=9)
    return "Throughput per run", _uri(fig)


def iou_bars(evaluation: dict[str, Any]) -> Plot | None:
    """Per-class IoU of one evaluation (``per_class_iou`` or ``iou``: class -> value)."""
    values = evaluation.get("per_class_iou") or evaluation.get("iou")
    if not isinstance(values, dict) or not values:
        return None
    names = [str(k) for k in values]
    iou = [float(v) if v is not None else np.nan for v in values.values()]
    fig, ax = _figure((5.0, max(2.0, 0.3 * len(names) + 1.0)))
    ax.barh(names[::-1], iou[::-1], color=_BAR)
    ax.set_xlim(0, 1)
    ax.set_xlabel("IoU")
    return "Per-class IoU", _uri(fig)


def confusion(evaluation: dict[str, Any]) -> Plot | None:
    """The confusion matrix of one evaluation as a heatmap (rows: truth, columns: predicted)."""
    matrix = evaluation.get("confusion") or evaluation.get("confusion_matrix")
    try:
        m = np.asarray(matrix, dtype=float)
    except (TypeError, ValueError):
        return None
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.size == 0:
        return None
    names = [str(c) for c in evaluation.get("classes") or range(m.shape[0])][: m.shape[0]]
    rows = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = _figure((5.0, 4.2))
    image = ax.imshow(rows, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    return "Confusion matrix (row-normalised)", _uri(fig)
