"""batchseg on a real SLURM: the workers are batch jobs of a one-node cluster on this machine.

The session fixture installs Debian's ``slurm-wlm`` and ``munge`` when missing (as root; the
tests are skipped otherwise, or with ``BATCHSEG_SLURM_TESTS=0``) and starts munged, slurmctld
and slurmd (tests/helpers/slurm_cluster.py). ``sacct --completion`` lists the jobs that ended (the
job completion log; no slurmdbd), ``squeue`` the running ones.

Both tests run one job spec with ``[cluster] profile = "slurm"`` and compare the store value
by value with the same job on the local cluster: an undisturbed run (two worker jobs, both seen
running, both in sacct afterwards) and a run in which one worker job is cancelled with
``scancel`` mid-run (batchseg submits a replacement job, which joins, and the job completes).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from batchseg.cluster.profiles import QUIET_DISTRIBUTED
from tests.helpers.clusters import wait_for
from tests.helpers.images import make_image
from tests.helpers.slurm_cluster import (
    ENV_SWITCH,
    SlurmCluster,
    SlurmUnavailable,
    ensure_installed,
    slurm_cluster,
)
from tests.helpers.stores import assert_same_store, status_counts

pytestmark = [pytest.mark.integration, pytest.mark.system]

BATCHSEG = str(Path(sys.executable).with_name("batchseg"))
#: Enough SLIC work (~30 ms an image here) for ~15 s on one single-core worker, so that a worker
#: job can be cancelled early and its replacement (~8 s to join) comes while shards are still to
#: do; small enough that the undisturbed run takes seconds, not half a minute.
N_IMAGES = 500
SHAPES = [(160, 200), (200, 160)]
SHARD = 4
JOBS = 2
#: Seconds a job's workers must be gone before batchseg replaces it (default 15 s).
LOST_WORKER_TIMEOUT = "2s"
REGISTERED = "Registered to:"


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    pytest.importorskip("dask_jobqueue")
    root = tmp_path_factory.mktemp("slurm")
    try:
        install_seconds = ensure_installed(root / "apt-get.log")
    except SlurmUnavailable as exc:
        pytest.skip(f"no real SLURM: {exc}")
    with slurm_cluster(root) as cluster:
        print(
            f"\n{cluster.version}: installed in {install_seconds:.1f} s, started in "
            f"{cluster.start_seconds:.1f} s ({cluster.cpus} CPUs, {cluster.memory_mib} MiB)"
        )
        yield cluster


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("slurm-images") / "images"
    rng = np.random.default_rng(21)
    for i in range(N_IMAGES):
        sub = folder / f"part{i % 4}"
        sub.mkdir(parents=True, exist_ok=True)
        image = make_image(rng, *SHAPES[i % len(SHAPES)], colour=bool(i % 3))
        Image.fromarray(image).save(sub / f"img_{i:04d}.png", compress_level=1)
    return folder


def _spec(folder: Path, images: Path, output: str, cluster: dict[str, Any]) -> Path:
    top = {"input": str(images), "method": "skimage.slic", "output": output, "shard_size": SHARD}
    lines = [f"{k} = {json.dumps(v)}" for k, v in top.items()]  # JSON scalars are TOML too
    lines += ["[params]", "n_segments = 200", "[cluster]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in cluster.items()]
    path = folder / f"{Path(output).stem}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(images: Path, tmp_path_factory: pytest.TempPathFactory, cluster_address: str) -> Path:
    """The same job on the session's local cluster (two worker processes, already running)."""
    folder = tmp_path_factory.mktemp("slurm-reference")
    spec = _spec(folder, images, "local.zarr", {"profile": "address", "address": cluster_address})
    proc = subprocess.run([BATCHSEG, "run", str(spec)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return folder / "local.zarr"


def _slurm_spec(folder: Path, images: Path) -> Path:
    return _spec(
        folder,
        images,
        "slurm.zarr",
        {
            "profile": "slurm",
            "walltime": "00:10:00",
            "cores": 1,
            "memory": "1GB",
            "jobs": JOBS,
            "interface": "lo",  # scheduler and workers on loopback
            "log_directory": "logs",
            "local_directory": str(folder / "scratch"),
        },
    )


class Launcher:
    """``batchseg run`` in the background, its output in files (no pipe to fill up)."""

    def __init__(self, slurm: SlurmCluster, spec: Path) -> None:
        self.folder = spec.parent
        self.out = self.folder / "launcher.out"
        self.err = self.folder / "launcher.err"
        env = {**slurm.env, "DASK_DISTRIBUTED__DEPLOY__LOST_WORKER_TIMEOUT": LOST_WORKER_TIMEOUT}
        # the launcher quiets distributed on its console, not in the worker logs read here
        for key in ("DASK_LOGGING__DISTRIBUTED", QUIET_DISTRIBUTED):
            env.pop(key, None)
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [BATCHSEG, "run", str(spec)], stdout=out, stderr=err, env=env,
                cwd=self.folder, stdin=subprocess.DEVNULL,
            )  # fmt: skip

    def output(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def running(self) -> bool:
        """True while running; an AssertionError with the output if it ended early."""
        code = self.proc.poll()
        assert code is None, f"batchseg ended early ({code}):\n{self.output()}"
        return True

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"batchseg did not finish in {timeout:.0f} s:\n{self.output()}"
            ) from None

    def registered_jobs(self) -> set[int]:
        """Job ids whose worker joined the scheduler (from the worker logs, batchseg-<id>.err)."""
        ids = set()
        for log in (self.folder / "logs").glob("batchseg-*.err"):
            if REGISTERED in log.read_text(errors="replace"):
                ids.add(int(log.stem.split("-")[1]))
        return ids

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def launch(slurm: SlurmCluster) -> Iterator[Any]:
    started: list[Launcher] = []

    def start(spec: Path) -> Launcher:
        launcher = Launcher(slurm, spec)
        started.append(launcher)
        return launcher

    yield start
    for launcher in started:
        launcher.stop()
    # a failed test leaves no job behind for the next one
    slurm.run("scancel", "--user", "root", check=False)
    wait_for("the jobs of the test to end", lambda: not slurm.squeue(), 60, every=0.5)


def _last_job_id(slurm: SlurmCluster) -> int:
    return max((j.job_id for j in slurm.sacct() + slurm.squeue()), default=0)


def _ended_jobs(slurm: SlurmCluster, after: int, expected: set[int]) -> dict[int, Any]:
    """sacct's batchseg jobs with ids above ``after``, once all of ``expected`` are listed
    (a job enters the completion log when it has ended)."""

    def probe() -> dict[int, Any] | None:
        if any(j.job_id > after for j in slurm.squeue()):
            return None
        jobs = {j.job_id: j for j in slurm.sacct() if j.job_id > after}
        return jobs if expected <= set(jobs) else None

    return wait_for(
        f"sacct to list jobs {sorted(expected)}",
        probe,
        60,
        every=0.5,
        context=lambda: f"squeue: {slurm.squeue()}\nsacct: {slurm.sacct()}",
    )


@pytest.mark.timeout(420)  # includes the first set-up: packages, SLURM, images, reference
def test_slurm_workers_give_the_same_store_as_local(
    slurm: SlurmCluster, images: Path, reference: Path, launch: Any, tmp_path: Path
) -> None:
    before = _last_job_id(slurm)
    t0 = time.monotonic()
    run = launch(_slurm_spec(tmp_path, images))
    seen_running: set[int] = set()
    deadline = time.monotonic() + 240
    while run.proc.poll() is None:
        assert time.monotonic() < deadline, f"batchseg did not finish:\n{run.output()}"
        seen_running |= {
            j.job_id for j in slurm.squeue() if j.name == "batchseg" and j.state == "RUNNING"
        }
        time.sleep(0.5)
    assert run.wait(timeout=1) == 0, run.output()
    seconds = time.monotonic() - t0
    assert f"{N_IMAGES} done, 0 failed, 0 pending" in run.output()

    jobs = _ended_jobs(slurm, before, seen_running)
    # exactly the two jobs of the profile: named batchseg, each ran on the node and ended
    assert len(jobs) == JOBS, jobs
    assert {j.name for j in jobs.values()} == {"batchseg"}, jobs
    assert {j.state for j in jobs.values()} <= {"COMPLETED", "CANCELLED"}, jobs
    assert all(j.nodes == "localhost" for j in jobs.values()), jobs
    assert set(jobs) == seen_running == run.registered_jobs(), (jobs, seen_running)
    assert "is gone" not in run.output()  # no job was replaced
    assert_same_store(tmp_path / "slurm.zarr", reference)
    print(f"\nslurm run: {seconds:.1f} s, jobs {sorted(jobs)}")


def _done(store: Path) -> int:
    try:
        return status_counts(store)["done"]
    except Exception:  # noqa: BLE001 - not created yet, or a chunk being written
        return 0


@pytest.mark.timeout(300)
def test_cancelled_worker_job_is_replaced(
    slurm: SlurmCluster, images: Path, reference: Path, launch: Any, tmp_path: Path
) -> None:
    before = _last_job_id(slurm)
    t0 = time.monotonic()
    run = launch(_slurm_spec(tmp_path, images))
    store = tmp_path / "slurm.zarr"

    # both workers joined and the first shards are written: cancel the oldest job
    wait_for(
        "both worker jobs to join and the first results",
        lambda: run.running() and len(run.registered_jobs()) == JOBS and _done(store) >= SHARD,
        120,
        context=run.output,
    )
    initial = run.registered_jobs()
    victim = min(initial)
    slurm.run("scancel", str(victim))
    done_at_cancel = _done(store)
    assert done_at_cancel < N_IMAGES // 2, "the run went too far before the cancel"

    # a replacement job is submitted and its worker joins while the run goes on
    replacement = wait_for(
        "a replacement worker job to join",
        lambda: run.running() and (run.registered_jobs() - initial),
        90,
        context=run.output,
    )
    assert run.wait(timeout=240) == 0, run.output()
    seconds = time.monotonic() - t0
    output = run.output()
    assert f"{N_IMAGES} done, 0 failed, 0 pending" in output
    assert re.search(rf"batch job {victim} \(\S+\) is gone.*submitting a replacement", output), (
        output
    )

    jobs = _ended_jobs(slurm, before, run.registered_jobs())
    assert len(jobs) == JOBS + 1, jobs  # the two of the profile and one replacement
    assert {j.name for j in jobs.values()} == {"batchseg"}, jobs
    assert jobs[victim].state == "CANCELLED", jobs
    assert set(jobs) == initial | replacement, (jobs, initial, replacement)
    assert_same_store(store, reference)
    print(
        f"\ncancelled job {victim} at {done_at_cancel}/{N_IMAGES} images; replacement "
        f"{sorted(replacement)}; run {seconds:.1f} s"
    )


def test_skipped_without_root_or_when_switched_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The reasons the fixture skips with; nothing is installed in either case."""
    monkeypatch.setenv(ENV_SWITCH, "0")
    with pytest.raises(SlurmUnavailable, match=f"{ENV_SWITCH}=0"):
        ensure_installed(tmp_path / "apt.log")
    monkeypatch.delenv(ENV_SWITCH)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SlurmUnavailable, match="needs root"):
        ensure_installed(tmp_path / "apt.log")
    assert not (tmp_path / "apt.log").exists()


@pytest.mark.timeout(300)
def test_evaluate_and_panoptic_on_slurm_workers(slurm: SlurmCluster, tmp_path: Path) -> None:
    """The job runner gives evaluate and panoptic every cluster option of run: a SLURM
    profile from ``--cluster-spec`` (one worker job each, cancelled at the end)."""
    import batchseg
    from tests.helpers.panoptic import write_instances, write_semantic

    sem, inst = write_semantic(tmp_path / "sem.zarr"), write_instances(tmp_path / "inst.zarr")
    truth = tmp_path / "truth"
    view = batchseg.open(str(sem))
    for image_id in view.table()["image_id"]:
        path = truth / f"{image_id.rsplit('.', 1)[0]}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(view.mask(image_id).astype(np.uint8)).save(path)
    spec = tmp_path / "cluster.toml"
    table = {"profile": "slurm", "walltime": "00:10:00", "cores": 1, "memory": "1GB"}
    table |= {"jobs": 1, "interface": "lo", "log_directory": "logs"}
    spec.write_text("[cluster]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items()))
    env = {**slurm.env}
    before = _last_job_id(slurm)
    commands = [
        ["evaluate", str(sem), "--truth", str(truth), "--json"],
        ["panoptic", "--semantic", str(sem), "--instances", str(inst), "-o",
         str(tmp_path / "pan.zarr"), "--min-stuff-area", "100"],
    ]  # fmt: skip
    outputs = []
    for args in commands:
        proc = subprocess.run(
            [BATCHSEG, *args, "--cluster-spec", str(spec)], capture_output=True, text=True,
            env=env, cwd=tmp_path, timeout=240, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        outputs.append(proc)
        assert proc.returncode in (0, 3), proc.stdout + proc.stderr
    assert json.loads(outputs[0].stdout)["eval"]["images_scored"] >= 3
    assert "3 images done, 1 failed" in outputs[1].stdout  # one image fails by design
    wait_for("both worker jobs in sacct", lambda: len(_ended_jobs(slurm, before, set())) >= 2, 60)
    jobs = _ended_jobs(slurm, before, set())
    assert {j.name for j in jobs.values()} == {"batchseg"}, jobs
    assert len(list((tmp_path / "logs").glob("batchseg-*.err"))) == 2
