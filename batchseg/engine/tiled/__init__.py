"""Huge images tile by tile: the grid and stitching (``grid``), the worker side of one tile
(``worker``, no Dask) and the Dask orchestration of one image (``graph``)."""
