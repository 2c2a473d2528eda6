"""Cluster profiles: [cluster] parsing and validation, lifetime derivation, `cluster show`,
the address profile on a real cluster, and job cancellation through fake batch commands.

No SLURM or PBS is installed or run: dask-jobqueue writes job scripts without them, and the
cancellation test puts tiny fake ``sbatch``/``scancel`` scripts on PATH. The replacement of lost
batch jobs (``JobWatch``) is tested here on a fake cluster, and against a real SLURM in
tests/cluster/test_slurm.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from batchseg.cluster.profiles import (
    QUIET_DISTRIBUTED,
    AddressProfile,
    JobqueueProfile,
    KubernetesProfile,
    LocalProfile,
    derive_lifetime,
    parse_profile,
)
from batchseg.errors import UsageError
from batchseg.job.spec import build_spec, load_spec
from tests.helpers.cli import run_cli

BASIC = {"input": "imgs", "method": "skimage.otsu", "output": "out.zarr"}
SLURM = {
    "profile": "slurm",
    "queue": "gpu",
    "account": "proj42",
    "walltime": "02:00:00",
    "cores": 8,
    "memory": "32GB",
    "gpus": 1,
    "jobs": 3,
}


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return str(value)


def _spec_file(folder: Path, cluster: dict[str, Any], **top: Any) -> Path:
    lines = [f"{k} = {_toml_value(v)}" for k, v in {**BASIC, **top}.items()]
    lines.append("[cluster]")
    lines += [f"{k} = {_toml_value(v)}" for k, v in cluster.items()]
    path = folder / "job.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- parsing and validation ----------------------------------------------------------------


def test_parse_each_profile() -> None:
    assert parse_profile({}) == LocalProfile()
    assert parse_profile({"profile": "local", "workers": 2}) == LocalProfile(workers=2)
    assert parse_profile({"profile": "address", "address": "tcp://h:8786"}) == AddressProfile(
        "tcp://h:8786"
    )
    p = parse_profile({**SLURM, "job_extra_directives": ["--constraint=a100"]})
    assert isinstance(p, JobqueueProfile) and p.kind == "slurm"
    assert p.jobs == 3 and not p.adaptive and p.max_threads == 24
    assert p.directives() == ["--constraint=a100", "--gres=gpu:1"]
    assert p.worker_args()[-2:] == ["--resources", "GPU=1"]
    no_jobs = {k: v for k, v in SLURM.items() if k != "jobs"}
    adaptive = parse_profile({**no_jobs, "minimum_jobs": 0, "maximum_jobs": 5})
    assert isinstance(adaptive, JobqueueProfile) and adaptive.adaptive
    assert adaptive.jobs is None and adaptive.max_threads == 40
    k = parse_profile({"profile": "kubernetes", "image": "img:1", "n_workers": 4})
    assert isinstance(k, KubernetesProfile) and k.n_workers == 4 and k.namespace is None
    # no jobs given: one job
    one = parse_profile({k: v for k, v in SLURM.items() if k != "jobs"})
    assert isinstance(one, JobqueueProfile) and one.jobs == 1
    assert one.interface is None
    lo = parse_profile({**SLURM, "interface": "lo"})
    assert isinstance(lo, JobqueueProfile) and lo.interface == "lo"


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ({"profile": "lsf"}, "'profile' must be one of"),
        ({"profile": 3}, "'profile' must be one of"),
        ({**SLURM, "partition": "gpu"}, "unknown key 'partition'"),
        ({"profile": "local", "queue": "x"}, "unknown key 'queue'"),
        ({"profile": "kubernetes", "image": "i", "walltime": "01:00:00"}, "unknown key 'walltime'"),
        ({**SLURM, "cores": "8"}, "'cores' must be an integer"),
        ({**SLURM, "cores": True}, "'cores' must be an integer"),
        ({**SLURM, "cores": 0}, "'cores' must be an integer in [1, 4096], got 0"),
        ({**SLURM, "gpus": -1}, "'gpus' must be an integer in [0, 64], got -1"),
        ({**SLURM, "memory": 32}, "'memory' must be a non-empty string"),
        ({**SLURM, "memory": "lots"}, "'memory' must be like"),
        ({**SLURM, "walltime": "2h"}, "HH:MM:SS"),
        ({**SLURM, "walltime": 7200}, "'walltime' must be a non-empty string"),
        ({**SLURM, "walltime": "00:00:30"}, "at least 00:01:00"),
        ({**SLURM, "job_extra_directives": "--x"}, "list of strings"),
        ({**SLURM, "job_extra_directives": [1]}, "list of strings"),
        ({**SLURM, "interface": ""}, "'interface' must be a non-empty string"),
        ({"profile": "local", "interface": "lo"}, "unknown key 'interface'"),
        ({**SLURM, "minimum_jobs": 1}, "exclude each other"),
        (
            {
                **{k: v for k, v in SLURM.items() if k != "jobs"},
                "minimum_jobs": 4,
                "maximum_jobs": 2,
            },
            "exceeds 'maximum_jobs'",
        ),
        ({**SLURM, "processes": 16}, "'processes' (16) exceeds 'cores'"),
        ({**SLURM, "processes": 2, "gpus": 1}, "multiple of 'processes'"),
        ({"profile": "slurm", "cores": 8, "memory": "8GB"}, "needs 'walltime'"),
        ({"profile": "pbs", "walltime": "01:00:00", "memory": "8GB"}, "needs 'cores'"),
        ({"profile": "address"}, "needs 'address'"),
        ({"profile": "kubernetes"}, "needs 'image'"),
        (
            {"profile": "kubernetes", "image": "i", "resources": "big"},
            "'resources' must be a table",
        ),
        (
            {"profile": "kubernetes", "image": "i", "resources": {"wants": {"cpu": "1"}}},
            "unknown key 'wants'",
        ),
    ],
)
def test_parse_errors(table: dict[str, Any], needle: str) -> None:
    with pytest.raises(UsageError, match=re.escape(needle)):
        parse_profile(table)


def test_spec_cluster_table_and_flags(tmp_path: Path) -> None:
    spec = load_spec(_spec_file(tmp_path, {**SLURM, "log_directory": "logs"}))
    assert isinstance(spec.profile, JobqueueProfile)
    assert spec.profile.log_directory == str(tmp_path.absolute() / "logs")
    assert build_spec(spec.to_dict()) == spec  # round trip (stored in the store's metadata)
    # --cluster pbs keeps the (compatible) keys; --cluster local drops them
    pbs = load_spec(tmp_path / "job.toml", {"cluster": "pbs"})
    assert isinstance(pbs.profile, JobqueueProfile) and pbs.profile.kind == "pbs"
    assert load_spec(tmp_path / "job.toml", {"cluster": "local"}).profile == LocalProfile()
    # --scheduler implies address and wins over the spec's table
    flagged = load_spec(tmp_path / "job.toml", {"scheduler": "tcp://h:1"})
    assert flagged.profile == AddressProfile("tcp://h:1")
    with pytest.raises(UsageError, match="cannot go with --cluster slurm"):
        load_spec(tmp_path / "job.toml", {"cluster": "slurm", "scheduler": "tcp://h:1"})
    with pytest.raises(UsageError, match="--cluster must be one of"):
        load_spec(tmp_path / "job.toml", {"cluster": "lsf"})
    with pytest.raises(UsageError, match="applies to the local cluster only"):
        load_spec(tmp_path / "job.toml", {"workers": 4})
    with pytest.raises(UsageError, match="'scheduler' .* attaches"):
        build_spec({**BASIC, "scheduler": "tcp://h:1", "cluster": SLURM})
    with pytest.raises(UsageError, match="'cluster' in flags must be a table"):
        build_spec({**BASIC, "cluster": "slurm"})


def test_spec_local_and_address_tables() -> None:
    spec = build_spec({**BASIC, "cluster": {"profile": "local", "workers": 3, "gpus": 1}})
    assert spec.profile == LocalProfile(workers=3, gpus=1)
    assert spec.to_dict()["workers"] == 3 and spec.to_dict()["cluster"] == {}
    flagged = build_spec({**BASIC, "cluster": {"workers": 3}}, {"workers": 5})
    assert flagged.profile == LocalProfile(workers=5)
    with pytest.raises(UsageError, match="both at the top and in"):
        build_spec({**BASIC, "workers": 2, "cluster": {"workers": 3}})
    addr = build_spec({**BASIC, "cluster": {"profile": "address", "address": "tcp://h:2"}})
    assert addr.profile == AddressProfile("tcp://h:2")
    assert (addr.to_dict()["scheduler"], addr.to_dict()["cluster"]) == ("tcp://h:2", {})
    assert build_spec(addr.to_dict()) == addr
    assert build_spec({**BASIC, "scheduler": "tcp://h:2"}) == addr
    with pytest.raises(UsageError, match="differ"):
        build_spec(
            {
                **BASIC,
                "scheduler": "tcp://h:3",
                "cluster": {"profile": "address", "address": "tcp://h:2"},
            }
        )
    with pytest.raises(UsageError, match="needs an address"):
        build_spec(BASIC, {"cluster": "address"})


# --- lifetime -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("walltime", "lifetime", "stagger", "margin"),
    [
        ("01:00:00", 3600 - 300 - 180, 180, 300),  # margin capped at 5 min, stagger 5%
        ("12:00:00", 43200 - 300 - 300, 300, 300),  # both capped at 5 min
        ("00:20:00", 1200 - 120 - 60, 60, 120),  # short: 10% margin, 5% stagger
        ("00:01:00", 60 - 6 - 3, 3, 6),
        ("100:00:00", 360000 - 600, 300, 300),  # hours above 24
    ],
)
def test_derive_lifetime(walltime: str, lifetime: int, stagger: int, margin: int) -> None:
    life = derive_lifetime(walltime)
    assert (life.lifetime, life.stagger, life.margin) == (lifetime, stagger, margin)
    # the latest retirement (lifetime + stagger) still leaves the margin before the walltime
    total = sum(int(x) * m for x, m in zip(walltime.split(":"), (3600, 60, 1), strict=True))
    assert life.lifetime + life.stagger + life.margin == total
    assert life.worker_args() == [
        "--lifetime",
        f"{lifetime}s",
        "--lifetime-stagger",
        f"{stagger}s",
        "--no-lifetime-restart",
    ]


# --- cluster show -------------------------------------------------------------------------


def test_cluster_show_slurm(tmp_path: Path) -> None:
    pytest.importorskip("dask_jobqueue")
    path = _spec_file(tmp_path, {**SLURM, "gpus": 2, "job_extra_directives": ["--constraint=a100"]})
    result = run_cli("cluster", "show", str(path))
    assert result.exit_code == 0, result.output
    out = result.stdout
    for line in [
        "#SBATCH -p gpu",
        "#SBATCH -A proj42",
        "#SBATCH -t 02:00:00",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=30G",  # 32 GB is 29.8 GiB, rounded up by dask-jobqueue
        "#SBATCH --gres=gpu:2",
        "#SBATCH --constraint=a100",
    ]:
        assert line in out.splitlines(), (line, out)
    life = derive_lifetime("02:00:00")
    assert f"--lifetime {life.lifetime}s --lifetime-stagger {life.stagger}s" in out
    assert "--no-lifetime-restart" in out
    assert "--resources GPU=2" in out
    assert "--nthreads 8" in out


def test_cluster_show_interface_and_worker_log_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``interface`` reaches the workers (and the scheduler listens on it); the CLI's quiet
    distributed logging is unset in the job script, a user's own setting is left alone."""
    pytest.importorskip("dask_jobqueue")
    path = _spec_file(tmp_path, {**SLURM, "gpus": 0, "interface": "lo"})
    unset = f"unset DASK_LOGGING__DISTRIBUTED {QUIET_DISTRIBUTED}"
    for key in ("DASK_LOGGING__DISTRIBUTED", QUIET_DISTRIBUTED):
        monkeypatch.delenv(key, raising=False)
    result = run_cli("cluster", "show", str(path))
    assert result.exit_code == 0, result.output
    assert "--interface lo" in result.stdout
    assert "tcp://127.0.0.1:" in result.stdout  # the scheduler address the workers get
    assert unset in result.stdout.splitlines()
    assert os.environ[QUIET_DISTRIBUTED] == "1"  # set by the CLI (restored by monkeypatch)
    monkeypatch.delenv(QUIET_DISTRIBUTED)
    monkeypatch.setenv("DASK_LOGGING__DISTRIBUTED", "warning")
    result = run_cli("cluster", "show", str(path))
    assert result.exit_code == 0, result.output
    assert "unset" not in result.stdout and QUIET_DISTRIBUTED not in os.environ


