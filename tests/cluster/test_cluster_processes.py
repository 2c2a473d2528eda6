"""A cluster started as separate `dask scheduler` / `dask worker` processes on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from typer.testing import CliRunner

import batchseg
from batchseg.cli import app
from batchseg.io import read as readers
from batchseg.methods import get_method
from tests.helpers.clusters import dask_processes_cluster

pytestmark = [pytest.mark.integration, pytest.mark.system]


@pytest.fixture(scope="module")
def dask_processes() -> Iterator[str]:
    with dask_processes_cluster(2) as address:
        yield address


def test_job_on_separate_processes(collection, tmp_path, dask_processes):
    out = tmp_path / "out.zarr"
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(collection),
            "-m",
            "skimage.felzenszwalb",
            "-o",
            str(out),
            "--scheduler",
            dask_processes,
            "-p",
            "scale=50",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    view = batchseg.open(str(out))
    m = get_method("skimage.felzenszwalb")
    params = m.resolve_params({"scale": 50})
    for image_id in view.table()["image_id"]:
        expected = m.segment(readers.read_image(str(collection / image_id)), params)
        np.testing.assert_array_equal(view.mask(image_id), expected)
    # the attached cluster is left running for the next job
    from distributed import Client

    with Client(dask_processes, timeout="5s") as c:
        assert len(c.scheduler_info()["workers"]) == 2
