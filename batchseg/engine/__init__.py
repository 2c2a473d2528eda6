"""Execution: shard tasks (``execute``, no Dask) and their graph (``graph``), per-image
statistics (``stats``), and the tiled path for huge images (``tiled``)."""