def test_cluster_show_pbs(tmp_path: Path) -> None:
    pytest.importorskip("dask_jobqueue")
    path = _spec_file(
        tmp_path, {**SLURM, "profile": "pbs", "queue": "workq", "processes": 2, "gpus": 2}
    )
    result = run_cli("cluster", "show", str(path))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "#PBS -q workq" in lines
    assert "#PBS -A proj42" in lines
    assert "#PBS -l select=1:ncpus=8:mem=30GB:ngpus=2" in lines
    assert "#PBS -l walltime=02:00:00" in lines
    assert "--resources GPU=1" in result.stdout  # 2 GPUs shared by 2 worker processes
    assert "--nworkers 2" in result.stdout and "--lifetime 6600s" in result.stdout


def test_cluster_show_pbs_without_gpus_keeps_jobqueue_resource_spec(tmp_path: Path) -> None:
    pytest.importorskip("dask_jobqueue")
    cluster = {**SLURM, "profile": "pbs", "gpus": 0}
    result = run_cli("cluster", "show", str(_spec_file(tmp_path, cluster)))
    assert result.exit_code == 0, result.output
    assert "#PBS -l select=1:ncpus=8:mem=30GB" in result.stdout.splitlines()
    assert "GPU=" not in result.stdout and "ngpus" not in result.stdout


