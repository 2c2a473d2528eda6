"""Tiled segmentation building blocks for images too large to hold whole (pure numpy/scipy).

Groundwork for gigapixel images: a tile grid with halos, global thresholds reduced from
per-tile histograms (bit-identical to the whole-image scikit-image result), and connected-
component labelling stitched across tiles with the dask-image recipe (label each tile, offset,
collect label pairs that touch across tile boundaries, connected components of that graph,
relabel). ``read`` callbacks return one window of the image, so memory is bounded by the tile
size; ``out`` may be any array supporting slice assignment (numpy, memmap, zarr).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from skimage import filters, measure


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


def tile_grid(shape: tuple[int, int], tile: tuple[int, int], halo: int = 0) -> list[Tile]:
    """Row-major tiles covering ``shape``; halos are clipped at the image border."""
    h, w = shape
    th, tw = tile
    if th < 1 or tw < 1 or halo < 0:
        raise ValueError("tile sides must be >= 1 and halo >= 0")
    return [
        Tile(
            y0,
            min(y0 + th, h),
            x0,
            min(x0 + tw, w),
            max(0, y0 - halo),
            min(h, y0 + th + halo),
            max(0, x0 - halo),
            min(w, x0 + tw + halo),
        )  # fmt: skip
        for y0 in range(0, h, th)
        for x0 in range(0, w, tw)
    ]


ReadWindow = Callable[[Tile], np.ndarray]

#: Global thresholds that scikit-image can compute from a histogram.
HISTOGRAM_THRESHOLDS = {"otsu": filters.threshold_otsu, "yen": filters.threshold_yen}


def global_threshold(
    name: str, read_grey: ReadWindow, tiles: list[Tile], nbins: int = 256
) -> float | None:
    """``threshold_<name>(grey)`` of the whole image from per-tile histograms.

    ``read_grey(tile)`` returns the float grey core of a tile. Two passes (range, then counts
    on the same bin edges) reproduce scikit-image's ``histogram(..., source_range="image")``
    exactly. Returns None for a constant image (everything is background).
    """
    try:
        fn = HISTOGRAM_THRESHOLDS[name]
    except KeyError:
        raise ValueError(f"no tiled form of threshold {name!r}") from None
    lo, hi = np.inf, -np.inf
    for t in tiles:
        grey = read_grey(t)
        lo, hi = min(lo, float(grey.min())), max(hi, float(grey.max()))
    if lo == hi:
        return None
    counts = np.zeros(nbins, dtype=np.int64)
    edges: np.ndarray | None = None
    for t in tiles:
        c, edges = np.histogram(read_grey(t), bins=nbins, range=(lo, hi))
        counts += c
    assert edges is not None
    centers = (edges[:-1] + edges[1:]) / 2.0
    return float(fn(hist=(counts, centers)))


def _boundary_pairs(
    out: np.ndarray, shape: tuple[int, int], tiles: list[Tile], connectivity: int
) -> np.ndarray:
    """Label pairs that touch across tile boundaries (whole boundary lines, corners included)."""
    h, w = shape
    ys = sorted({t.y0 for t in tiles if t.y0 > 0})
    xs = sorted({t.x0 for t in tiles if t.x0 > 0})
    shifts = (0,) if connectivity == 1 else (-1, 0, 1)
    pairs = []
    for x in xs:
        a = np.asarray(out[:, x - 1])
        b = np.asarray(out[:, x])
        for d in shifts:
            aa = a[max(0, -d) : h - max(0, d)]
            bb = b[max(0, d) : h - max(0, -d)]
            keep = (aa > 0) & (bb > 0)
            pairs.append(np.stack([aa[keep], bb[keep]], axis=1))
    for y in ys:
        a = np.asarray(out[y - 1, :])
        b = np.asarray(out[y, :])
        for d in shifts:
            aa = a[max(0, -d) : w - max(0, d)]
            bb = b[max(0, d) : w - max(0, -d)]
            keep = (aa > 0) & (bb > 0)
            pairs.append(np.stack([aa[keep], bb[keep]], axis=1))
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(pairs).astype(np.int64), axis=0)


def label_tiled(
    read_mask: ReadWindow,
    tiles: list[Tile],
    shape: tuple[int, int],
    out: np.ndarray,
    *,
    connectivity: int = 2,
) -> int:
    """Connected components of a mask read tile by tile, written to ``out``; returns the count.

    The result equals ``skimage.measure.label(mask, connectivity=connectivity)`` up to a
    one-to-one renaming of labels (ids are 1..n, numbered by first tile of appearance).
    """
    offset = 0
    for t in tiles:  # 1. label each tile, offset ids to be globally unique
        lab = measure.label(read_mask(t), connectivity=connectivity).astype(np.int64)
        n = int(lab.max())
        lab[lab > 0] += offset
        out[t.core] = lab
        offset += n
    if offset == 0:
        return 0
    pairs = _boundary_pairs(out, shape, tiles, connectivity)  # 2. face adjacency
    graph = sparse.coo_matrix(  # 3. connected components of the label graph
        (np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])),
        shape=(offset + 1, offset + 1),
    )
    _, component = connected_components(graph, directed=False)
    # sequential ids in order of each component's first label
    first_seen = np.full(component.max() + 1, -1, dtype=np.int64)
    order = np.arange(1, offset + 1)
    comps = component[1:]
    uniq, first_idx = np.unique(comps, return_index=True)
    first_seen[uniq] = first_idx
    rank = np.argsort(np.argsort(first_seen[uniq]))
    new_id = np.zeros(component.max() + 1, dtype=np.int64)
    new_id[uniq] = rank + 1
    relabel = np.zeros(offset + 1, dtype=np.int64)
    relabel[order] = new_id[comps]
    for t in tiles:  # 4. relabel
        out[t.core] = relabel[np.asarray(out[t.core])]
    return int(len(uniq))


def iter_windows(image: np.ndarray, tiles: list[Tile]) -> Iterator[np.ndarray]:
    """Haloed windows of an in-memory image (tests and small images)."""
    for t in tiles:
        yield image[t.window]
