"""Tile geometry and label stitching of the tiled path (pure numpy/scipy).

:func:`tile_at` gives tile ``k`` of the row-major grid of square tiles (:func:`grid_shape`)
with its halo clipped at the image border. :func:`stitch` joins the tiles' local region ids
into image-wide ids with the dask-image recipe: collect label pairs that meet across tile
faces (``touch``: connected components, :func:`touching_pairs`; ``overlap``: regions both
tiles saw continue, :func:`agreeing_pairs`), take connected components of that graph
(:func:`merge_ids`) and hand each tile a lookup table. Only edges travel, never pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components


@dataclass(frozen=True)
class Tile:
    """Core window ``[y0:y1, x0:x1]`` and the window with halo ``[hy0:hy1, hx0:hx1]``."""

    y0: int
    y1: int
    x0: int
    x1: int
    hy0: int
    hy1: int
    hx0: int
    hx1: int

    @property
    def core(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def window(self) -> tuple[slice, slice]:
        return slice(self.hy0, self.hy1), slice(self.hx0, self.hx1)

    @property
    def core_in_window(self) -> tuple[slice, slice]:
        """The core as a slice of the haloed window."""
        return (
            slice(self.y0 - self.hy0, self.y1 - self.hy0),
            slice(self.x0 - self.hx0, self.x1 - self.hx0),
        )


def grid_shape(shape: tuple[int, int], tile: int) -> tuple[int, int]:
    """Rows and columns of square tiles of side ``tile`` covering ``shape``."""
    return -(-shape[0] // tile), -(-shape[1] // tile)


def tile_at(shape: tuple[int, int], tile: int, halo: int, index: int) -> Tile:
    """Tile ``index`` (row-major) of the grid of square tiles covering ``shape``."""
    h, w = shape
    rows, cols = grid_shape(shape, tile)
    if not 0 <= index < rows * cols:
        raise IndexError(f"tile {index} outside a {rows} x {cols} grid")
    r, c = divmod(index, cols)
    y0, x0 = r * tile, c * tile
    y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
    return Tile(
        y0, y1, x0, x1, max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo)
    )


def semantic_blocks(shape: tuple[int, int], tile: int, max_pixels: int) -> list[list[int]]:
    """Tile indices grouped into rectangles of at most ``max_pixels`` (at least one tile each),
    row-major: the units of work of a semantic model on a tiled image.

    A sliding window is inferred once per rectangle it touches, so the fewer and larger the
    rectangles, the fewer windows run twice: an image within ``max_pixels`` is one rectangle
    and each of its windows runs once, whatever the tile size.
    """
    rows, cols = grid_shape(shape, tile)
    if shape[0] * shape[1] <= max_pixels:
        return [list(range(rows * cols))]
    side = max(1, math.isqrt(max_pixels) // tile)  # tiles per side of a square rectangle
    return [
        [
            r * cols + c
            for r in range(r0, min(rows, r0 + side))
            for c in range(c0, min(cols, c0 + side))
        ]
        for r0 in range(0, rows, side)
        for c0 in range(0, cols, side)
    ]


def merge_ids(pairs: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """Merge ids ``1..n`` joined by ``pairs`` (connected components of the id graph).

    Returns ``relabel`` (``relabel[0] == 0``; ids numbered 1..m by their smallest member, so
    tile order is kept) and ``m``.
    """
    if n == 0:
        return np.zeros(1, dtype=np.int64), 0
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    graph = sparse.coo_matrix(
        (np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n + 1, n + 1)
    )
    _, component = connected_components(graph, directed=False)
    comps = component[1:]
    # components numbered by their first (smallest) member id
    uniq, first_idx = np.unique(comps, return_index=True)
    rank = np.empty(component.max() + 1, dtype=np.int64)
    rank[uniq[np.argsort(first_idx)]] = np.arange(1, len(uniq) + 1)
    relabel = np.zeros(n + 1, dtype=np.int64)
    relabel[1:] = rank[comps]
    return relabel, int(len(uniq))


def touching_pairs(a: np.ndarray, b: np.ndarray, connectivity: int) -> np.ndarray:
    """Pairs of non-zero labels facing each other across a line (``a`` before, ``b`` after)."""
    n = len(a)
    shifts = (0,) if connectivity == 1 else (-1, 0, 1)
    out = []
    for d in shifts:
        aa = a[max(0, -d) : n - max(0, d)]
        bb = b[max(0, d) : n - max(0, -d)]
        keep = (aa > 0) & (bb > 0)
        out.append(np.stack([aa[keep], bb[keep]], axis=1))
    return np.concatenate(out).astype(np.int64) if out else np.zeros((0, 2), np.int64)


def agreeing_pairs(
    a: np.ndarray, a_beyond: np.ndarray, b: np.ndarray, b_beyond: np.ndarray
) -> np.ndarray:
    """Regions that continue across a line in both tiles' views, matched one to one.

    ``a``/``b``: labels on either side of the line, each from its own tile; ``a_beyond``: what
    ``a``'s tile saw on ``b``'s side (through its halo), ``b_beyond`` the reverse. A pixel row
    votes for (a, b) when both tiles saw their region cross the line; a pair is joined when
    each is the other's most-voted partner.
    """
    keep = (a > 0) & (b > 0) & (a_beyond == a) & (b_beyond == b)
    if not keep.any():
        return np.zeros((0, 2), np.int64)
    pairs, votes = np.unique(
        np.stack([a[keep], b[keep]], axis=1).astype(np.int64), axis=0, return_counts=True
    )
    _, inv_a = np.unique(pairs[:, 0], return_inverse=True)
    _, inv_b = np.unique(pairs[:, 1], return_inverse=True)
    # each region's most-voted partner (ties: smallest id); joined when the choice is mutual,
    # so a region never absorbs several neighbours and superpixels keep their size
    return pairs[_best(inv_a, votes, pairs[:, 1]) & _best(inv_b, votes, pairs[:, 0])]


def _best(group: np.ndarray, votes: np.ndarray, tie: np.ndarray) -> np.ndarray:
    """Per pair: whether it has the most votes in its group (ties: smallest ``tie``)."""
    order = np.lexsort((tie, -votes, group))
    first = np.ones(len(order), bool)
    first[1:] = group[order[1:]] != group[order[:-1]]
    out = np.zeros(len(order), bool)
    out[order[first]] = True
    return out


@dataclass
class Stitched:
    """Result of stitching a tiled image: per-tile id maps and the final region areas."""

    luts: list[np.ndarray]  # tile k: local id -> global id (index 0 -> 0)
    areas: np.ndarray  # areas[i - 1] = pixels of global region i
    n_regions: int


def stitch(
    shape: tuple[int, int],
    tile: int,
    outcomes: Sequence[Any],
    mode: str,
    *,
    connectivity: int = 2,
    min_area: int = 0,
) -> Stitched:
    """Join the tiles' local region ids into image-wide ids.

    ``outcomes[k]`` (tile ``k``, row-major) has ``n_labels``, ``counts`` (area per local id)
    and ``lines`` (face -> (core edge, beyond)). ``mode`` is ``touch`` (labels touching across
    a face are one region: connected components) or ``overlap`` (:func:`agreeing_pairs`).
    Regions smaller than ``min_area`` pixels (after joining) become 0.
    """
    rows, cols = grid_shape(shape, tile)
    by_index = sorted(outcomes, key=lambda o: o.index)
    if [o.index for o in by_index] != list(range(rows * cols)):
        raise ValueError("stitch needs the outcome of every tile")
    sizes = np.array([o.n_labels for o in by_index], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    n = int(offsets[-1])

    def glob(k: int, line: np.ndarray | None) -> np.ndarray:
        if line is None:
            raise ValueError("overlap stitching needs a halo")
        arr = np.asarray(line, dtype=np.int64)
        return np.where(arr > 0, arr + offsets[k], 0)

    def seam(pairs_of: list[tuple[int, int]], before: str, after: str) -> np.ndarray:
        a = np.concatenate([glob(k, by_index[k].lines[before][0]) for k, _ in pairs_of])
        b = np.concatenate([glob(j, by_index[j].lines[after][0]) for _, j in pairs_of])
        if mode == "touch":
            return touching_pairs(a, b, connectivity)
        a_beyond = np.concatenate([glob(k, by_index[k].lines[before][1]) for k, _ in pairs_of])
        b_beyond = np.concatenate([glob(j, by_index[j].lines[after][1]) for _, j in pairs_of])
        return agreeing_pairs(a, a_beyond, b, b_beyond)

    found = [np.zeros((0, 2), np.int64)]
    for c in range(1, cols):  # vertical seams: left tile's right edge vs right tile's left edge
        found.append(seam([(r * cols + c - 1, r * cols + c) for r in range(rows)], "right", "left"))
    for r in range(1, rows):  # horizontal seams
        found.append(
            seam([((r - 1) * cols + c, r * cols + c) for c in range(cols)], "bottom", "top")
        )
    relabel, m = merge_ids(np.concatenate(found), n)
    local_areas = np.zeros(n + 1, dtype=np.int64)
    for k, o in enumerate(by_index):
        local_areas[offsets[k] + 1 : offsets[k + 1] + 1] = np.asarray(o.counts)[1:]
    areas = np.bincount(relabel, weights=local_areas, minlength=m + 1)[1:].astype(np.int64)
    if min_area > 1 and m:
        keep = areas >= min_area
        renumber = np.zeros(m + 1, dtype=np.int64)
        renumber[1:][keep] = np.arange(1, int(keep.sum()) + 1)
        relabel = renumber[relabel]
        areas = areas[keep]
        m = int(keep.sum())
    luts = [
        np.concatenate([[0], relabel[offsets[k] + 1 : offsets[k + 1] + 1]]).astype(np.int64)
        for k in range(len(by_index))
    ]
    return Stitched(luts, areas, m)
