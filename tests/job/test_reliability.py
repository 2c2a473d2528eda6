"""Reliability: resume after any crash, survive worker loss, storage faults stop cleanly.

Crashes use the fault hook (``BATCHSEG_FAULT``, batchseg/core/faults.py), which SIGKILLs the
launcher at a named point; the launcher runs as a real subprocess. Worker loss kills real
worker processes (SIGKILL) of a multi-process LocalCluster and of separate ``dask scheduler`` /
``dask worker`` processes. Every recovered store is compared value by value with a store
written by an uninterrupted run.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from distributed import Client, LocalCluster
from PIL import Image
from typer.testing import CliRunner

import batchseg
from batchseg.cli import app
from batchseg.cluster.profiles import AddressProfile
from batchseg.errors import StoreError
from batchseg.job.run import run_job
from batchseg.job.spec import JobSpec
from batchseg.methods import get_method
from batchseg.store.lock import lock_path
from tests.helpers.clusters import dask_processes_cluster, wait_idle
from tests.helpers.images import make_image, write_collection
from tests.helpers.stores import assert_same_store, status_counts
from tests.helpers.user_methods import on_path, unique_name, write_package

pytestmark = pytest.mark.integration

BATCHSEG = str(Path(sys.executable).with_name("batchseg"))
N_IMAGES = 24
SHARD = 2  # 12 shards: a crash after a few leaves most of them unfinished


def processed_of(stdout: str) -> int:
    if ": nothing to do: " in stdout:  # a finished store: no cluster, nothing processed
        return 0
    match = re.search(r"; (\d+) processed in", stdout)
    assert match, stdout
    return int(match.group(1))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rel") / "images"
    write_collection(folder, n=N_IMAGES, seed=11)
    return folder


def _cmd(images: Path, out: Path, *extra: str) -> list[str]:
    return [BATCHSEG, "run", str(images), "-m", "skimage.felzenszwalb", "-p", "scale=50",
            "-o", str(out), "--shard-size", str(SHARD), *extra]  # fmt: skip


@pytest.fixture(scope="module")
def reference(images, cluster_address, tmp_path_factory) -> Path:
    """The store of an uninterrupted run."""
    out = tmp_path_factory.mktemp("ref") / "ref.zarr"
    proc = subprocess.run(
        _cmd(images, out, "--scheduler", cluster_address), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert processed_of(proc.stdout) == N_IMAGES
    return out


# --------------------------------------------------------------------------- launcher crashes


@pytest.mark.parametrize(
    "point",
    [
        "after-shards-8",  # make test keeps one kill point; make test-system runs them all
        *(
            pytest.param(p, marks=pytest.mark.system)
            for p in ("planning", "creating", "before-execute", "finalise")
        ),
    ],
)
def test_launcher_sigkill_then_rerun_matches_uninterrupted_run(
    point, images, reference, cluster_address, tmp_path
):
    out = tmp_path / "out.zarr"
    cmd = _cmd(images, out, "--scheduler", cluster_address)
    crashed = subprocess.run(
        cmd, env={**os.environ, "BATCHSEG_FAULT": point}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert os.path.exists(lock_path(str(out)))  # left behind by the killed launcher
    wait_idle(cluster_address)  # shards it had started may still finish and be stored
    if point in ("planning",):
        assert not out.exists()
        done_before = 0
    elif point == "creating":
        assert not batchseg.store.exists(str(out))  # half-written, marked as being created
        done_before = 0
    else:
        counts = status_counts(out)
        done_before = counts["done"]
        assert counts["failed"] == 0 and counts["done"] + counts["pending"] == N_IMAGES
        if point == "before-execute":
            assert done_before == 0
        elif point == "finalise":
            assert done_before == N_IMAGES
        else:  # after-shards-8: 8 reported, a few more may have finished, most are pending
            assert 8 <= done_before < N_IMAGES

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "in use" not in rerun.stderr
    # only the unfinished shards were computed again
    assert processed_of(rerun.stdout) == N_IMAGES - done_before
    runs = batchseg.open(str(out)).attrs["runs"]
    if done_before == N_IMAGES:  # killed while finalising: the rerun had nothing to do and
        assert runs == []  # records no run of 0 images (issue 18 item 7)
    else:
        assert len(runs) == 1 and runs[-1]["processed"] == N_IMAGES - done_before
    assert_same_store(out, reference)
    assert not os.path.exists(lock_path(str(out)))


@pytest.mark.slow  # two embedded clusters: ~35 s on 2 cores
def test_launcher_sigkill_with_embedded_cluster(images, reference, tmp_path):
    """The embedded cluster dies with its launcher's process group; the rerun resumes."""
    out = tmp_path / "out.zarr"
    cmd = _cmd(images, out, "--workers", "2")
    proc = subprocess.Popen(
        cmd, env={**os.environ, "BATCHSEG_FAULT": "after-shards-8"}, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _, err = proc.communicate(timeout=300)
    finally:
        try:  # worker processes (and nannies) of the dead launcher, if any are left
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == -signal.SIGKILL, err
    deadline = time.monotonic() + 30
    while True:  # every process of that session is gone before we look at the store
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    done_before = status_counts(out)["done"]
    assert 8 <= done_before < N_IMAGES
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert processed_of(rerun.stdout) == N_IMAGES - done_before
    assert_same_store(out, reference)


# --------------------------------------------------------------------------- resume options


def test_no_retry_failed_and_fingerprint_refusal(tmp_path, cluster_address):
    rng = np.random.default_rng(2)
    folder = tmp_path / "in"
    folder.mkdir()
    good = make_image(rng, 40, 40, colour=False)
    for i in range(3):
        Image.fromarray(make_image(rng, 40, 40, colour=False)).save(folder / f"ok_{i}.png")
    Image.fromarray(good).save(folder / "flaky.png")
    valid = (folder / "flaky.png").read_bytes()
    (folder / "flaky.png").write_bytes(valid[: len(valid) // 2])  # header fine, pixels cut
    out = tmp_path / "out.zarr"
    base = ["run", str(folder), "-m", "skimage.otsu", "-o", str(out), "--shard-size", "1",
            "--scheduler", cluster_address]  # fmt: skip
    runner = CliRunner()
    first = runner.invoke(app, base)
    assert first.exit_code == 3 and processed_of(first.stdout) == 4
    (folder / "flaky.png").write_bytes(valid)  # repaired (same size, so the same job)
    skip = runner.invoke(app, [*base, "--no-retry-failed"])
    assert skip.exit_code == 3 and processed_of(skip.stdout) == 0
    assert status_counts(out) == {"pending": 0, "done": 3, "failed": 1}
    retry = runner.invoke(app, [*base, "--retry-failed"])
    assert retry.exit_code == 0 and processed_of(retry.stdout) == 1
    assert status_counts(out) == {"pending": 0, "done": 4, "failed": 0}
    np.testing.assert_array_equal(
        batchseg.open(str(out)).mask("flaky.png"), get_method("skimage.otsu").segment(good, {})
    )
    # other parameters (or inputs) are another job: refused unless --overwrite
    multi = ["run", str(folder), "-m", "skimage.multiotsu", "-o", str(out), "--scheduler",
             cluster_address]  # fmt: skip
    assert runner.invoke(app, [*multi, "--overwrite", "-p", "classes=3"]).exit_code == 0
    refused = runner.invoke(app, [*multi, "-p", "classes=4"])
    assert refused.exit_code == 1 and "another job" in refused.output
    manifest = folder / "some.txt"
    manifest.write_text("ok_0.png\nok_1.png\n")
    other_input = runner.invoke(
        app, ["run", str(manifest), "-m", "skimage.multiotsu", "-p", "classes=3", "-o", str(out),
              "--scheduler", cluster_address],
    )  # fmt: skip
    assert other_input.exit_code == 1 and "another job" in other_input.output
    assert runner.invoke(app, [*multi, "-p", "classes=4", "--overwrite"]).exit_code == 0
    assert batchseg.open(str(out)).attrs["method"]["params"]["classes"] == 4


# --------------------------------------------------------------------------- worker loss

# A test-only method: a user's function in a package written into a temporary folder, on the
# launcher's path and on the workers' PYTHONPATH (also of the ones a nanny restarts after a
# kill); the workers import it by its id like any method. The kernel is Otsu after a short sleep
# (so jobs last long enough to kill a worker mid-way) and, for an image of height
# ``crash_height``, SIGKILLs its own worker process: a "poison" input.
SLOW_PACKAGE = unique_name("reliability")
SLOW = f"{SLOW_PACKAGE}.slow:slow_otsu"
SLOW_SOURCE = """
import os
import signal
import time

import batchseg
from batchseg.methods import get_method


@batchseg.method(kind="classes", classes=["background", "foreground"])
def slow_otsu(image, delay: float = 0.1, crash_height: int = 0):
    \"\"\"Test only: Otsu after a sleep; crashes its process on one height.\"\"\"
    if image.shape[0] == crash_height:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(delay)
    return get_method("skimage.otsu").segment(image, {})
"""


@pytest.fixture(scope="module")
def slow_method(tmp_path_factory) -> Iterator[str]:
    """The method id of ``slow_otsu``, importable here and by workers started meanwhile."""
    site = write_package(tmp_path_factory.mktemp("site"), SLOW_PACKAGE, {"slow": SLOW_SOURCE})
    with on_path(site):
        yield SLOW


@pytest.fixture(scope="module")
def local_cluster(slow_method: str) -> Iterator[str]:
    """2 worker processes (nannies restart killed workers); a task that killed 2 workers is
    declared KilledWorker (allowed-failures 1 keeps the poison test short). worker-saturation
    1.0 keeps exactly one task per worker thread: with the default 1.1, a second (innocent)
    shard queued on the poisoned worker also counts each death and can be declared
    KilledWorker with it (it would be retried by the next run, but the test must be exact)."""
    import dask

    with (
        dask.config.set(
            {
                "distributed.scheduler.allowed-failures": 1,
                "distributed.scheduler.worker-saturation": 1.0,
            }
        ),
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
    ):
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def dask_processes(slow_method: str) -> Iterator[str]:
    """A scheduler and 2 ``dask worker --nworkers 1`` processes on loopback."""
    with dask_processes_cluster(2) as address:
        yield address


def _slow_spec(folder: Path, out: Path, address: str, **params) -> JobSpec:
    return JobSpec(
        input=str(folder), method=SLOW, output=str(out), profile=AddressProfile(address),
        shard_size=1, params={"delay": 0.1, **params},
    )  # fmt: skip


@pytest.fixture(scope="module")
def small_images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("small") / "images"
    write_collection(folder, n=24, seed=5)
    return folder


def _kill_worker_mid_job(address: str, spec: JobSpec) -> tuple[object, set[int], set[int]]:
    """Run ``spec``; once some images are stored and more are running, SIGKILL one worker."""
    with Client(address, timeout="10s") as c:
        before = set(c.run(os.getpid).values())
    outcome: list = []

    def target() -> None:
        try:
            outcome.append(run_job(spec))
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            outcome.append(exc)

    job = threading.Thread(target=target, daemon=True)
    job.start()
    deadline = time.monotonic() + 120
    while True:  # poll the store: a few shards done, the job still running
        if os.path.exists(spec.output) and batchseg.store.exists(spec.output):
            if status_counts(spec.output)["done"] >= 2:
                break
        assert job.is_alive() and time.monotonic() < deadline, "job ended before the kill"
        time.sleep(0.02)
    victim = sorted(before)[0]
    os.kill(victim, signal.SIGKILL)
    job.join(timeout=180)
    assert not job.is_alive(), "job did not finish after a worker was killed"
    with Client(address, timeout="10s") as c:
        deadline = time.monotonic() + 60
        while len(c.scheduler_info()["workers"]) < 2:  # the nanny brings it back
            assert time.monotonic() < deadline
            time.sleep(0.1)
        after = set(c.run(os.getpid).values())
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0], before, after


@pytest.mark.system
@pytest.mark.parametrize("cluster_kind", ["local_cluster", "dask_processes"])
def test_worker_killed_mid_job(cluster_kind, request, small_images, tmp_path):
    address = request.getfixturevalue(cluster_kind)
    ref = tmp_path / "ref.zarr"
    assert run_job(_slow_spec(small_images, ref, address)).exit_code == 0
    out = tmp_path / "out.zarr"
    result, before, after = _kill_worker_mid_job(address, _slow_spec(small_images, out, address))
    assert (result.done, result.failed, result.pending) == (24, 0, 0)
    assert result.exit_code == 0 and result.processed == 24
    assert len(before & after) == 1  # one worker process was replaced
    assert_same_store(out, ref)


@pytest.mark.system
def test_poison_shard_that_keeps_killing_workers_is_marked_failed(small_images, local_cluster,
                                                                  tmp_path):  # fmt: skip
    folder = tmp_path / "in"
    folder.mkdir()
    for p in sorted(small_images.rglob("*.png"))[:6]:
        (folder / p.name).write_bytes(p.read_bytes())
    Image.fromarray(np.full((13, 30), 90, np.uint8)).save(folder / "poison.png")
    out = tmp_path / "out.zarr"
    started = time.monotonic()
    result = run_job(_slow_spec(folder, out, local_cluster, crash_height=13, delay=0.0))
    assert time.monotonic() - started < 120  # retries are bounded
    assert result.exit_code == 3
    assert (result.done, result.failed, result.pending) == (6, 1, 0)
    table = batchseg.open(str(out)).table().set_index("image_id")
    error = table.loc["poison.png", "error"]
    assert table.loc["poison.png", "status"] == "failed"
    assert "KilledWorker" in error and "\n" not in error
    assert (table.drop(index="poison.png")["status"] == "done").all()
    with Client(local_cluster, timeout="10s") as c:  # the cluster still has workers
        deadline = time.monotonic() + 60
        while not c.scheduler_info()["workers"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)


# --------------------------------------------------------------------------- storage faults


def test_unwritable_output_is_a_one_line_error(tmp_path, collection):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a regular file where a folder is needed")
    result = CliRunner().invoke(
        app, ["run", str(collection), "-m", "skimage.otsu", "-o", str(blocker / "out.zarr")]
    )
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "file.txt" in lines[0]
    assert "Traceback" not in result.output


def _fill_disk_after(store: str, writes: int) -> None:  # runs on each worker
    import errno as _errno

    import zarr.storage

    cls = zarr.storage.LocalStore
    original = getattr(cls, "_batchseg_original_set", cls.set)
    count = [0]

    async def set_or_enospc(self, key, value, *args, **kwargs):  # noqa: ANN001
        if str(self.root).startswith(store):
            count[0] += 1
            if count[0] > writes:
                raise OSError(_errno.ENOSPC, os.strerror(_errno.ENOSPC))
        return await original(self, key, value, *args, **kwargs)

    cls._batchseg_original_set = original
    cls.set = set_or_enospc


def _disk_freed() -> None:  # runs on each worker
    import zarr.storage

    cls = zarr.storage.LocalStore
    if hasattr(cls, "_batchseg_original_set"):
        cls.set = cls._batchseg_original_set
        del cls._batchseg_original_set


@pytest.mark.system
def test_full_disk_mid_job_keeps_results_and_resumes(small_images, local_cluster, tmp_path):
    ref, out = tmp_path / "ref.zarr", tmp_path / "out.zarr"
    args = ["run", str(small_images), "-m", SLOW, "-p", "delay=0.0",
            "--shard-size", "1", "--scheduler", local_cluster, "-o"]  # fmt: skip
    runner = CliRunner()
    assert runner.invoke(app, [*args, str(ref)]).exit_code == 0
    args.append(str(out))
    # the launcher writes the catalogue; the workers then run out of space after a few shards
    with Client(local_cluster, timeout="10s") as c:
        # each shard is 4 writes (labels, stats, error, status): ~3 shards per worker fit
        c.run(_fill_disk_after, str(out), 12)
        try:
            full = runner.invoke(app, args)
        finally:
            c.run(_disk_freed)
        assert full.exit_code == 1, full.output
        lines = [line for line in full.output.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, full.output
        assert str(out) in lines[0] and "No space left on device" in lines[0]
        assert "rerun" in lines[0]
        assert not os.path.exists(lock_path(str(out)))  # released on the error
        wait_idle(local_cluster)
    counts = status_counts(out)
    assert counts["failed"] == 0 and 0 < counts["done"] < 24, counts
    # what was stored is intact and correct
    view, want = batchseg.open(str(out)), batchseg.open(str(ref))
    table = view.table()
    for image_id in table.loc[table["status"] == "done", "image_id"]:
        np.testing.assert_array_equal(view.mask(image_id), want.mask(image_id))
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert processed_of(again.stdout) == 24 - counts["done"]
    assert_same_store(out, ref)


@pytest.mark.system
def test_storage_error_from_store_is_store_error(tmp_path, small_images, local_cluster):
    """Direct API: the same fault surfaces as StoreError (an OSError) naming the store."""
    out = tmp_path / "out.zarr"
    with Client(local_cluster, timeout="10s") as c:
        c.run(_fill_disk_after, str(out), 0)
        try:
            with pytest.raises(StoreError, match=re.escape(str(out))) as info:
                run_job(_slow_spec(small_images, out, local_cluster, delay=0.0))
        finally:
            c.run(_disk_freed)
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.__cause__.errno == errno.ENOSPC
    wait_idle(local_cluster)
    assert status_counts(out) == {"pending": 24, "done": 0, "failed": 0}
