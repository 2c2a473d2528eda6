"""Per-channel intensities per object and per image, against scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import label, regionprops_table

from batchseg.measure.channels import (
    channel_columns,
    image_channel_stats,
    object_channel_stats,
    stack_columns,
)


def _scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    stack = rng.integers(0, 4000, (3, 40, 50)).astype(np.uint16)
    labels = label(rng.random((40, 50)) > 0.7)
    return labels, stack


@pytest.mark.parametrize("seed", [0, 1])
def test_object_intensities_equal_regionprops(seed: int) -> None:
    labels, stack = _scene(seed)
    names = ("DAPI", "GFP", "Alexa 647")
    got = object_channel_stats(labels, stack, names)
    ref = regionprops_table(
        labels,
        intensity_image=np.moveaxis(stack, 0, -1),
        properties=["label", "area", "intensity_mean", "intensity_max", "intensity_min"],
    )
    for c, key in enumerate(("dapi", "gfp", "alexa_647")):
        np.testing.assert_allclose(got[f"mean_intensity_{key}"], ref[f"intensity_mean-{c}"])
        np.testing.assert_array_equal(got[f"max_intensity_{key}"], ref[f"intensity_max-{c}"])
        np.testing.assert_array_equal(got[f"min_intensity_{key}"], ref[f"intensity_min-{c}"])
        np.testing.assert_allclose(
            got[f"integrated_intensity_{key}"], ref[f"intensity_mean-{c}"] * ref["area"]
        )


def test_no_objects_and_image_statistics() -> None:
    labels, stack = _scene(2)
    empty = object_channel_stats(np.zeros_like(labels), stack, ("a", "b", "c"))
    assert all(v.size == 0 for v in empty.values())
    assert np.isnan(image_channel_stats(np.zeros_like(labels), stack, 3)).all()
    row = image_channel_stats(labels, stack, 3)
    inside = stack[1][labels > 0].astype(np.float64)
    np.testing.assert_allclose(row[4:8], [inside.mean(), inside.max(), inside.min(), inside.sum()])


def test_column_names() -> None:
    assert channel_columns(["DAPI"]) == [
        "mean_intensity_dapi",
        "max_intensity_dapi",
        "min_intensity_dapi",
        "integrated_intensity_dapi",
    ]
    assert stack_columns("zt", ["a"])[:3] == ["t", "z", "mean_intensity_a"]
    assert stack_columns("", []) == []
