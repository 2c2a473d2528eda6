"""Measurement, numpy only (no I/O, no Dask): per-image statistics (``stats``), object
measurement (``objects``), instance painting (``instances``) and the panoptic merge
(``panoptic``)."""
