"""Input: discover a collection (``sources``), decode images whole (``read``) or a window at a
time (``windowed``), and normalise pixels for the kernels (``normalise``). No Dask, no Zarr store."""
