"""A cluster started as separate `dask scheduler` / `dask worker` processes on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import batchseg
from batchseg import readers
from batchseg.cli import app
from batchseg.methods import get_method

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def dask_processes() -> Iterator[str]:
    dask = str(Path(sys.executable).with_name("dask"))
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [
        subprocess.Popen(
            [
                dask,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--dashboard-address",
                ":0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    for _ in range(2):
        procs.append(
            subprocess.Popen(
                [dask, "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    from distributed import Client

    deadline = time.time() + 60
    while True:
        try:
            with Client(address, timeout="5s") as c:
                if len(c.scheduler_info()["workers"]) == 2:
                    break
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError("dask processes did not start")
        time.sleep(0.5)
    yield address
    for p in reversed(procs):
        p.terminate()
    for p in procs:
        p.wait(timeout=30)


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
