"""The output path is written one way before it is checked, locked and replaced."""

from __future__ import annotations

import os

from batchseg.job.prepare import canonical_output
from batchseg.job.spec import JobSpec


def _out(path: str) -> str:
    return canonical_output(JobSpec(input="imgs", method="skimage.otsu", output=path)).output


def test_plain_spellings_of_one_store(tmp_path):
    store = str(tmp_path / "out.zarr")
    for spelling in (f"{store}/.", f"{store}/", f"{store}//", f"{tmp_path}/x/../out.zarr"):
        assert _out(spelling) == store, spelling
    assert _out("out.zarr") == "out.zarr"  # relative paths stay relative
    assert _out("s3://bucket/out.zarr/") == "s3://bucket/out.zarr/"  # URLs are left as given


def test_dot_dot_after_a_symlink_follows_the_link(tmp_path):
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    os.symlink(deep, tmp_path / "link")
    # the OS resolves link/.. to a/, not to tmp_path: the store is a/out.zarr
    assert _out(f"{tmp_path}/link/../out.zarr") == str(tmp_path / "a" / "out.zarr")
