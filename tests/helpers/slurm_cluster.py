"""A real one-node SLURM cluster on this machine, for tests/cluster/test_slurm.py.

Uses the distribution's packages (Debian/Ubuntu ``slurm-wlm`` and ``munge``, Slurm 22.05 on
Debian 12), installed with apt-get when missing and the tests run as root. Everything else is
private to one temporary folder: a munge key and ``munged`` on its own socket, a ``slurm.conf``
for one node (``localhost``, the machine's CPUs and memory) with free TCP ports, ``slurmctld``
and ``slurmd`` run in the foreground as children of the test process (no systemd, no cgroups:
``proctrack/linuxproc``, ``task/none``), and their state, spool and log files. Clients reach it
through ``SLURM_CONF`` (see :attr:`SlurmCluster.env`); a SLURM already on the machine is not
touched.

Accounting: without ``slurmdbd`` (and a MariaDB behind it), ``sacct`` only says "Slurm
accounting storage is disabled". The lightest thing it can read instead is the job completion
log: ``JobCompType=jobcomp/filetxt`` makes slurmctld append a line for every job that ends
(completed, cancelled, failed, also cancelled while pending), and ``sacct --completion`` lists
those jobs with their id, name, state and node list. Running jobs are not in it (``squeue``
shows them).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.apt import apt_install
from tests.helpers.clusters import free_ports, wait_for

#: Commands the tests and batchseg use; all come with ``slurm-wlm`` and ``munge``.
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "scancel", "squeue", "sinfo", "sacct")
PACKAGES = ("slurm-wlm", "munge")
NODE = "localhost"
#: Setting this to 0 skips the SLURM tests instead of installing packages.
ENV_SWITCH = "BATCHSEG_SLURM_TESTS"


class SlurmUnavailable(Exception):
    """SLURM cannot run here for a reason that is not a fault (the tests are skipped)."""


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if _which(b) is None]


def _which(name: str) -> str | None:
    # sbin is not on a normal user's PATH
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which(name, path=path)


def ensure_installed(log: Path) -> float:
    """Install the packages when binaries are missing; the seconds it took (0 when none).

    Raises :class:`SlurmUnavailable` where nothing can be installed (not root, no apt-get),
    and RuntimeError when an installation was tried and failed.
    """
    if os.environ.get(ENV_SWITCH, "1") == "0":
        raise SlurmUnavailable(f"{ENV_SWITCH}=0")
    if os.name != "posix" or os.geteuid() != 0:
        raise SlurmUnavailable(
            "a real SLURM needs root (slurmd launches jobs as their user; the test set-up "
            "installs slurm-wlm and munge with apt-get when missing)"
        )
    missing = missing_binaries()
    if not missing:
        return 0.0
    if shutil.which("apt-get") is None:
        raise SlurmUnavailable(
            f"{', '.join(missing)} not installed and no apt-get to install "
            f"{' '.join(PACKAGES)} with"
        )
    started = time.monotonic()
    apt_install(list(PACKAGES), log, timeout=600)
    missing = missing_binaries()
    if missing:
        raise RuntimeError(f"installed {' '.join(PACKAGES)} but {', '.join(missing)} missing")
    return time.monotonic() - started


def _memory_mib() -> int:
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20)


@dataclass(frozen=True)
class Job:
    """One line of ``squeue`` or ``sacct --completion``."""

    job_id: int
    name: str
    state: str
    nodes: str


@dataclass
class SlurmCluster:
    root: Path
    conf: Path
    cpus: int
    memory_mib: int
    version: str = ""
    #: Seconds from writing the configuration to the node being idle.
    start_seconds: float = 0.0
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """The environment for SLURM clients (and batchseg runs) of this cluster."""
        path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"])
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": path}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=60)
        if check and proc.returncode:
            raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def squeue(self) -> list[Job]:
        """Jobs pending or running."""
        out = self.run("squeue", "--noheader", "--format=%i|%j|%T|%N").stdout
        return [_job(line) for line in out.splitlines() if line.strip()]

    def sacct(self) -> list[Job]:
        """Jobs that ended, from the job completion log (``sacct --completion``)."""
        out = self.run(
            "sacct", "--completion", "--parsable2", "--noheader",
            "--format=JobID,JobName,State,NodeList",
        ).stdout  # fmt: skip
        return [_job(line) for line in out.splitlines() if line.strip()]

    def logs(self) -> str:
        """The last lines of every daemon log, for failure messages."""
        parts = []
        for log in sorted((self.root / "log").glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {log.name}\n" + "\n".join(lines))
        return "\n".join(parts)


def _job(line: str) -> Job:
    job_id, name, state, nodes = line.split("|")[:4]
    return Job(int(job_id), name, state.split()[0], nodes)


def write_config(root: Path, cpus: int, memory_mib: int) -> Path:
    """slurm.conf and a munge key under ``root``; returns the slurm.conf path."""
    for sub in ("munge", "state", "spool", "log"):
        (root / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    conf = root / "slurm.conf"
    ctld_port, slurmd_port = free_ports(2)
    lines = {
        "ClusterName": "batchsegtest",
        "SlurmctldHost": f"{NODE}(127.0.0.1)",
        "SlurmctldPort": ctld_port,
        "SlurmdPort": slurmd_port,
        "SlurmUser": "root",
        "SlurmdUser": "root",
        "AuthType": "auth/munge",
        "CredType": "cred/munge",
        "AuthInfo": f"socket={root / 'munge' / 'munge.socket'}",
        "StateSaveLocation": root / "state",
        "SlurmdSpoolDir": root / "spool",
        "SlurmctldPidFile": root / "slurmctld.pid",
        "SlurmdPidFile": root / "slurmd.pid",
        "SlurmctldLogFile": root / "log" / "slurmctld.log",
        "SlurmdLogFile": root / "log" / "slurmd.log",
        # a container: no cgroups, no systemd
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "JobAcctGatherType": "jobacct_gather/none",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_Core_Memory",
        # the node is what this file says, whatever slurmd detects (sockets, cores)
        "SlurmdParameters": "config_overrides",
        "AccountingStorageType": "accounting_storage/none",
        # what `sacct --completion` reads
        "JobCompType": "jobcomp/filetxt",
        "JobCompLoc": root / "log" / "jobcomp.txt",
        "MailProg": "/bin/true",
        "MpiDefault": "none",
        "ReturnToService": 2,
        "SchedulerType": "sched/backfill",
        "KillWait": 5,
        "InactiveLimit": 0,
        "MinJobAge": 300,
        "NodeName": f"{NODE} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mib} State=UNKNOWN",
        "PartitionName": f"debug Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
    }
    conf.write_text("".join(f"{k}={v}\n" for k, v in lines.items()), encoding="utf-8")
    return conf


@contextmanager
def slurm_cluster(root: Path, cpus: int | None = None) -> Iterator[SlurmCluster]:
    """munged, slurmctld and slurmd for one node (the packages installed: see
    :func:`ensure_installed`); every job cancelled and the daemons stopped (and reaped) at
    the end."""
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    ncpus = cpus or max(2, len(os.sched_getaffinity(0)))
    memory = max(1024, int(_memory_mib() * 0.9))
    conf = write_config(root, ncpus, memory)
    cluster = SlurmCluster(root, conf, ncpus, memory)
    munge = root / "munge"
    commands: dict[str, list[str]] = {
        "munged": [
            _need("munged"), "--foreground", "--force",
            f"--key-file={munge / 'munge.key'}", f"--socket={munge / 'munge.socket'}",
            f"--pid-file={munge / 'munged.pid'}", f"--seed-file={munge / 'munged.seed'}",
            f"--log-file={root / 'log' / 'munged.log'}",
        ],
        "slurmctld": [_need("slurmctld"), "-D", "-c", "-f", str(conf)],
        "slurmd": [_need("slurmd"), "-D", "-N", NODE, "-f", str(conf)],
    }  # fmt: skip
    try:
        for name, command in commands.items():
            with (root / "log" / f"{name}.stderr").open("wb") as err:
                cluster.procs[name] = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                    env=cluster.env, start_new_session=True,
                )  # fmt: skip
            if name == "munged":
                wait_for("munged's socket", (munge / "munge.socket").exists, 30)
            _check_alive(cluster)
        wait_for("the SLURM node to be idle", lambda: _idle(cluster), 60, context=cluster.logs)
        cluster.start_seconds = time.monotonic() - started
        cluster.version = cluster.run("sinfo", "--version").stdout.strip()
        yield cluster
    finally:
        _teardown(cluster)


def _need(name: str) -> str:
    path = _which(name)
    if path is None:
        raise RuntimeError(f"{name} not found")
    return path


def _check_alive(cluster: SlurmCluster) -> None:
    for name, proc in cluster.procs.items():
        if proc.poll() is not None:
            err = (cluster.root / "log" / f"{name}.stderr").read_text(errors="replace")
            raise AssertionError(
                f"{name} exited with {proc.returncode}: {err[-2000:]}\n{cluster.logs()}"
            )


def _idle(cluster: SlurmCluster) -> bool:
    _check_alive(cluster)
    proc = cluster.run("sinfo", "--noheader", "--Node", "--format=%t", check=False)
    return proc.returncode == 0 and proc.stdout.strip() == "idle"


def _teardown(cluster: SlurmCluster) -> None:
    """Cancel every job of the cluster, wait until they are gone, stop the daemons."""
    procs = cluster.procs
    if procs.get("slurmctld") and procs["slurmctld"].poll() is None:
        with suppress(Exception):
            cluster.run("scancel", "--user", "root", check=False)
            wait_for("the jobs to end", lambda: not cluster.squeue(), 60, every=0.5)
    # slurmd before slurmctld (a stopping controller would mark the node down), munged last
    for name in ("slurmd", "slurmctld", "munged"):
        proc = procs.get(name)
        if proc is None or proc.poll() is not None:
            continue
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
