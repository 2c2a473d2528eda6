"""Colourising label maps: palettes, colourise, overlay and PNG output."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from batchseg.errors import UsageError
from batchseg.render import (
    BOUNDARY_COLOUR,
    MAX_OUTLINE_SHARE,
    colourise,
    default_class_colours,
    outline_mask,
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


def test_overlay_rgb_classes_blends_every_class_but_the_hidden():
    image = np.full((2, 2, 3), 100, dtype=np.uint8)
    labels = np.array([[0, 1], [1, 0]], dtype=np.uint8)
    table = np.array([[0, 0, 200], [200, 0, 0]], dtype=np.uint8)
    out = overlay(image, labels, table, alpha=0.5)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [50, 50, 150]  # class 0 is a class: coloured (issue 27.1)
    assert out[0, 1].tolist() == [150, 50, 50]
    assert np.array_equal(overlay(image, labels, table, alpha=0.0), image)
    assert overlay(image, labels, table, alpha=1.0)[1, 0].tolist() == [200, 0, 0]
    assert image[0, 1].tolist() == [100, 100, 100]  # input untouched
    hidden = overlay(image, labels, table, alpha=0.5, hidden=[0])
    assert hidden[0, 0].tolist() == [100, 100, 100] and hidden[0, 1].tolist() == [150, 50, 50]
    assert colourise(labels, table, hidden=[1])[0, 1].tolist() == [0, 0, 0]
    with pytest.raises(UsageError, match="hide"):
        overlay(image, labels, kind="regions", hidden=[1])


def test_overlay_colours_class_zero_like_any_class():
    """Issue 27.1: CamVid's Sky (class 0) and k-means' cluster_0 were left uncoloured."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    labels = np.zeros((40, 60), dtype=np.uint8)
    labels[20:] = 1  # top half class 0 ("Sky"), bottom half class 1 ("Road")
    table = np.array([[128, 128, 128], [128, 64, 128]], dtype=np.uint8)
    out = overlay(image, labels, table, alpha=0.5).astype(int)
    change = np.abs(out - image.astype(int)).mean(axis=-1)
    sky, road = change[:20].mean(), change[20:].mean()
    assert sky > 0.5 * road > 0  # class 0 changes as much as any other class
    assert (out[:20] == np.rint((image[:20].astype(int) + 128) / 2)).all()


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
    out = overlay(image, labels, kind="regions")  # no region anywhere: the image alone
    assert out.shape == (3, 3, 3) and out.dtype == np.uint8
    assert (out == grey).all()


def test_overlay_rgb_uint16_and_rgba():
    rgb16 = np.zeros((2, 2, 3), dtype=np.uint16)
    rgb16[..., 0] = 65535
    out = overlay(rgb16, np.zeros((2, 2), dtype=np.uint8), kind="regions")
    assert out[0, 0].tolist() == [255, 0, 0]
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 1] = 9
    none = np.zeros((2, 2), dtype=np.uint8)
    assert overlay(rgba, none, kind="regions")[0, 0].tolist() == [0, 9, 0]


def test_overlay_regions_draw_boundaries():
    image = np.zeros((30, 30), dtype=np.uint8)
    labels = np.zeros((30, 30), dtype=np.int32)
    labels[5:25, 5:15] = 1
    labels[5:25, 15:25] = 2
    out = overlay(image, labels, kind="regions", alpha=0.5)
    assert out.shape == (30, 30, 3) and out.dtype == np.uint8
    yellow = list(BOUNDARY_COLOUR)
    assert out[0, 0].tolist() == [0, 0, 0]  # label 0: the image shows through
    assert out[4, 5].tolist() == [0, 0, 0]  # outlines lie inside regions
    assert out[5, 5].tolist() == yellow  # region edge
    assert out[10, 15].tolist() == yellow  # edge between regions 1 and 2: one pixel wide
    assert out[10, 14].tolist() != yellow and out[10, 16].tolist() != yellow
    assert out[10, 10].tolist() != yellow  # inside
    custom = overlay(image, labels, kind="regions", boundary_colour=(1, 2, 3))
    assert custom[5, 5].tolist() == [1, 2, 3]
    bare = overlay(image, labels, kind="regions", outlines=False)
    assert not (bare == yellow).all(axis=-1).any()
    fill = np.rint(colourise(labels, kind="regions")[10, 10] / 2)
    assert bare[10, 10].tolist() == fill.astype(int).tolist()


