"""One image normaliser: kernels, semantic models and overlays scale every dtype alike."""

from __future__ import annotations

import numpy as np
import pytest

from batchseg.io.normalise import display_rgb, model_rgb, to_grey, to_rgb, unit_float
from batchseg.render import overlay

# 16-bit data held in int32 (Pillow's mode "I"): must not be squashed by int32's range
INT32 = (np.arange(12, dtype=np.int32).reshape(3, 4) * 5000).clip(0, 65535)


@pytest.mark.parametrize(
    "image",
    [
        INT32,
        INT32.astype(np.uint16),
        (INT32 // 257).astype(np.uint8),
        INT32.astype(np.float32) / 65535,
        np.array([[True, False], [False, True]]),
    ],
)
def test_every_consumer_agrees(image: np.ndarray) -> None:
    unit = unit_float(image)
    assert unit.min() >= 0 and unit.max() <= 1
    np.testing.assert_allclose(to_rgb(image)[..., 0], unit)
    np.testing.assert_allclose(to_grey(image), unit, atol=1e-12)
    model = model_rgb(image)
    model_unit = model.astype(np.float32) / 255 if model.dtype == np.uint8 else model
    np.testing.assert_allclose(model_unit[..., 0], unit, atol=1e-6)
    expected = np.rint(unit * 255).astype(np.uint8)
    np.testing.assert_array_equal(display_rgb(image)[..., 1], expected)
    labels = np.zeros(image.shape, dtype=np.uint8)
    np.testing.assert_array_equal(overlay(image, labels, hidden=(0,))[..., 2], expected)


def test_int32_is_scaled_as_16_bit_everywhere() -> None:
    """The divergence of issue 11: int32 65535 was 1.0 for kernels, ~0 for models and overlays."""
    image = np.full((2, 2), 65535, dtype=np.int32)
    assert to_grey(image).max() == 1.0
    assert model_rgb(image).max() == pytest.approx(1.0)
    assert display_rgb(image).max() == 255
    assert overlay(image, np.zeros((2, 2), dtype=np.uint8), hidden=(0,)).max() == 255
    negative = np.full((2, 2), -5, dtype=np.int32)
    assert to_grey(negative).max() == 0.0 and display_rgb(negative).max() == 0
