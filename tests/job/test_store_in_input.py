"""A store inside its own input folder is not an image of it (issue 27, item 14)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from batchseg.cluster.profiles import AddressProfile
from batchseg.io.sources import discover
from batchseg.job.prepare import prepare_job, store_skipper
from batchseg.job.run import run_job
from batchseg.job.spec import JobSpec
from tests.helpers.images import write_collection


def _zarr_image(path: Path) -> None:
    zarr.create_array(str(path), shape=(8, 8), dtype="uint8")[:] = np.arange(64).reshape(8, 8)


def test_discovery_leaves_out_the_output_and_other_stores(tmp_path):
    data = tmp_path / "in"
    write_collection(data, n=3)
    _zarr_image(data / "scan.zarr")  # a Zarr image stays an image
    other = data / "sub" / "old.zarr"
    other.mkdir(parents=True)
    (other / "zarr.json").write_text(
        json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {"batchseg": {}}})
    )
    output = data / "out.zarr"
    output.mkdir()  # a creation killed before its zarr.json: a folder of anything
    (output / "tile.png").write_bytes(b"not an image of the input")
    ids = [r.image_id for r in discover(str(data), skip=store_skipper(str(output)))]
    assert "scan.zarr" in ids
    assert not any(i.startswith(("out.zarr", "sub/old.zarr")) for i in ids)
    assert len(ids) == 4
    unfiltered = [r.image_id for r in discover(str(data))]
    assert "sub/old.zarr" in unfiltered and "out.zarr/tile.png" in unfiltered


def test_prepare_ignores_a_store_in_its_input(tmp_path):
    data = tmp_path / "in"
    write_collection(data, n=2)
    spec = JobSpec(input=str(data), method="skimage.otsu", output=str(data / "out.zarr"))
    before = prepare_job(spec)
    _zarr_image(data / "out.zarr")  # even a plain zarr at the output path
    after = prepare_job(spec)
    assert [r.image_id for r in after.refs] == [r.image_id for r in before.refs]
    assert after.fingerprint == before.fingerprint


@pytest.mark.integration
def test_rerun_and_append_with_the_store_inside_the_input(tmp_path, cluster_address):
    data = tmp_path / "in"
    write_collection(data, n=3)
    out = data / "out.zarr"

    def spec(**kw: object) -> JobSpec:
        profile = AddressProfile(cluster_address)
        return JobSpec(
            input=str(data), method="skimage.otsu", output=str(out), profile=profile, **kw
        )

    first = run_job(spec())
    assert (first.done, first.failed) == (3, 0)
    again = run_job(spec())  # refused before: "1 image added" (the store itself)
    assert again.nothing_to_do and again.exit_code == 0
    appended = run_job(spec(append=True))
    assert (appended.images, appended.failed, appended.added) == (3, 0, 0)
