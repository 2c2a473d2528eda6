"""Issue 18 item 2: a refusal of "another job" names what differs (no cluster needed)."""

from __future__ import annotations

from batchseg.io.sources import ImageRef
from batchseg.job.fingerprint import describe_difference
from batchseg.methods import get_method

SLIC = get_method("skimage.slic")
OLD_PARAMS = SLIC.resolve_params({"n_segments": "50"})
STORED = [("a.png", "/in/a.png"), ("b.png", "/in/b.png"), ("c.png", "/in/c.png")]
REFS = [ImageRef(i, u) for i, u in STORED]


def _attrs(method_id: str = "skimage.slic", params=None, tiling=(67108864, 2048)) -> dict:
    return {
        "method": {"id": method_id, "params": dict(OLD_PARAMS if params is None else params)},
        "job": {"tile_threshold": tiling[0], "tile_size": tiling[1]},
    }


def test_a_changed_parameter_is_named_with_old_and_new_values():
    new = SLIC.resolve_params({"n_segments": "80"})
    text = describe_difference(_attrs(), STORED, REFS, SLIC, new, None)
    assert text == "n_segments 50 -> 80"


def test_another_method_is_named():
    otsu = get_method("skimage.otsu")
    text = describe_difference(_attrs(), STORED, REFS, otsu, {}, None)
    assert text == "method skimage.slic -> skimage.otsu"


def test_images_added_removed_and_moved_are_counted():
    refs = [ImageRef("a.png", "/in/a.png"), ImageRef("b.png", "/elsewhere/b.png")]
    refs += [ImageRef(f"new{i}.png", f"/in/new{i}.png") for i in range(3)]
    text = describe_difference(_attrs(), STORED, refs, SLIC, OLD_PARAMS, None)
    assert text == "3 images added; 1 image removed; 1 image at another path"


def test_tiling_and_file_content():
    text = describe_difference(_attrs(), STORED, REFS, SLIC, OLD_PARAMS, (1024, 512))
    assert text == "tile threshold, size 67108864, 2048 -> 1024, 512"
    # stored with other tiling, now the defaults (tiling identity None)
    text = describe_difference(_attrs(tiling=(1024, 512)), STORED, REFS, SLIC, OLD_PARAMS, None)
    assert text == "tile threshold, size 1024, 512 -> 67108864, 2048"
    # nothing visible differs: the fingerprint saw what the attributes cannot show
    same = describe_difference(_attrs(), STORED, REFS, SLIC, OLD_PARAMS, None)
    assert same == "different inputs, method, parameters or tiling"
