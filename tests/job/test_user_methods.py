"""A user's function and an installed plug-in run as methods on real clusters: separate
``dask worker`` processes that have the package on their path, the embedded cluster, and
workers that lack it (the job stops before any image, with one line)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import batchseg
from tests.helpers.cli import run_cli
from tests.helpers.clusters import dask_processes_cluster
from tests.helpers.images import write_collection
from tests.helpers.stores import status_counts
from tests.helpers.user_methods import on_path, unique_name, write_package

pytestmark = [pytest.mark.integration, pytest.mark.system]
ROOT = Path(__file__).resolve().parents[2]

SEG = '''
import numpy as np


def segment(image, threshold: float = 0.5):
    """Regions: the image's bright half, split into left and right."""
    grey = image.mean(axis=2) if image.ndim == 3 else image.astype(float)
    labels = (grey > threshold * grey.max()).astype(np.int32)
    labels[:, image.shape[1] // 2 :] *= 2
    return labels


def float_on_grey(image):
    if image.ndim == 2:
        return image.astype(np.float32)
    return np.ones(image.shape[:2], np.uint8)
'''

PLUGIN = """
import numpy as np

from batchseg.methods import Method

METHODS = [
    Method(
        id="fake.dark",
        kind="classes",
        kernel=lambda image: ((image.mean(axis=2) if image.ndim == 3 else image) < 100).astype(
            np.uint8
        ),
        description="test plug-in: dark pixels",
        class_names=lambda params: ["light", "dark"],
        family="threshold",
    )
]
"""


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("user") / "images"
    write_collection(folder, n=6, seed=3)
    return folder


@pytest.fixture(scope="module")
def user_package(
    tmp_path_factory: pytest.TempPathFactory, cluster_address: str
) -> Iterator[tuple[Path, str]]:
    """(site folder, package name): a function module and a plug-in, installed in ``site``,
    on this process's path while the module's tests run. The session's ``cluster_address``
    is started before: its workers must not have the package."""
    site = tmp_path_factory.mktemp("site")
    name = unique_name("usermeth")
    write_package(
        site, name, {"seg": SEG, "plugin": PLUGIN}, version="0.3",
        entry_points={"fake": f"{name}.plugin:METHODS"},
    )  # fmt: skip
    with on_path(site):
        yield site, name


@pytest.fixture(scope="module")
def workers_with_package(user_package: tuple[Path, str]) -> Iterator[str]:
    """``dask worker`` processes started with the package's folder on PYTHONPATH."""
    with dask_processes_cluster(1, nanny=False, dashboard=False) as address:
        yield address


def test_function_runs_on_separate_worker_processes(user_package, workers_with_package, images,
                                                    tmp_path):  # fmt: skip
    _, name = user_package
    out = tmp_path / "out.zarr"
    method = f"{name}.seg:segment"
    args = ["run", images, "-m", method, "-p", "threshold=0.4", "-o", out,
            "--scheduler", workers_with_package]  # fmt: skip
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    view = batchseg.open(str(out))
    recorded = view.attrs["method"]
    assert recorded["id"] == method and recorded["params"] == {"threshold": 0.4}
    origin = recorded["origin"]
    assert (origin["package"], origin["version"]) == (name, "0.3")
    assert (origin["module"], origin["qualname"]) == (f"{name}.seg", "segment")
    assert len(origin["source_sha256"]) == 64
    table = view.table()
    assert (table["status"] == "done").all() and (table["n_regions"] == 2).any()
    again = run_cli(*args)  # the same function: resumed, nothing to do
    assert again.exit_code == 0 and "nothing to do" in again.output


def test_bad_labels_fail_only_those_images(user_package, workers_with_package, images, tmp_path):
    _, name = user_package
    out = tmp_path / "out.zarr"
    result = run_cli(
        "run", images, "-m", f"{name}.seg:float_on_grey", "-o", out,
        "--scheduler", workers_with_package,
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    table = batchseg.open(str(out)).table()
    grey = table["image_id"].str.startswith("grey/")
    assert (table.loc[~grey, "status"] == "done").all()
    assert (table.loc[grey, "status"] == "failed").all()
    assert table.loc[grey, "error"].str.contains("returned float32 labels").all()


def test_installed_plugin_runs(user_package, workers_with_package, images, tmp_path):
    _, name = user_package
    out = tmp_path / "out.zarr"
    result = run_cli("run", images, "-m", "fake.dark", "-o", out, "--scheduler",
                     workers_with_package)  # fmt: skip
    assert result.exit_code == 0, result.output
    attrs = batchseg.open(str(out)).attrs
    assert attrs["classes"] == ["light", "dark"]
    assert attrs["method"]["origin"] == {
        "package": name, "version": "0.3", "entry_point": f"fake = {name}.plugin:METHODS",
    }  # fmt: skip


def test_workers_without_the_package_stop_the_job_before_any_image(
    user_package, cluster_address, images, tmp_path
):
    _, name = user_package
    out = tmp_path / "out.zarr"
    result = run_cli("run", images, "-m", f"{name}.seg:segment", "-o", out,
                     "--scheduler", cluster_address)  # fmt: skip
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    line = errors[0]
    assert f"cannot import module '{name}.seg'" in line
    assert "on worker tcp://127.0.0.1:" in line and "Traceback" not in result.output
    assert not out.exists()


def test_function_on_the_embedded_cluster_and_a_changed_function_refused(tmp_path, images):
    """A fresh launcher process (its embedded workers inherit PYTHONPATH); after an edit of the
    function's module, the rerun is another job, naming the function."""
    name = unique_name("embedded")
    site = write_package(tmp_path / "site", name, {"seg": SEG})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    out = tmp_path / "out.zarr"
    cmd = [sys.executable, "-m", "batchseg.cli", "run", str(images), "-m", f"{name}.seg:segment",
           "-o", str(out), "--workers", "1"]  # fmt: skip
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    assert status_counts(out) == {"pending": 0, "done": 6, "failed": 0}
    (site / name / "seg.py").write_text(SEG.replace("0.5", "0.6"))
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 1, second.stderr
    assert f"holds another job (function {name}.seg:segment changed (source sha256" in (
        second.stderr
    )
