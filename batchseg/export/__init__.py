"""Export images of a store for viewers: OME-Zarr (OME-NGFF 0.5) images with label pyramids."""
