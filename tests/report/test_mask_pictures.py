"""Shared rendering: viridis confidence maps with a scale bar, class legends, and
``batchseg mask --where --output-dir`` writing many pictures in one process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from batchseg import render
from batchseg.cli.export import mask_file_names
from tests.helpers.cli import run_cli

pytestmark = pytest.mark.integration


def test_viridis_is_matplotlibs() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    want = np.rint(matplotlib.colormaps["viridis"](np.arange(256))[:, :3] * 255)
    np.testing.assert_array_equal(render.viridis(), want.astype(np.uint8))
    conf = np.array([[0, 128, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(render.colour_map(conf)[0], render.viridis()[[0, 128, 255]])
    with_bar = render.confidence_picture(np.full((30, 40), 200, np.uint8))
    assert with_bar.shape[0] == 120 and with_bar.shape[1] > 40  # the bar sits beside the map
    assert (with_bar[:30, :40] == render.viridis()[200]).all()


def test_legend_is_drawn_beside_the_picture() -> None:
    picture = np.zeros((20, 30, 3), np.uint8)
    out = render.with_legend(picture, [("background", (0, 0, 0)), ("road", (230, 25, 75))])
    assert out.shape[0] >= 20 and out.shape[1] > 30
    np.testing.assert_array_equal(out[:20, :30], picture)
    assert ((out[:, 30:] == (230, 25, 75)).all(axis=-1)).sum() == 12 * 12  # the road swatch


def test_mask_legend_and_many(classes_store: Path, tmp_path: Path) -> None:
    one = tmp_path / "one.png"
    plain = tmp_path / "plain.png"
    image_id = "colour/img_000.png"
    assert run_cli("mask", classes_store, image_id, "-o", plain, "--overlay").exit_code == 0
    result = run_cli("mask", classes_store, image_id, "-o", one, "--overlay", "--legend")
    assert result.exit_code == 0, result.output
    a, b = np.asarray(Image.open(plain)), np.asarray(Image.open(one))
    assert b.shape[1] > a.shape[1]
    np.testing.assert_array_equal(b[: a.shape[0], : a.shape[1]], a)
    where = "fraction_foreground > 0.05"
    many = run_cli(
        "mask", classes_store, "--where", where, "--output-dir", tmp_path / "many", "--overlay"
    )
    assert many.exit_code == 0, many.output
    written = sorted(
        str(p.relative_to(tmp_path / "many")) for p in (tmp_path / "many").rglob("*.png")
    )
    listed = run_cli("query", classes_store, "--where", where, "-f", "csv", "--columns", "status")
    ids = [line.split(",")[0] for line in listed.output.splitlines()[1:]]
    assert written == sorted(ids) and len(ids) >= 2
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "many" / image_id)), a)
    limited = run_cli(
        "mask", classes_store, "-w", where, "--output-dir", tmp_path / "two", "--limit", "2"
    )
    assert limited.exit_code == 0 and len(list((tmp_path / "two").rglob("*.png"))) == 2
    both = run_cli("mask", classes_store, image_id, "-w", where, "--output-dir", tmp_path / "x")
    assert both.exit_code == 2


def test_output_dir_names_stay_inside() -> None:
    names = mask_file_names(["cam/a.jpg", "cam/a.png", "../../etc/x.png", "/abs/y.tif", "z"])
    assert names == ["cam/a.png", "cam/a~2.png", "__/__/etc/x.png", "abs/y.png", "z.png"]
    assert all(not Path(n).is_absolute() and ".." not in Path(n).parts for n in names)
