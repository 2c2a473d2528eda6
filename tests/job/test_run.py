"""End-to-end jobs on a real distributed cluster: results equal direct kernel calls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

import batchseg
from batchseg.cluster.profiles import AddressProfile, LocalProfile
from batchseg.errors import StoreError, UsageError
from batchseg.io import read as readers
from batchseg.job.run import run_job
from batchseg.job.spec import JobSpec
from batchseg.methods import get_method

pytestmark = pytest.mark.integration


def _spec(collection: Path, out: Path, address: str, method: str = "skimage.otsu", **kw) -> JobSpec:
    return JobSpec(
        input=str(collection), method=method, output=str(out), profile=AddressProfile(address), **kw
    )


@pytest.mark.parametrize(
    ("method", "params"),
    [("skimage.otsu", {}), ("skimage.slic", {"n_segments": 30}), ("kmeans", {"k": 3})],
)
def test_job_matches_direct_kernel(collection, tmp_path, cluster_address, method, params):
    out = tmp_path / "out.zarr"
    result = run_job(_spec(collection, out, cluster_address, method, params=params, shard_size=5))
    assert result.exit_code == 0
    assert (result.done, result.failed, result.pending) == (24, 0, 0)
    view = batchseg.open(str(out))
    table = view.table()
    assert len(table) == 24 and set(table["status"]) == {"done"}
    m = get_method(method)
    resolved = m.resolve_params(params)
    for image_id in table["image_id"]:
        image = readers.read_image(str(collection / image_id))
        expected = m.segment(image, resolved)
        got = view.mask(image_id)
        assert got.shape == image.shape[:2]
        np.testing.assert_array_equal(got, expected)
    if m.kind == "classes":
        fractions = table[[c for c in table if c.startswith("fraction_")]].sum(axis=1)
        np.testing.assert_allclose(fractions, 1.0)
    else:
        assert (table["n_regions"] > 1).all()


def test_resume_does_only_pending_and_refuses_other_jobs(collection, tmp_path, cluster_address):
    out = tmp_path / "out.zarr"
    first = run_job(_spec(collection, out, cluster_address, shard_size=4))
    assert first.processed == 24
    again = run_job(_spec(collection, out, cluster_address, shard_size=4))
    assert again.processed == 0 and again.exit_code == 0
    # forget one shard's results: only that shard runs again
    root = zarr.open_group(str(out), mode="r+")
    status = root["catalogue/status"][:]
    status[0:4] = 1
    root["catalogue/status"][:] = status
    third = run_job(_spec(collection, out, cluster_address, shard_size=4))
    assert third.processed == 4 and third.done == 24
    with pytest.raises(StoreError, match="another job"):
        run_job(_spec(collection, out, cluster_address, method="skimage.li"))
    replaced = run_job(_spec(collection, out, cluster_address, method="skimage.li", overwrite=True))
    assert replaced.done == 24
    assert batchseg.open(str(out)).attrs["method"]["id"] == "skimage.li"


def test_bad_images_fail_alone(collection, tmp_path, cluster_address):
    (collection / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    (collection / "empty.jpg").write_bytes(b"")
    out = tmp_path / "out.zarr"
    result = run_job(_spec(collection, out, cluster_address))
    assert result.exit_code == 3
    assert (result.done, result.failed) == (24, 2)
    report = batchseg.open(str(out)).status()
    errors = {f["image_id"]: f["error"] for f in report["failures"]}
    assert set(errors) == {"broken.png", "empty.jpg"}
    assert all(e and "\n" not in e for e in errors.values())


def test_unknown_method_and_param_are_usage_errors(collection, tmp_path, cluster_address):
    with pytest.raises(UsageError, match="unknown method"):
        run_job(_spec(collection, tmp_path / "o.zarr", cluster_address, method="nope"))
    with pytest.raises(UsageError, match="no parameter 'bogus'"):
        run_job(_spec(collection, tmp_path / "o.zarr", cluster_address, params={"bogus": 1}))


def test_embedded_cluster_default(collection, tmp_path):
    out = tmp_path / "out.zarr"
    result = run_job(
        JobSpec(
            input=str(collection),
            method="skimage.yen",
            output=str(out),
            profile=LocalProfile(workers=2),
        )
    )
    assert result.exit_code == 0 and result.done == 24
    root = zarr.open_group(str(out), mode="r")  # plain zarr reads the store
    attrs = root.attrs["batchseg"]
    assert attrs["classes"] == ["background", "foreground"]
    assert attrs["runs"][-1]["processed"] == 24
    assert "zarr" in attrs["versions"] and attrs["schema_version"] == 1