def _many_regions(side: int, n_side: int) -> np.ndarray:
    """``n_side`` x ``n_side`` square regions (ids 1..) filling a ``side`` x ``side`` map."""
    cell = np.arange(side) * n_side // side
    return (cell[:, None] * n_side + cell[None, :] + 1).astype(np.int32)


def test_outlines_of_many_small_regions_are_left_out():
    """Issue 27.21: 1000 regions at thumbnail size made the overlay solid outline colour."""
    labels = _many_regions(160, 32)  # 1024 regions of 5 x 5 pixels
    image = np.full((160, 160), 90, dtype=np.uint8)
    out = overlay(image, labels, kind="regions")
    yellow = (out == BOUNDARY_COLOUR).all(axis=-1).mean()
    assert yellow < 0.05
    assert outline_mask(labels).sum() == 0
    roomy = _many_regions(160, 4)  # 16 regions of 40 x 40: thin outlines drawn
    share = outline_mask(roomy).mean()
    assert 0.02 < share < MAX_OUTLINE_SHARE


def test_outlines_scale_with_the_picture():
    small, big = _many_regions(400, 10), _many_regions(4000, 10)
    width_small = outline_mask(small)[220, :].sum() / 9  # pixels per outline crossed
    width_big = outline_mask(big)[2200, :].sum() / 9
    assert width_small == 1
    assert width_big >= 3
    assert outline_mask(big).mean() < MAX_OUTLINE_SHARE


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


@pytest.mark.parametrize(
    "line",
    ["road,#-1-1-1", "road,#12345", "road,#1234567", "road,# 12345", "road,-1,0,0", "road,1_0,0,0"],
)
def test_bad_colours_are_refused(tmp_path, line):
    """Issue 27.6: ``#-1-1-1`` parsed as (-1, -1, -1), was stored and broke every picture."""
    from batchseg.render import read_class_colours

    path = tmp_path / "colours.csv"
    path.write_text(f"class,color\n{line}\n")
    with pytest.raises(UsageError, match=r"colours.csv:2: colour must be r,g,b"):
        read_class_colours(str(path), ["background", "road"])


def test_stored_bad_colours_fall_back_with_one_warning(caplog):
    from batchseg.render import stored_colours

    names = ["sky", "road"]
    assert stored_colours([[1, 2, 3], [4, 5, 6]], names, "good.zarr") == [[1, 2, 3], [4, 5, 6]]
    assert stored_colours(None, names, "none.zarr") is None
    defaults = [list(c) for c in default_class_colours(names)]
    with caplog.at_level("WARNING", logger="batchseg"):
        for bad in ([[-1, -1, -1], [4, 5, 6]], [[1, 2, 3]], [["a", "b", "c"], [1, 2, 3]]):
            assert stored_colours(bad, names, "bad.zarr") == defaults
            colourise(np.array([[0, 1]]), np.asarray(stored_colours(bad, names, "bad.zarr")))
    warnings = [r for r in caplog.records if "bad class colours" in r.getMessage()]
    assert len(warnings) == 1 and "bad.zarr" in warnings[0].getMessage()


def test_thumbnail_of_many_regions_is_not_mostly_outline() -> None:
    rng = np.random.default_rng(0)
    cell = np.arange(1600) * 32 // 1600
    labels = (cell[:, None] * 32 + cell[None, :] + 1).astype(np.int32)  # 1024 regions
    image = rng.integers(0, 256, (1600, 1600), dtype=np.uint8)
    small = labels[::10, ::10]  # a 160-pixel thumbnail (labels shrink by nearest pixel)
    thumb = overlay(image[::10, ::10], small, kind="regions")
    yellow = (thumb == BOUNDARY_COLOUR).all(axis=-1).mean()
    assert yellow < 0.05
    full = overlay(image, labels, kind="regions")
    share = (full == BOUNDARY_COLOUR).all(axis=-1).mean()
    assert 0.02 < share < MAX_OUTLINE_SHARE  # at full size the outlines show
