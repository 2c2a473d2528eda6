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
