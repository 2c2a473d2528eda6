"""Colourising label maps: palettes, colourise, overlay and PNG output."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from batchseg.errors import UsageError
from batchseg.render import (
    BOUNDARY_COLOUR,
    colourise,
    default_class_colours,
    overlay,
    palette,
    region_colours,
    save_png,
)


def test_palette_shape_dtype_and_background():
    pal = palette(40)
    assert pal.shape == (40, 3)
    assert pal.dtype == np.uint8
    assert pal[0].tolist() == [0, 0, 0]
    assert len({tuple(c) for c in pal.tolist()}) == 40
    assert np.array_equal(palette(40), pal)
    assert np.array_equal(palette(5), pal[:5])
    assert palette(0).shape == (0, 3)


def test_palette_with_class_colours():
    pal = palette(4, [(1, 2, 3), (4, 5, 6)])
    assert pal[:2].tolist() == [[1, 2, 3], [4, 5, 6]]
    assert pal.shape == (4, 3)
    assert palette(1, [(1, 2, 3), (4, 5, 6)]).tolist() == [[1, 2, 3]]
    with pytest.raises(UsageError):
        palette(2, [(1, 2, 300)])
    with pytest.raises(UsageError):
        palette(2, [(1, 2)])
    with pytest.raises(UsageError):
        palette(-1)


def test_default_class_colours():
    names = ["background", "road", "sky", "car", "person"]
    colours = default_class_colours(names)
    assert colours == default_class_colours(names)
    assert colours[0] == (0, 0, 0)
    assert len(colours) == len(names)
    assert len(set(colours[1:])) == 4 and (0, 0, 0) not in colours[1:]
    many = default_class_colours([f"c{i}" for i in range(300)])
    assert len(set(many)) == 300 and (0, 0, 0) not in many
    assert all(isinstance(v, int) for c in many for v in c)
    assert default_class_colours(["road", "Background"])[1] == (0, 0, 0)


def test_region_colours_deterministic_and_neighbours_differ():
    ids = np.arange(0, 5000)
    colours = region_colours(ids).astype(int)
    assert colours[0].tolist() == [0, 0, 0]
    assert np.array_equal(region_colours(ids), region_colours(ids))
    assert (colours[1:].sum(axis=1) > 0).all()
    step = np.abs(np.diff(colours[1:], axis=0)).sum(axis=1)
    assert step.min() > 60


def test_colourise_classes():
    labels = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    table = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0]], dtype=np.uint8)
    out = colourise(labels, table)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[0, 1].tolist() == [255, 0, 0]
    assert out[1, 0].tolist() == [0, 255, 0]
    default = colourise(labels)
    assert default[0, 0].tolist() == [0, 0, 0]
    assert np.array_equal(default, colourise(labels))
    assert np.array_equal(colourise(labels, [[0, 0, 0], [255, 0, 0], [0, 255, 0]]), out)


def test_colourise_class_beyond_table_raises():
    with pytest.raises(UsageError, match="class id 3 has no colour"):
        colourise(np.array([[0, 3]]), palette(3))


def test_colourise_regions():
    labels = np.array([[0, 1, 2], [3, 3, 0]], dtype=np.int32)
    out = colourise(labels, kind="regions")
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [0, 0, 0] and out[1, 2].tolist() == [0, 0, 0]
    assert out[1, 0].tolist() == out[1, 1].tolist()
    assert len({tuple(out[0, 1]), tuple(out[0, 2]), tuple(out[1, 0])}) == 3
    assert np.array_equal(out, colourise(labels, kind="regions"))


def test_colourise_regions_large_ids_match_small_path():
    labels = np.array([[0, 5, 2**31 - 1, 3_000_000_000]], dtype=np.uint32)
    out = colourise(labels, kind="regions")
    assert out[0, 0].tolist() == [0, 0, 0]
    assert np.array_equal(out[0], region_colours(labels[0]))


def test_colourise_regions_wrap_explicit_table():
    table = np.array([[0, 0, 0], [10, 10, 10], [20, 20, 20]], dtype=np.uint8)
    out = colourise(np.array([[0, 1, 2, 3, 4]]), table, kind="regions")
    assert out[0, :, 0].tolist() == [0, 10, 20, 10, 20]


def test_colourise_bad_input():
    with pytest.raises(UsageError, match="2-D"):
        colourise(np.zeros((2, 2, 2), dtype=np.uint8))
    with pytest.raises(UsageError, match="integer"):
        colourise(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(UsageError, match="non-negative"):
        colourise(np.array([[-1, 0]]))
    with pytest.raises(UsageError, match="kind"):
        colourise(np.zeros((2, 2), dtype=np.uint8), kind="semantic")


def test_panoptic_ids_are_drawn_like_regions():
    labels = np.array([[0, 1000, 2000, 4001, 4002]], dtype=np.uint32)
    assert np.array_equal(colourise(labels, kind="panoptic"), colourise(labels, kind="regions"))


def test_overlay_rgb_classes_blends_only_labelled_pixels():
    image = np.full((2, 2, 3), 100, dtype=np.uint8)
    labels = np.array([[0, 1], [1, 0]], dtype=np.uint8)
    table = np.array([[0, 0, 0], [200, 0, 0]], dtype=np.uint8)
    out = overlay(image, labels, table, alpha=0.5)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [100, 100, 100]
    assert out[0, 1].tolist() == [150, 50, 50]
    assert np.array_equal(overlay(image, labels, table, alpha=0.0), image)
    assert overlay(image, labels, table, alpha=1.0)[1, 0].tolist() == [200, 0, 0]
    assert image[0, 1].tolist() == [100, 100, 100]  # input untouched


@pytest.mark.parametrize(
    ("image", "grey"),
    [
        (np.full((3, 3), 65535, dtype=np.uint16), 255),
        (np.full((3, 3), 1.0, dtype=np.float64), 255),
        (np.full((3, 3), 0.0, dtype=np.float32), 0),
        (np.full((3, 3), 128, dtype=np.uint8), 128),
        (np.full((3, 3), True), 255),
        (np.full((3, 3, 1), 7, dtype=np.uint8), 7),
    ],
)
def test_overlay_grey_inputs_scaled_by_dtype(image, grey):
    labels = np.zeros((3, 3), dtype=np.int32)
    out = overlay(image, labels)
    assert out.shape == (3, 3, 3) and out.dtype == np.uint8
    assert (out == grey).all()


def test_overlay_rgb_uint16_and_rgba():
    rgb16 = np.zeros((2, 2, 3), dtype=np.uint16)
    rgb16[..., 0] = 65535
    out = overlay(rgb16, np.zeros((2, 2), dtype=np.uint8))
    assert out[0, 0].tolist() == [255, 0, 0]
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 1] = 9
    assert overlay(rgba, np.zeros((2, 2), dtype=np.uint8))[0, 0].tolist() == [0, 9, 0]


def test_overlay_regions_draw_boundaries():
    image = np.zeros((6, 6), dtype=np.uint8)
    labels = np.zeros((6, 6), dtype=np.int32)
    labels[1:5, 1:3] = 1
    labels[1:5, 3:5] = 2
    out = overlay(image, labels, kind="regions", alpha=0.5)
    assert out.shape == (6, 6, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [0, 0, 0]  # label 0: the image shows through
    assert out[1, 1].tolist() == list(BOUNDARY_COLOUR)  # region edge
    assert out[2, 2].tolist() == list(BOUNDARY_COLOUR)  # edge between regions 1 and 2
    assert out[2, 3].tolist() == list(BOUNDARY_COLOUR)
    custom = overlay(image, labels, kind="regions", boundary_colour=(1, 2, 3))
    assert custom[1, 1].tolist() == [1, 2, 3]


def test_overlay_errors():
    labels = np.zeros((3, 4), dtype=np.uint8)
    with pytest.raises(UsageError, match="differ in size"):
        overlay(np.zeros((4, 3), dtype=np.uint8), labels)
    with pytest.raises(UsageError, match="differ in size"):
        overlay(np.zeros((3, 5, 3), dtype=np.uint8), labels)
    with pytest.raises(UsageError, match="alpha"):
        overlay(np.zeros((3, 4), dtype=np.uint8), labels, alpha=1.5)
    with pytest.raises(UsageError, match="image must be"):
        overlay(np.zeros((3, 4, 2), dtype=np.uint8), labels)
    with pytest.raises(UsageError, match="8 bits"):
        overlay(np.full((3, 4), 5.0), labels)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.uint8).reshape(4, 6),
        (np.arange(24, dtype=np.uint16) * 2500).reshape(4, 6),
        np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8),
        np.random.default_rng(1).integers(0, 256, (4, 6, 4), dtype=np.uint8),
    ],
)
def test_save_png_round_trip(tmp_path, array):
    path = tmp_path / "out.png"
    save_png(array, str(path))
    with Image.open(path) as img:
        assert img.format == "PNG"
        back = np.asarray(img)
    assert back.shape == array.shape
    assert np.array_equal(back.astype(array.dtype), array)
    assert int(back.max()) == int(array.max())


def test_save_png_colourised_and_bad_arrays(tmp_path):
    rgb = colourise(np.array([[0, 1], [2, 3]]), kind="regions")
    save_png(rgb, tmp_path / "regions.png")
    with Image.open(tmp_path / "regions.png") as img:
        assert np.array_equal(np.asarray(img), rgb)
    with pytest.raises(UsageError):
        save_png(np.zeros((2, 2), dtype=np.float32), str(tmp_path / "x.png"))
    with pytest.raises(UsageError):
        save_png(np.zeros((2, 2, 3), dtype=np.uint16), str(tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()


def test_class_colours_from_csv(tmp_path):
    from batchseg.render import read_class_colours

    path = tmp_path / "camvid.csv"
    path.write_text("class,r,g,b\nRoad,128,64,128\n\ncar,#400080\n")
    names = ["background", "road", "car", "tree"]
    colours = read_class_colours(str(path), names)
    defaults = default_class_colours(names)
    assert colours == [defaults[0], (128, 64, 128), (64, 0, 128), defaults[3]]
    path.write_text("class,r,g,b\nsky,1,2,3\n")
    with pytest.raises(UsageError, match=r"camvid.csv:2: class 'sky' is not a class"):
        read_class_colours(str(path), names)
    path.write_text("road,300,0,0\n")  # no header; out of range
    with pytest.raises(UsageError, match="colour must be r,g,b"):
        read_class_colours(str(path), names)
