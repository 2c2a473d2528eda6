"""Per-object measurements of a huge label map, tile by tile (pure numpy, no Dask).

Each tile window of the final (stitched, image-wide ids) label map gives mergeable partial
sums per label (:func:`tile_partials`); :func:`combine_partials` merges any number of them
(associative and commutative, so partials can be reduced in a tree) and
:func:`finalise_partials` turns the result into the columns of
:func:`batchseg.measure.objects.measure_objects`; :func:`merge_partials` does both. Every
feature equals scikit-image's ``regionprops`` on the whole image up to float rounding:

- counts, integer sums and bboxes are exact integers. Coordinates enter through the horizontal
  runs of each tile (closed-form sums per run, not per pixel); second moments are kept as
  integer-valued float64 sums about each label's bbox corner (exact below 2**53, only rounded
  beyond) and the central moments are taken with an exact integer quotient/remainder split,
  so symmetric objects keep the exact ``a == c`` / ``b == 0`` ties that pick skimage's
  orientation branch. Eccentricity, orientation, axis lengths and equivalent diameter apply
  skimage's formulas (``_regionprops``/``_moments``) to that inertia tensor;
- intensity means are float64 sums over pixels (grey, or R, G, B with the luminance of
  :func:`~batchseg.measure.objects.luminance`);
- ``perimeter``: skimage classifies each boundary pixel (a pixel of the object with a
  4-neighbour outside it) by the boundary pixels of the same object in its 3x3 neighbourhood
  and sums a weight per class. A pixel's class depends on the labels up to 2 pixels away, so
  with ``context`` (the labels around the window, :data:`HALO` = 2 pixels deep where the image
  continues) each tile counts the classes of its own pixels exactly and the counts add up.
  Without ``context`` the window is measured as if it were the whole image, so cut sides count
  as image border: an object's perimeter then changes by at most ``sqrt(2)`` per pixel of it
  in the two rows/columns of a tile along a cut (tested);
- ``solidity`` = area / ``area_convex``, skimage counting the pixels of the filled convex hull
  of the pixels' edge midpoints. The hull of a union is the hull of its parts' hull vertices,
  so a partial keeps only the vertices of each label's hull (twice-scaled integer coordinates,
  from the first and last pixel of each row), and the pixels are counted at the end row by
  row with exact integer floor division (memory bounded by batches of rows). Hulls of all
  labels are found at once, as the left chain (convex minorant of each row's first pixel) and
  right chain: points that are no running extreme or lie beyond the chord of their neighbours
  are dropped, vectorised, until none is left.

Float rounding remains where skimage also rounds; sums of squares are exact integers only below
2**53 (objects with pixels * extent**2 below about 9e15). Where the inertia tensor ties exactly
(``a == c``) skimage's branch (+-pi/4) is taken, and ``b`` that is exactly 0 gives skimage's
exact-arithmetic angle (a one-row object: +pi/2). On mirror-symmetric objects skimage's own
``b`` can be rounding noise instead of 0, so it may report -pi/2 where this gives +pi/2: the
same orientation (angles are modulo pi), and the only difference beyond rounding.

A partial is a dict of numpy arrays: per-label columns (:data:`PARTIAL_KEYS`, sorted by label)
and the hull chains (:data:`HULL_KEYS`: left chain then right chain, each sorted by label and
row, ``hull_right`` telling them apart). Label ids must be below 2**63.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from batchseg.measure.objects import (
    OBJECT_COLUMNS,
    OBJECT_DTYPES,
    RGB_COLUMNS,
    check_labels,
    intensity_channels,
    luminance,
)

HALO = 2
_INTENSITY = ("sum_grey", "sum_red", "sum_green", "sum_blue")
_INT_KEYS = ("label", "n", "sum_r", "sum_c", "min_r", "min_c", "max_r", "max_c")
PARTIAL_KEYS: tuple[str, ...] = (
    *_INT_KEYS,
    "sq_rr",
    "sq_cc",
    "sq_rc",
    *_INTENSITY,
    "perim_1",
    "perim_2",
    "perim_3",
)
HULL_KEYS: tuple[str, ...] = ("hull_label", "hull_y", "hull_x", "hull_right")
# skimage.measure.perimeter: weight of each 3x3 code, grouped into 3 classes (weight 0 dropped)
_PERIMETER_WEIGHTS = np.array([1.0, np.sqrt(2), (1 + np.sqrt(2)) / 2])
_CODE_CLASS = np.zeros(50, np.int64)
_CODE_CLASS[[5, 7, 15, 17, 25, 27]] = 1
_CODE_CLASS[[21, 33]] = 2
_CODE_CLASS[[13, 23]] = 3
_ROW_CHUNK = 1 << 22  # hull rows counted per batch

Partial = dict[str, np.ndarray]


def _dtype(key: str) -> type:
    return np.int64 if key in _INT_KEYS or key.startswith(("perim", "hull")) else np.float64


def empty_partial() -> Partial:
    """A partial with no labels."""
    return {k: np.zeros(0, _dtype(k)) for k in (*PARTIAL_KEYS, *HULL_KEYS)}


def _compact(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``labels`` renumbered 1..K (0 stays 0), the K original ids (sorted) and their counts."""
    flat = labels.ravel()
    top = int(flat.max())
    if np.issubdtype(flat.dtype, np.signedinteger) and int(flat.min()) < 0:
        raise ValueError("labels must be non-negative")
    if top <= 4 * flat.size + 1024:
        counts = np.bincount(flat.astype(np.intp, copy=False), minlength=top + 1)
        counts[0] = 0
        ids = np.flatnonzero(counts)
        lut = np.zeros(top + 1, np.int32 if ids.size < 2**31 - 1 else np.int64)
        lut[ids] = np.arange(1, ids.size + 1)
        return lut[flat].reshape(labels.shape), ids.astype(np.int64), counts[ids]
    ids, inverse = np.unique(flat, return_inverse=True)
    if ids[0] == 0:
        ids = ids[1:]
    else:
        inverse = inverse + 1
    counts = np.bincount(inverse, minlength=ids.size + 1)[1:]
    return inverse.reshape(labels.shape), ids.astype(np.int64), counts


