"""Input: discover a collection (``sources``), decode images whole (``read``; PNG completeness
in ``png``) or a window at a time (``windowed``, over the TIFF/Zarr segment readers of
``chunked``), and normalise pixels for every consumer (``normalise``). Shared pieces (safe
file opening, pixel limits, TIFF helpers, the Zarr-image rule, image suffixes) live in
``formats``. No Dask, no Zarr store."""
