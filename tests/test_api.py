"""Issue 27 item 22: ``StoreView.image()`` names its status, ``StoreView.source()`` decodes the
source pixels through the job's reader and its pixel limits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from PIL import Image

import batchseg
from batchseg.errors import ImageError, StoreError
from tests.helpers.object_stores import H, W, build_object_store


@pytest.fixture
def view(tmp_path: Path) -> batchseg.StoreView:
    """A store of done images whose catalogue uris point at real PNGs in ``tmp_path/src``."""
    out = tmp_path / "s.zarr"
    maps = build_object_store(out)
    view = batchseg.open(str(out))
    rng = np.random.default_rng(7)
    root = zarr.open_group(str(out), mode="r+")
    (tmp_path / "src").mkdir()
    for image_id in sorted(maps):
        png = tmp_path / "src" / image_id
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(png)
        root["catalogue/uri"][view.image(image_id).row] = str(png)
    return batchseg.open(str(out))


def test_image_says_done_not_a_code(view: batchseg.StoreView) -> None:
    ids = list(view.table()["image_id"])
    record = view.image(ids[0])
    assert record.status == "done" and record.error == ""
    assert (record.height, record.width, record.tiled) == (H, W, False)
    root = zarr.open_group(view.path, mode="r+")
    root["catalogue/status"][view.image(ids[1]).row] = 3  # failed
    root["catalogue/status"][view.image(ids[2]).row] = 9  # a code batchseg does not know
    edited = batchseg.open(view.path)
    assert [edited.image(i).status for i in ids[:3]] == ["done", "failed", "damaged"]
    assert "unknown status code 9" in edited.image(ids[2]).error


def test_source_returns_the_source_pixels(view: batchseg.StoreView) -> None:
    for image_id in view.table()["image_id"]:
        want = np.asarray(Image.open(view.uri(image_id)))
        np.testing.assert_array_equal(view.source(image_id), want)
    with pytest.raises(StoreError, match="not in the store"):
        view.source("nope.png")


def test_source_is_bounded_and_refuses_a_changed_file(view: batchseg.StoreView) -> None:
    a, b = list(view.table()["image_id"])[:2]
    # a decompression bomb in place of the source: refused from its header, before decoding
    Image.new("L", (4000, 4000)).save(view.uri(a))
    with pytest.raises(ImageError, match=f"source of '{a}'.*exceeds the pixel limit {H * W}"):
        view.source(a)
    Image.new("RGB", (W, H - 1)).save(view.uri(b))  # smaller: not the image segmented
    with pytest.raises(ImageError, match="the file changed since"):
        view.source(b)
    c = list(view.table()["image_id"])[2]
    with pytest.raises(ImageError, match="exceeds the pixel limit 100"):
        view.source(c, max_pixels=100)