def test_cluster_show_local_and_address(tmp_path: Path) -> None:
    path = _spec_file(tmp_path, {"profile": "local", "workers": 3})
    result = run_cli("cluster", "show", str(path))
    assert result.exit_code == 0
    assert result.stdout.startswith("local: ") and "3 worker processes" in result.stdout
    result = run_cli("cluster", "show", str(path), "--scheduler", "tcp://head:8786")
    assert result.exit_code == 0
    assert (
        result.stdout.strip()
        == "address: attach to the existing scheduler tcp://head:8786 (left running)"
    )


def test_cluster_show_errors(tmp_path: Path) -> None:
    path = _spec_file(tmp_path, {**SLURM, "partition": "x"})
    result = run_cli("cluster", "show", str(path))
    assert result.exit_code == 2 and "unknown key 'partition'" in result.output
    result = run_cli("run", str(path))
    assert result.exit_code == 2 and "unknown key 'partition'" in result.output


def test_kubernetes_without_dask_kubernetes(tmp_path: Path) -> None:
    try:
        import dask_kubernetes  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("dask-kubernetes is installed")
    from tests.helpers.images import write_collection

    write_collection(tmp_path / "imgs", n=2)
    path = _spec_file(tmp_path, {"profile": "kubernetes", "image": "ghcr.io/x/batchseg:1"})
    for args in (["cluster", "show", str(path)], ["run", str(path)]):
        result = run_cli(*args)
        assert result.exit_code in (1, 2), result.output
        assert "install dask-kubernetes" in result.output


