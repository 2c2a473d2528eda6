"""Issue 18 item 4: near matches for an unknown image id or method."""

from __future__ import annotations

import pytest

from batchseg.errors import UsageError
from batchseg.methods import get_method
from batchseg.words import did_you_mean, near_matches

IDS = ["100007.jpg", "100008.jpg", "photos/100009.png", "street/a_long_name.tif"]


def test_an_id_without_its_suffix_or_folder_is_found():
    assert near_matches("100007", IDS)[0] == "100007.jpg"
    assert near_matches("100009.png", IDS)[0] == "photos/100009.png"
    assert near_matches("street/a_long_nam.tif", IDS)[0] == "street/a_long_name.tif"
    assert near_matches("zzz", IDS) == []
    assert did_you_mean("100007", IDS).startswith("; did you mean '100007.jpg'")
    assert did_you_mean("zzz", IDS) == ""


def test_many_ids_stay_fast_and_still_find_stems():
    many = [f"img_{i:07d}.png" for i in range(300_000)]
    assert near_matches("img_0123456", many) == ["img_0123456.png"]


@pytest.mark.parametrize(
    ("typed", "meant"), [("skimage.slick", "skimage.slic"), ("otsu", "skimage.otsu")]
)
def test_unknown_method_suggests_the_near_one(typed, meant):
    with pytest.raises(UsageError) as info:
        get_method(typed)
    assert f"did you mean {meant!r}" in str(info.value)
