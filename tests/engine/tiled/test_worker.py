"""Worker-side tile helpers: what a tile task returns must not pin the tile's pixels."""

from __future__ import annotations

import numpy as np

from batchseg.engine.tiled.grid import tile_at
from batchseg.engine.tiled.worker import _lines


def test_tile_edges_are_copies_with_the_halo_beyond():
    shape, tile, halo = (100, 120), 40, 5
    t = tile_at(shape, tile, halo, 4)  # an interior tile: halo on every side
    lab = np.arange(1, (t.hy1 - t.hy0) * (t.hx1 - t.hx0) + 1).reshape(t.hy1 - t.hy0, -1)
    core = lab[t.core_in_window]
    ids = np.unique(core)
    local = (np.searchsorted(ids, core) + 1).astype(np.uint32)
    lines = _lines(t, lab, local, ids)
    for face, (edge, beyond) in lines.items():
        assert edge.base is None and beyond is not None and beyond.base is None, face
        assert not beyond.any()  # halo labels never seen in the core map to 0
    np.testing.assert_array_equal(lines["top"][0], local[0])
    np.testing.assert_array_equal(lines["right"][0], local[:, -1])
    # a label continuing across the face maps to the same local id beyond it
    lab[t.core_in_window[0].start - 1, t.core_in_window[1]] = core[0]
    np.testing.assert_array_equal(_lines(t, lab, local, ids)["top"][1], local[0])


class _CountingRunner:
    """Logits of each pixel's own value; records the origin of every window it is given."""

    batch_size = 3

    def __init__(self) -> None:
        self.windows: list[tuple[int, int]] = []

    def logits(self, crops: list[np.ndarray]) -> np.ndarray:
        self.windows.extend(divmod(int(c[0, 0]), 1000) for c in crops)
        return np.stack([np.stack([np.sin(c), np.cos(c)]) for c in crops]).astype(np.float32)


def _semantic_run(monkeypatch, shape, tile, max_pixels):
    """Every semantic rectangle of an image whose pixels hold 1000 row + col:
    (origins of the windows inferred, the labels written)."""
    from types import SimpleNamespace

    from batchseg.engine.tiled import worker
    from batchseg.engine.tiled.grid import semantic_blocks

    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
    image = (1000 * ys + xs).astype(np.float64)
    runner = _CountingRunner()
    method = SimpleNamespace(runner=lambda params: runner)
    bucket = SimpleNamespace(height=shape[0], width=shape[1], tile=tile)
    params = {"window": 64, "overlap": 16}
    labels = np.full(shape, 9, np.uint8)

    def write(store, store_id, bucket, core, lab, conf):
        labels[core] = lab

    monkeypatch.setattr(worker, "_setup", lambda ctx, shard: (method, params, None, bucket))
    monkeypatch.setattr(worker, "_read", lambda ctx, shard, b: image[b[0] : b[1], b[2] : b[3]])
    monkeypatch.setattr(worker.store, "write_tile", write)
    ctx = SimpleNamespace(
        buckets={0: bucket}, label_dtypes={0: "uint8"}, n_classes=2, store=None, store_id=""
    )
    for block in semantic_blocks(shape, tile, max_pixels):
        worker.semantic_block(ctx, SimpleNamespace(bucket=0), block)
    assert (labels != 9).all()  # every tile written
    return runner.windows, labels


def test_semantic_windows_inferred_once_whatever_the_tile(monkeypatch):
    from batchseg.methods.tiled import window_lattice

    shape = (150, 200)
    lattice = [(y, x) for y in window_lattice(150, 64, 16) for x in window_lattice(200, 64, 16)]
    results = [_semantic_run(monkeypatch, shape, tile, 10**6) for tile in (32, 48, 128)]
    for windows, labels in results:
        assert sorted(windows) == sorted(lattice)  # each lattice window exactly once
        np.testing.assert_array_equal(labels, results[0][1])
    assert 0 < results[0][1].mean() < 1  # both classes present
    # over the budget: rectangles of 3 x 3 tiles; a window runs once per rectangle it touches,
    # far fewer times than once per tile (a budget of one tile: the former schedule)
    windows, labels = _semantic_run(monkeypatch, shape, 32, 96 * 96)
    per_tile, _ = _semantic_run(monkeypatch, shape, 32, 1)
    assert set(windows) == set(lattice) and len(windows) * 2 < len(per_tile)
    np.testing.assert_array_equal(labels, results[0][1])


def test_semantic_blocks_partition_the_grid():
    from batchseg.engine.tiled.grid import grid_shape, semantic_blocks

    shape, tile = (1000, 1300), 128
    rows, cols = grid_shape(shape, tile)
    assert semantic_blocks(shape, tile, 1000 * 1300) == [list(range(rows * cols))]
    blocks = semantic_blocks(shape, tile, 300 * 300)  # 2 x 2 tiles each
    assert sorted(k for b in blocks for k in b) == list(range(rows * cols))
    assert max(len(b) for b in blocks) == 4 and blocks[0] == [0, 1, cols, cols + 1]
    assert semantic_blocks(shape, tile, 10)[1] == [1]  # never less than a tile