def test_slurm_run_without_sbatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("dask_jobqueue")
    from tests.helpers.images import write_collection

    write_collection(tmp_path / "imgs", n=2)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    result = run_cli("run", str(_spec_file(tmp_path, SLURM)))
    assert result.exit_code == 1
    assert "sbatch" in result.output and "not on PATH" in result.output


# --- real clusters ------------------------------------------------------------------------


@pytest.mark.integration
def test_address_profile_in_spec_works_like_scheduler(tmp_path: Path, cluster_address: str) -> None:
    from distributed import Client

    from tests.helpers.images import write_collection

    write_collection(tmp_path / "imgs", n=6)
    path = _spec_file(tmp_path, {"profile": "address", "address": cluster_address}, shard_size=2)
    result = run_cli("run", str(path))
    assert result.exit_code == 0, result.output
    assert "6 done, 0 failed, 0 pending" in result.stdout
    import batchseg

    assert batchseg.open(str(tmp_path / "out.zarr")).status()["done"] == 6
    # the scheduler was not started by batchseg: it is left running with its workers
    with Client(cluster_address, timeout="10s") as client:
        assert len(client.scheduler_info()["workers"]) == 2


def _fake_command(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.mark.integration
def test_jobqueue_jobs_are_cancelled_on_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """connect() submits the jobs (fake sbatch) and close() cancels them (fake scancel)."""
    pytest.importorskip("dask_jobqueue")
    from batchseg.cluster import connect as cluster_mod

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "calls.txt"
    _fake_command(
        bin_dir, "sbatch", f'echo "sbatch $*" >> {record}\necho "Submitted batch job 4242"'
    )
    _fake_command(bin_dir, "scancel", f'echo "scancel $*" >> {record}')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    profile = parse_profile({**SLURM, "gpus": 0, "jobs": 1})
    handle = cluster_mod.connect(profile=profile, dashboard_address=":0")
    try:
        assert handle.owned and not handle.local
        assert handle.n_threads() == 8  # expected from the profile while the job is queued
        deadline = time.monotonic() + 30
        while not (record.exists() and "sbatch" in record.read_text()):
            assert time.monotonic() < deadline, "the job was not submitted"
            time.sleep(0.1)
    finally:
        handle.close()
    calls = record.read_text().splitlines()
    assert any(c.startswith("scancel") and "4242" in c for c in calls), calls


# --- replacing lost batch jobs ------------------------------------------------------------


class _FakeJob:
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.closed = False

    async def close(self) -> None:
        self.closed = True


class _FakeCluster:
    """What JobWatch reads of a dask-jobqueue cluster: worker_spec, workers, scheduler_info."""

    def __init__(self, *names: str, processes: int = 1) -> None:
        spec = {"group": [f"-{i}" for i in range(processes)]} if processes > 1 else {}
        self.worker_spec: dict[str, dict[str, Any]] = {n: dict(spec) for n in names}
        self.workers: dict[str, Any] = {n: _FakeJob(str(100 + i)) for i, n in enumerate(names)}
        self.scheduler_info: dict[str, Any] = {"workers": {}}
        self.scaled: list[int] = []

    def connect(self, *worker_names: str) -> None:
        self.scheduler_info["workers"] = {f"tcp://{w}": {"name": w} for w in worker_names}

    def scale(self, jobs: int) -> None:  # submits the missing jobs (here: records the call)
        self.scaled.append(jobs)
        for i in range(jobs - len(self.worker_spec)):
            name = f"new-{len(self.scaled)}-{i}"
            self.worker_spec[name] = {}
            self.workers[name] = _FakeJob(f"new{i}")


def test_job_watch_removes_only_jobs_whose_workers_left() -> None:
    from batchseg.cluster.jobqueue import JobWatch

    cluster = _FakeCluster("a", "b", "c")
    watch = JobWatch(cluster, jobs=3, grace=5)
    assert watch.check(0) == []  # queued jobs are never lost...
    assert watch.check(1000) == []  # ...however long they wait
    cluster.connect("a", "b")
    assert watch.check(1001) == []
    assert {name: seen.job_id for name, seen in watch.seen.items()} == {"a": "100", "b": "101"}
    cluster.connect("b")  # a's worker left; c has not started yet
    assert watch.check(1002) == []
    assert watch.check(1006.9) == []  # within the grace period (a nanny restart, say)
    job_a = cluster.workers["a"]
    assert watch.check(1007) == [("a", "100", job_a)]
    assert "a" not in cluster.worker_spec and "a" not in cluster.workers
    assert watch.check(1100) == []  # reported once
    # back within the grace period: kept
    cluster.connect()
    assert watch.check(1101) == []
    cluster.connect("b")
    assert watch.check(1104) == [] and watch.check(1200) == []
    # scaled down on purpose (removed from worker_spec): not lost
    cluster.connect()
    del cluster.worker_spec["b"]
    assert watch.check(1300) == [] and watch.check(1400) == [] and not watch.seen


def test_job_watch_after_spec_cluster_dropped_or_resubmitted_the_job() -> None:
    from batchseg.cluster.jobqueue import JobWatch

    cluster = _FakeCluster("a", "b")
    watch = JobWatch(cluster, jobs=2, grace=5)
    cluster.connect("a", "b")
    watch.check(0)
    # SpecCluster drops a lost single-process job after the lost-worker timeout...
    cluster.connect("b")
    watch.check(1)
    job_a = cluster.workers.pop("a")
    assert job_a.job_id == "100"
    assert watch.check(6) == [("a", "100", None)] and "a" not in cluster.worker_spec
    # ...and distributed's adaptive loop may resubmit it under the same name: a new job
    cluster.connect()
    watch.check(10)
    cluster.workers["b"] = _FakeJob("200")
    assert watch.check(20) == [] and "b" not in watch.seen
    cluster.connect("b")
    assert watch.check(30) == [] and watch.seen["b"].job_id == "200"


def test_job_watch_counts_a_worker_that_left_between_two_checks() -> None:
    from batchseg.cluster.jobqueue import JobWatch

    cluster = _FakeCluster("a", "j", processes=1)
    watch = JobWatch(cluster, jobs=2, grace=5)
    watch.joined("a")  # from the scheduler plugin: the worker connected...
    watch.joined("someone-else")  # (not a worker of this cluster: ignored)
    assert watch.check(0) == [] and set(watch.seen) == {"a"}  # ...and left before this check
    assert [(name, job_id) for name, job_id, _ in watch.check(5)] == [("a", "100")]


def test_job_watch_counts_every_worker_process_of_a_job() -> None:
    from batchseg.cluster.jobqueue import JobWatch

    cluster = _FakeCluster("j", processes=2)
    watch = JobWatch(cluster, jobs=1, grace=5)
    cluster.connect("j-0", "j-1")
    assert watch.check(0) == []
    cluster.connect("j-1")  # one worker process of the job restarting: the job is alive
    assert watch.check(1) == [] and watch.check(100) == []
    cluster.connect()
    assert watch.check(101) == []
    assert [name for name, _, _ in watch.check(106)] == ["j"]


def test_job_watch_replaces_with_fixed_jobs_and_leaves_adaptive_to_adapt() -> None:
    from batchseg.cluster.jobqueue import JobWatch

    fixed = _FakeCluster("a", "b")
    watch = JobWatch(fixed, jobs=2, grace=0.01, interval=0.01)
    fixed.connect("a", "b")
    watch.check(0)
    fixed.connect("b")
    watch.check(1)
    job_a = fixed.workers["a"]
    asyncio.run(watch._replace_lost())
    assert job_a.closed and fixed.scaled == [2] and watch.lost == 1
    assert len(fixed.worker_spec) == 2 and "a" not in fixed.worker_spec

    adaptive = _FakeCluster("a", "b")
    watch = JobWatch(adaptive, jobs=None, grace=0.01, interval=0.01)
    adaptive.connect("a", "b")
    watch.check(0)
    adaptive.connect("b")
    watch.check(1)
    asyncio.run(watch._replace_lost())
    assert adaptive.scaled == [] and list(adaptive.worker_spec) == ["b"] and watch.lost == 1


def test_job_watch_grace_defaults_to_the_lost_worker_timeout() -> None:
    import dask

    from batchseg.cluster.jobqueue import JobWatch

    with dask.config.set({"distributed.deploy.lost-worker-timeout": "7s"}):
        assert JobWatch(_FakeCluster(), jobs=1).grace == 7
    assert JobWatch(_FakeCluster(), jobs=1, grace=0).grace == 1  # at least one interval