def _runs(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal runs of equal non-zero labels: (compact label, row, first col, last col),
    sorted by label then raster order."""
    h, w = lab.shape
    diff = lab[:, 1:] != lab[:, :-1]
    nonzero = lab != 0
    edge = np.ones((h, w), bool)
    edge[:, 1:] = diff
    starts = np.flatnonzero(edge & nonzero)
    edge[:, 1:] = True
    edge[:, :-1] = diff
    ends = np.flatnonzero(edge & nonzero)
    run_lab = lab.ravel()[starts]
    order = np.argsort(run_lab, kind="stable")
    starts, ends = starts[order], ends[order]
    return run_lab[order].astype(np.int64), starts // w, starts % w, ends % w


def _group_starts(*keys: np.ndarray) -> np.ndarray:
    """Indices where any of the sorted ``keys`` changes (first of each group)."""
    new = np.zeros(keys[0].size, bool)
    if keys[0].size:
        new[0] = True
    for key in keys:
        new[1:] |= key[1:] != key[:-1]
    return np.flatnonzero(new)


def _moments(
    g: np.ndarray, row: np.ndarray, c0: np.ndarray, c1: np.ndarray, k: int
) -> dict[str, np.ndarray]:
    """Per-label coordinate sums of runs (tile coordinates), exact integer values."""
    cnt = c1 - c0 + 1
    sum_c = (c0 + c1) * cnt // 2
    sum_cc = (c1 * (c1 + 1) * (2 * c1 + 1) - (c0 - 1) * c0 * (2 * c0 - 1)) // 6
    weights = {"sum_r": row * cnt, "sum_c": sum_c, "sq_rr": row * row * cnt}
    weights |= {"sq_cc": sum_cc, "sq_rc": row * sum_c}
    return {key: np.bincount(g, weights=w, minlength=k + 1)[1:] for key, w in weights.items()}


def _shift(part: Partial, dr: np.ndarray, dc: np.ndarray) -> dict[str, np.ndarray]:
    """Coordinate sums about a corner moved up/left by ``(dr, dc)`` (sums ``S`` stay int64)."""
    n, sr, sc = part["n"], part["sum_r"], part["sum_c"]
    fr, fc, fn = dr.astype(np.float64), dc.astype(np.float64), n.astype(np.float64)
    return {
        "sum_r": sr + n * dr,
        "sum_c": sc + n * dc,
        "sq_rr": part["sq_rr"] + 2.0 * fr * sr + fn * fr * fr,
        "sq_cc": part["sq_cc"] + 2.0 * fc * sc + fn * fc * fc,
        "sq_rc": part["sq_rc"] + fr * sc + fc * sr + fn * fr * fc,
    }


def tile_partials(
    labels: np.ndarray,
    image: np.ndarray,
    offset: tuple[int, int],
    *,
    context: np.ndarray | None = None,
    core: tuple[slice, slice] | None = None,
) -> Partial:
    """Mergeable per-label sums of one tile window of the final labels (ids image-wide).

    ``image`` is the same window (grey or RGB, as for ``measure_objects``) and ``offset`` its
    top-left pixel in the image. ``context`` is a label window around it, ``labels`` being
    ``context[core]``, grown by at least :data:`HALO` pixels on each side where the image
    continues (more is fine; fewer means the image ends there): it makes the perimeter exact.
    Without it the window is measured as if it were the whole image.
    """
    check_labels(labels)
    pixels = intensity_channels(image, labels.shape)
    if context is None:
        context, core = labels, (slice(0, labels.shape[0]), slice(0, labels.shape[1]))
    elif core is None or context[core].shape != labels.shape:
        raise ValueError("context needs the core slices of labels within it")
    if labels.size == 0 or not labels.any():
        return empty_partial()
    lab, ids, counts = _compact(labels)
    k = ids.size
    g, row, c0, c1 = _runs(lab)
    firsts = _group_starts(g)
    oy, ox = int(offset[0]), int(offset[1])
    part: Partial = {"label": ids, "n": counts.astype(np.int64)}
    min_r, max_r = row[firsts], row[np.append(firsts[1:] - 1, g.size - 1)] + 1
    min_c = np.minimum.reduceat(c0, firsts)
    max_c = np.maximum.reduceat(c1, firsts) + 1
    local = _moments(g, row, c0, c1, k)
    local["sum_r"] = local["sum_r"].astype(np.int64)
    local["sum_c"] = local["sum_c"].astype(np.int64)
    part |= _shift(part | local, -min_r, -min_c)
    part |= {"min_r": min_r + oy, "min_c": min_c + ox, "max_r": max_r + oy, "max_c": max_c + ox}
    part |= _intensity_sums(lab, pixels, k)
    part |= _perimeter_counts(context, core, lab, k)
    part |= _tile_hull(g, row, c0, c1, ids, oy, ox)
    return {key: part[key] for key in (*PARTIAL_KEYS, *HULL_KEYS)}


def _intensity_sums(lab: np.ndarray, pixels: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-label sums of grey, or of R, G, B (the others NaN)."""
    flat = lab.ravel()
    nan = np.full(k, np.nan)
    if pixels.ndim == 2:
        grey = np.bincount(flat, weights=pixels.ravel(), minlength=k + 1)[1:]
        return {"sum_grey": grey, "sum_red": nan, "sum_green": nan.copy(), "sum_blue": nan.copy()}
    sums = {"sum_grey": nan}
    for i, key in enumerate(_INTENSITY[1:]):
        channel = pixels[:, :, i].ravel()
        sums[key] = np.bincount(flat, weights=channel, minlength=k + 1)[1:]
    return sums


def _perimeter_counts(
    context: np.ndarray, core: tuple[slice, slice], lab: np.ndarray, k: int
) -> dict[str, np.ndarray]:
    """Per-label counts of skimage's three weighted classes of boundary pixels in the core."""
    h, w = lab.shape
    r0, c0 = core[0].indices(context.shape[0])[0], core[1].indices(context.shape[1])[0]
    top, left = min(r0, HALO), min(c0, HALO)
    window = context[r0 - top : r0 + h + HALO, c0 - left : c0 + w + HALO]
    pad_r = (HALO - top, HALO + h + top - window.shape[0])
    pad_c = (HALO - left, HALO + w + left - window.shape[1])
    x = np.pad(window, (pad_r, pad_c))  # (h + 4, w + 4), 0 beyond the image
    mid = x[1:-1, 1:-1]
    across = x[1:-1, 1:] != x[1:-1, :-1]
    down = x[1:, 1:-1] != x[:-1, 1:-1]
    border = across[:, :-1] | across[:, 1:]
    border |= down[:-1]
    border |= down[1:]
    border &= mid != 0
    # key: label * 2 + border, so a neighbour counts when its key is the pixel's own key
    key = (mid.astype(np.int64) * 2 + border).ravel()
    wk = w + 2
    index = np.flatnonzero(border[1:-1, 1:-1])  # boundary pixels of the core
    flat = index + (index // w) * 2 + wk + 1
    own = key[flat]
    edges = sum(_same(key, flat + d, own) for d in (-wk, wk, -1, 1))
    corners = sum(_same(key, flat + d, own) for d in (-wk - 1, -wk + 1, wk - 1, wk + 1))
    cls = _CODE_CLASS[1 + 2 * edges + 10 * corners]
    counts = np.bincount(lab.ravel()[index] * 4 + cls, minlength=4 * (k + 1))
    counts = counts.reshape(k + 1, 4)[1:]
    return {f"perim_{c}": counts[:, c].astype(np.int64) for c in (1, 2, 3)}


def _same(key: np.ndarray, at: np.ndarray, own: np.ndarray) -> np.ndarray:
    """1 (uint8) where ``key[at]`` equals ``own``."""
    return (key[at] == own).view(np.uint8)


def _tile_hull(
    g: np.ndarray,
    row: np.ndarray,
    c0: np.ndarray,
    c1: np.ndarray,
    ids: np.ndarray,
    oy: int,
    ox: int,
) -> dict[str, np.ndarray]:
    """Hull chains (twice-scaled global coordinates) of each label's part in the tile."""
    firsts = _group_starts(g, row)  # runs sorted by (label, row, col): one group per row
    last = np.append(firsts[1:] - 1, g.size - 1)
    gg, r = g[firsts], 2 * (row[firsts] + oy)
    left, right = 2 * (c0[firsts] + ox), 2 * (c1[last] + ox)
    # per row the edge midpoints: above/below the end pixels and beside them, sorted by (g, y)
    y = np.stack([r - 1, r, r + 1], axis=1).ravel()
    xl = np.stack([left, left - 1, left], axis=1).ravel()
    xr = np.stack([right, right + 1, right], axis=1).ravel()
    return _hull_columns(*_chains(np.repeat(gg, 3), y, xl, xr), ids)


Chain = tuple[np.ndarray, np.ndarray, np.ndarray]


def _hull_columns(left: Chain, right: Chain, ids: np.ndarray) -> dict[str, np.ndarray]:
    """The hull columns of a partial: left chain then right chain, groups ``g`` as ``ids[g-1]``."""
    return {
        "hull_label": ids[np.concatenate([left[0], right[0]]) - 1],
        "hull_y": np.concatenate([left[1], right[1]]),
        "hull_x": np.concatenate([left[2], right[2]]),
        "hull_right": np.repeat(np.array([0, 1], np.int64), [left[0].size, right[0].size]),
    }


def _chains(g: np.ndarray, y: np.ndarray, xl: np.ndarray, xr: np.ndarray) -> tuple[Chain, Chain]:
    """Left and right hull chains per group of points sorted by (g, y): the convex minorant
    of the smallest ``xl`` and the concave majorant of the largest ``xr`` at each y."""
    firsts = _group_starts(g, y)
    g, y = g[firsts], y[firsts]
    left = np.minimum.reduceat(xl, firsts)
    right = np.maximum.reduceat(xr, firsts)
    keep_l = _convex_chain(g, y, left)
    keep_r = _convex_chain(g, y, -right)
    return (g[keep_l], y[keep_l], left[keep_l]), (g[keep_r], y[keep_r], right[keep_r])


def _convex_chain(g: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Indices of the vertices of each group's convex minorant of ``x`` over increasing ``y``.

    A vertex is a strict running minimum from one end. Then points on or right of the chord
    of their two neighbours are not vertices; dropping all of them at once is safe, and
    repeating until none is left gives the chain.
    """
    if g.size == 0:
        return np.zeros(0, np.intp)
    # running minima within groups: shift each group below (or above) the previous ones
    span = 2 * (int(np.abs(x).max()) + 1)
    down, up = x - g * span, x + g * span
    before = np.minimum.accumulate(down)
    after = np.minimum.accumulate(up[::-1])[::-1]
    keep = np.flatnonzero(np.r_[True, down[1:] < before[:-1]] | np.r_[up[:-1] < after[1:], True])
    g, y, x = g[keep], y[keep], x[keep]
    while g.size > 2:
        inner = (g[1:-1] == g[:-2]) & (g[1:-1] == g[2:])
        ya, yi, yb = y[:-2], y[1:-1], y[2:]
        xa, xi, xb = x[:-2], x[1:-1], x[2:]
        drop = inner & ((xi - xa) * (yb - ya) >= (xb - xa) * (yi - ya))
        if not drop.any():
            break
        mask = np.ones(g.size, bool)
        np.logical_not(drop, out=mask[1:-1])
        keep, g, y, x = keep[mask], g[mask], y[mask], x[mask]
    return keep


def _union_chains(part: Partial, ids: np.ndarray) -> tuple[Chain, Chain]:
    """Hull chains of all of a partial's hull vertices, groups numbered 1..K as in ``ids``."""
    g = np.searchsorted(ids, part["hull_label"]) + 1
    y, x = part["hull_y"], part["hull_x"]
    order = np.lexsort((y, g))
    return _chains(g[order], y[order], x[order], x[order])


def _stored_chains(part: Partial, ids: np.ndarray) -> tuple[Chain, Chain]:
    """A partial's own hull chains (kept sorted and pruned), groups numbered as in ``ids``."""
    g = np.searchsorted(ids, part["hull_label"]) + 1
    right = part["hull_right"] != 0
    left = ~right
    return (
        (g[left], part["hull_y"][left], part["hull_x"][left]),
        (g[right], part["hull_y"][right], part["hull_x"][right]),
    )


def combine_partials(parts: Sequence[Partial]) -> Partial:
    """One partial from several (labels in several parts merged); associative and
    commutative, so partials can be combined in any tree. A lone part is returned as is."""
    parts = [p for p in parts if p["label"].size]
    if not parts:
        return empty_partial()
    if len(parts) == 1:
        return parts[0]
    cat = {key: np.concatenate([p[key] for p in parts]) for key in (*PARTIAL_KEYS, *HULL_KEYS)}
    ids, inv = np.unique(cat["label"], return_inverse=True)
    k = ids.size
    out: Partial = {"label": ids}
    for key, reduce in (("min_r", np.minimum), ("min_c", np.minimum)):
        out[key] = np.full(k, np.iinfo(np.int64).max)
        reduce.at(out[key], inv, cat[key])
    for key in ("max_r", "max_c"):
        out[key] = np.full(k, np.iinfo(np.int64).min)
        np.maximum.at(out[key], inv, cat[key])
    shifted = _shift(cat, cat["min_r"] - out["min_r"][inv], cat["min_c"] - out["min_c"][inv])
    for key in ("n", "perim_1", "perim_2", "perim_3"):
        out[key] = _int_sum(inv, cat[key], k)
    for key in ("sum_r", "sum_c"):
        out[key] = _int_sum(inv, shifted[key], k)
    for key in ("sq_rr", "sq_cc", "sq_rc"):
        out[key] = np.bincount(inv, weights=shifted[key], minlength=k)
    for key in _INTENSITY:
        out[key] = np.bincount(inv, weights=cat[key], minlength=k)
    out |= _hull_columns(*_union_chains(cat, ids), ids)
    return {key: out[key] for key in (*PARTIAL_KEYS, *HULL_KEYS)}


def _int_sum(inv: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Exact per-group sums of int64 values."""
    out = np.zeros(k, np.int64)
    np.add.at(out, inv, values)
    return out


def _central(s: np.ndarray, t: np.ndarray, n: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``q - s * t / n`` (``q`` the sum of products, ``s`` and ``t`` the sums) keeping the
    integer part exact: with ``s = a n + b`` and ``t = c n + d``, ``s t / n = a t + c b + b d / n``."""
    a, b = np.divmod(s, n)
    c, d = np.divmod(t, n)
    whole = q - (a.astype(np.float64) * t + c.astype(np.float64) * b)
    return whole - b.astype(np.float64) * d / n


def _shape_columns(p: Partial) -> dict[str, np.ndarray]:
    """Centroid and inertia-tensor features with skimage's formulas."""
    n, fn = p["n"], p["n"].astype(np.float64)
    mu20 = _central(p["sum_r"], p["sum_r"], n, p["sq_rr"])
    mu02 = _central(p["sum_c"], p["sum_c"], n, p["sq_cc"])
    mu11 = _central(p["sum_r"], p["sum_c"], n, p["sq_rc"]) + 0.0
    total = mu20 + mu02
    a, b, c = (total - mu20) / fn, -mu11 / fn, (total - mu02) / fn
    tensor = np.stack([np.stack([a, b], -1), np.stack([b, c], -1)], -2)
    eig = np.clip(np.linalg.eigvalsh(tensor), 0, None) if n.size else np.zeros((0, 2))
    l1, l2 = eig[:, 1], eig[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        ecc = np.where(l1 == 0, 0.0, np.sqrt(1 - l2 / l1))
    tie = np.where(b < 0, np.pi / 4, -np.pi / 4)
    orientation = np.where(a - c == 0, tie, 0.5 * np.arctan2(-2 * b, c - a))
    return {
        "centroid_row": (p["min_r"] * n + p["sum_r"]) / fn,
        "centroid_col": (p["min_c"] * n + p["sum_c"]) / fn,
        "eccentricity": ecc,
        "orientation": orientation,
        "equivalent_diameter": (2 * 2 * fn / np.pi) ** (1 / 2),
        "major_axis_length": 4 * np.sqrt(l1),
        "minor_axis_length": 4 * np.sqrt(l2),
    }


def _chain_sum(chain: Chain, k: int, right: bool) -> np.ndarray:
    """Per group, the sum over integer rows of the last (``right``) or first column inside
    the chain (exact: twice-scaled integer vertices, integer floor division)."""
    g, y, x = chain
    same = g[1:] == g[:-1]
    gs, ya, yb, xa, xb = g[1:][same], y[:-1][same], y[1:][same], x[:-1][same], x[1:][same]
    first = -(-ya // 2)  # rows r with ya <= 2 r < yb
    cnt = -(-yb // 2) - first
    total = np.zeros(k + 1)
    bounds = np.searchsorted(np.cumsum(cnt), np.arange(_ROW_CHUNK, cnt.sum(), _ROW_CHUNK))
    for seg in np.split(np.arange(cnt.size), bounds):
        reps = cnt[seg]
        s = np.repeat(seg, reps)
        step = np.arange(s.size) - np.repeat(np.cumsum(reps) - reps, reps)
        dy = yb[s] - ya[s]
        num = xa[s] * dy + (2 * (first[s] + step) - ya[s]) * (xb[s] - xa[s])
        col = num // (2 * dy) if right else -(-num // (2 * dy))
        total += np.bincount(gs[s], weights=col, minlength=k + 1)
    return total[1:]


def finalise_partials(partial: Partial) -> dict[str, np.ndarray]:
    """The object columns of :func:`batchseg.measure.objects.measure_objects` from a partial."""
    p, ids, n = partial, partial["label"], partial["n"]
    k, fn = ids.size, n.astype(np.float64)
    left, right = _stored_chains(p, ids)
    rows = (p["max_r"] - p["min_r"]).astype(np.float64)
    area_convex = _chain_sum(right, k, True) - _chain_sum(left, k, False) + rows
    perimeter = np.stack([p["perim_1"], p["perim_2"], p["perim_3"]], -1) @ _PERIMETER_WEIGHTS
    out = {"label": ids, "area": n, "perimeter": perimeter.reshape(k), "solidity": fn / area_convex}
    out |= {f"bbox_{e}_{a}": p[f"{e}_{a[0]}"] for e in ("min", "max") for a in ("row", "col")}
    out |= _shape_columns(p)
    means = {key: p[key] / fn for key in _INTENSITY}
    rgb = [means[f"sum_{c}"] for c in ("red", "green", "blue")]
    out |= dict(zip(RGB_COLUMNS, rgb, strict=True))
    out["mean_intensity"] = np.where(
        np.isnan(means["sum_grey"]), luminance(*rgb), means["sum_grey"]
    )
    return {c: np.asarray(out[c], OBJECT_DTYPES[c]) for c in OBJECT_COLUMNS}


def merge_partials(parts: Sequence[Partial]) -> dict[str, np.ndarray]:
    """The object columns of the labels in ``parts``: ``finalise(combine(parts))``."""
    return finalise_partials(combine_partials(parts))
