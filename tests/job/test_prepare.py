"""The output path is written one way before it is checked, locked and replaced; bad settings
are refused before anything is written."""

from __future__ import annotations

import os

import pytest

from batchseg.errors import UsageError
from batchseg.job.prepare import canonical_output, prepare_job
from batchseg.job.spec import JobSpec
from tests.helpers.images import write_collection


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


def test_bad_colours_are_refused_before_anything_is_written(tmp_path):
    """Issue 27.6: ``--colors`` with ``#-1-1-1`` was stored, and every picture then failed."""
    write_collection(tmp_path / "imgs", n=2)
    colours = tmp_path / "colours.csv"
    colours.write_text("class,color\nforeground,#-1-1-1\n")
    out = tmp_path / "out.zarr"
    spec = JobSpec(
        input=str(tmp_path / "imgs"), method="skimage.otsu", output=str(out), colors=str(colours)
    )
    with pytest.raises(UsageError, match=r"colours.csv:2: colour must be"):
        prepare_job(spec)
    assert not out.exists()
