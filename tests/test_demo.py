"""The demo collection: the bundled pictures at their natural sizes, in several shapes."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from batchseg.demo import SOURCES, make_collection, plan

ROOT = Path(__file__).resolve().parents[1]

# The natural sizes the demo promises, written out independently of batchseg.demo.
NATURAL = {
    "astronaut": (512, 512, 3),
    "coffee": (400, 600, 3),
    "camera": (512, 512),
    "rocket": (427, 640, 3),
    "coins": (303, 384),
    "hubble": (872, 1000, 3),
    "chelsea": (300, 451, 3),
    "moon": (512, 512),
    "ihc": (512, 512, 3),
    "cell": (660, 550),
    "page": (191, 384),
    "retina": (1411, 1411, 3),
}


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def test_sources_are_bundled_at_the_promised_sizes() -> None:
    assert set(SOURCES) == set(NATURAL)
    for name, loader in SOURCES.items():
        assert getattr(data, loader)().shape[: len(NATURAL[name])] == NATURAL[name]


EXPECTED: dict[
    str, Callable[[np.ndarray], np.ndarray]
] = {  # the promised variants, applied to the bundled picture
    "original": lambda a: a,
    "rot90": np.rot90,
    "fliplr": lambda a: a[:, ::-1],
    "flipud": lambda a: a[::-1],
}


def test_collection_keeps_natural_sizes_and_many_shapes(tmp_path: Path) -> None:
    count = 20  # every source once, then eight rotated: a couple of seconds
    assert make_collection(tmp_path, count) == count
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert len(files) == count
    assert {p.suffix for p in files} == {".jpg", ".png"}

    shapes = set()
    for rel, name, variant in plan(count):
        image = _read(tmp_path / rel)
        h, w = NATURAL[name][:2]
        assert image.shape[:2] == ((w, h) if variant == "rot90" else (h, w)), rel
        assert image.ndim == len(NATURAL[name]), rel  # grey stays grey, RGB stays RGB
        shapes.add(image.shape[:2])
        if rel.endswith(".png"):  # lossless: the bundled picture, pixel for pixel
            source = getattr(data, SOURCES[name])()
            np.testing.assert_array_equal(image, EXPECTED[variant](source), err_msg=rel)

    assert {v for _, _, v in plan(count)} == {"original", "rot90"}
    assert len(shapes) >= 12  # portrait and landscape, square, grey and RGB
    assert max(h * w for h, w in shapes) == 1411 * 1411  # retina at full size
    assert sum(1 for p in files if min(_read(p).shape[:2]) >= 512) >= 8


def test_later_rounds_rotate_and_crop_but_stay_large() -> None:
    variants = {v for _, _, v in plan(60)}
    assert variants == {"original", "fliplr", "rot90", "crop", "flipud"}
    for rel, name, variant in plan(60):
        if variant == "crop":
            h, w = NATURAL[name][:2]
            assert min(int(h * 0.8), int(w * 0.8)) >= 150, rel


def test_crop_variant_is_written_at_80_percent(tmp_path: Path) -> None:
    count = 2 * len(SOURCES) + 2  # reaches the crop round for the first two sources
    make_collection(tmp_path, count)
    rel, name, variant = plan(count)[-1]
    assert variant == "crop"
    h, w = NATURAL[name][:2]
    assert _read(tmp_path / rel).shape[:2] == (int(h * 0.8), int(w * 0.8))


def test_max_side_shrinks_for_quick_tests(tmp_path: Path) -> None:
    make_collection(tmp_path, 14, max_side=96)
    for rel, name, variant in plan(14):
        h, w = _read(tmp_path / rel).shape[:2]
        nh, nw = NATURAL[name][:2]
        assert max(h, w) == 96, rel
        if variant == "rot90":
            nh, nw = nw, nh
        assert abs(h / w - nh / nw) < 0.05, rel  # aspect ratio kept


def test_bad_count_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        make_collection(tmp_path, 0)
    with pytest.raises(ValueError, match="max_side"):
        make_collection(tmp_path, 1, max_side=0)


@pytest.mark.parametrize("spec", ["demo.toml", "demo_regions.toml"])
def test_demo_jobs_read_the_demo_collection(spec: str) -> None:
    job = tomllib.loads((ROOT / "jobs" / spec).read_text())
    assert job["input"] == "../demo/images"
    assert job["output"].startswith("../demo/")


def test_makefile_demo_runs_both_methods_and_draws_overlays() -> None:
    text = (ROOT / "Makefile").read_text()
    target = text.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert "jobs/demo.toml" in target and "jobs/demo_regions.toml" in target
    for command in ("status", "query", "mask", "stats", "export"):
        assert f"batchseg {command}" in target
    count = int(re.search(r"demo-data \S+ --count (\d+)", target).group(1))  # type: ignore[union-attr]
    ids = {rel for rel, _, _ in plan(count)}
    masked = re.findall(r"batchseg mask \S+/(out|regions)\.zarr (\S+)", target)
    assert {store for store, _ in masked} == {"out", "regions"}
    assert len(target.split("--overlay")) - 1 >= 4  # a couple per method, plus the hints
    for store, image_id in masked + re.findall(
        r"batchseg export \S+/(regions)\.zarr (\S+)", target
    ):
        assert image_id in ids, (store, image_id)
