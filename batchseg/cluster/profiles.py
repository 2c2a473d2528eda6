"""Cluster profiles: where a job's workers come from. Pure parsing and validation (no Dask).

A profile is the ``[cluster]`` table of a job spec (or ``--cluster PROFILE``)::

    [cluster]
    profile = "slurm"          # local (default), address, slurm, pbs or kubernetes
    queue = "gpu"
    walltime = "02:00:00"
    cores = 8
    memory = "32GB"
    gpus = 1
    maximum_jobs = 10

``parse_profile`` turns such a mapping into one of the frozen dataclasses below; every unknown
key and every wrong type is a :class:`~batchseg.errors.UsageError` naming the key. Building the
Dask cluster from a profile is :mod:`batchseg.cluster.connect`'s job.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field
from typing import Any

from batchseg.errors import UsageError

PROFILES = ("local", "address", "slurm", "pbs", "kubernetes")

#: Set (to "1") by the CLI when it quiets distributed's logs through DASK_LOGGING__DISTRIBUTED in
#: its environment; batch jobs inherit that environment, and their job script unsets both so
#: that worker logs (``log_directory``) keep distributed's default level.
QUIET_DISTRIBUTED = "BATCHSEG_QUIET_DISTRIBUTED"

_WALLTIME = re.compile(r"^(\d+):([0-5]\d):([0-5]\d)$")
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGTP])(iB|B)?$", re.IGNORECASE)
_MINUTES_5 = 300.0
#: The largest ``memory`` of one batch job (64 TiB: more than any node has).
MAX_JOB_MEMORY = 64 << 40
#: Inclusive ranges of the integer keys (of [cluster] tables, and of the same keys at the top of
#: a job spec). A value outside is a usage error naming the key, the value and the range.
INT_RANGES: dict[str, tuple[int, int]] = {
    "workers": (1, 1024),
    "threads_per_worker": (1, 1024),
    "gpus": (0, 64),
    "cores": (1, 4096),
    "processes": (1, 1024),
    "jobs": (1, 10_000),
    "minimum_jobs": (0, 10_000),
    "maximum_jobs": (1, 10_000),
    "n_workers": (1, 10_000),
}
#: ``host:port`` or ``:port`` (all interfaces) for a dashboard.
_DASHBOARD = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]*):(\d{1,5})$")


def check_int(key: str, value: Any, where: str = "") -> int:
    """``value`` as the integer key ``key`` (bool refused), within ``INT_RANGES[key]``."""
    low, high = INT_RANGES[key]
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise UsageError(f"{where}{key!r} must be an integer in [{low}, {high}], got {value!r}")
    return value


def memory_bytes(text: str) -> int:
    """Bytes of a batch job's ``memory`` such as ``16GB`` or ``512MiB`` (checked, bounded)."""
    m = _MEMORY.match(text.strip())
    if not m:
        raise UsageError(f"cluster 'memory' must be like '16GB' or '512MiB', got {text!r}")
    number, unit, suffix = m.groups()
    base = 1024 if (suffix or "").lower() == "ib" else 1000
    size = float(number) * base ** ("KMGTP".index(unit.upper()) + 1)  # inf for 400 digits
    if not 1 <= size <= MAX_JOB_MEMORY:
        raise UsageError(f"cluster 'memory' must be in (0, 64TiB], got {text!r}")
    return int(size)


def check_dashboard(text: str) -> str:
    """A dashboard address: ``host:port`` or ``:port`` (every interface), port 0 = any free."""
    m = _DASHBOARD.match(text)
    if not m or int(m.group(2)) > 65535:
        raise UsageError(
            f"cluster 'dashboard_address' must be host:port or :port (port 0-65535), got {text!r}"
        )
    return text


@dataclass(frozen=True)
class Lifetime:
    """Worker ``--lifetime`` / ``--lifetime-stagger`` (seconds) derived from a walltime."""

    lifetime: int
    stagger: int
    margin: int

    def worker_args(self) -> list[str]:
        # --no-lifetime-restart: a restarted worker would stay inside the same batch job, which
        # the batch system kills ``margin`` seconds later; retiring lets the job end instead.
        return [
            "--lifetime",
            f"{self.lifetime}s",
            "--lifetime-stagger",
            f"{self.stagger}s",
            "--no-lifetime-restart",
        ]


def walltime_seconds(text: str) -> int:
    """Seconds of an ``HH:MM:SS`` walltime (hours may exceed 24)."""
    m = _WALLTIME.match(text)
    if not m:
        raise UsageError(f"cluster 'walltime' must be HH:MM:SS, got {text!r}")
    h, mi, s = (int(g) for g in m.groups())
    return h * 3600 + mi * 60 + s


def derive_lifetime(walltime: str) -> Lifetime:
    """Worker lifetime settings that retire workers before the batch system kills their job.

    With ``W`` the walltime in seconds:

    - ``margin = min(5 min, 10% of W)``: time kept free at the end of the job for a graceful
      retirement (the worker stops taking tasks, hands its in-memory results to other workers,
      and the task it runs finishes writing its shard). Five minutes is ample for batchseg's
      shards; for short walltimes a fixed 5 minutes would eat most of the job, hence 10%.
    - ``stagger = min(5 min, 5% of W)``: distributed draws each worker's real lifetime
      uniformly in ``lifetime +/- stagger``, so that workers started together (one ``scale``
      call submits all jobs at once) do not all retire in the same second and empty the cluster.
    - ``lifetime = W - margin - stagger``: even the latest draw (``lifetime + stagger``)
      retires ``margin`` seconds before the walltime; the earliest one ``margin + 2*stagger``
      before it, which loses at most 20% of a job (usually about 15 minutes of a long one).

    The walltime counts from the job's start, a few seconds before its worker starts, so the
    real margin is slightly smaller than ``margin``; the 5-minute scale absorbs that. Restart
    after the lifetime is off: the batch job would be killed right after; with
    ``minimum_jobs``/``maximum_jobs`` (adaptive) new jobs replace the retired ones.
    """
    w = walltime_seconds(walltime)
    if w < 60:
        raise UsageError(f"cluster 'walltime' must be at least 00:01:00, got {walltime!r}")
    margin = min(_MINUTES_5, 0.10 * w)
    stagger = min(_MINUTES_5, 0.05 * w)
    return Lifetime(lifetime=int(w - margin - stagger), stagger=int(stagger), margin=int(margin))


@dataclass(frozen=True)
class LocalProfile:
    """The embedded cluster of worker processes on this machine (the default). It listens on
    loopback only; its dashboard too, unless ``dashboard_address`` says otherwise."""

    workers: int | None = None
    threads_per_worker: int | None = None
    gpus: int = 0
    dashboard_address: str | None = None
    kind: str = field(default="local", init=False)


@dataclass(frozen=True)
class AddressProfile:
    """An existing Dask scheduler (what ``--scheduler`` attaches to); left running."""

    address: str
    kind: str = field(default="address", init=False)


@dataclass(frozen=True)
class JobqueueProfile:
    """Workers started as SLURM or PBS batch jobs by dask-jobqueue; jobs cancelled at the end."""

    kind: str  # "slurm" or "pbs"
    walltime: str
    cores: int
    memory: str
    queue: str | None = None
    account: str | None = None
    processes: int = 1
    gpus: int = 0
    jobs: int | None = None
    minimum_jobs: int | None = None
    maximum_jobs: int | None = None
    job_extra_directives: tuple[str, ...] = ()
    local_directory: str | None = None
    log_directory: str | None = None
    interface: str | None = None
    #: The [cluster] keys as given, in their order ("profile" included): what ``table`` writes.
    keys: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def table(self) -> dict[str, Any]:
        """The ``[cluster]`` table this profile was parsed from (recorded in the store)."""
        out: dict[str, Any] = {}
        for key in self.keys or _default_keys(self):
            value = self.kind if key == "profile" else getattr(self, key)
            out[key] = list(value) if key == "job_extra_directives" else value
        return out

    @property
    def adaptive(self) -> bool:
        return self.minimum_jobs is not None or self.maximum_jobs is not None

    @property
    def lifetime(self) -> Lifetime:
        return derive_lifetime(self.walltime)

    @property
    def gpus_per_worker(self) -> int:
        """GPU resource each worker process declares (the job's GPUs split between them)."""
        return self.gpus // self.processes

    @property
    def max_threads(self) -> int:
        """Worker threads of the cluster at full size (to size shards before jobs start)."""
        n = self.jobs if self.jobs is not None else (self.maximum_jobs or self.minimum_jobs or 1)
        return max(1, n * self.cores)

    def directives(self) -> list[str]:
        """Extra header directives: the given ones plus the GPU request for SLURM."""
        extra = list(self.job_extra_directives)
        if self.gpus and self.kind == "slurm":
            extra.append(f"--gres=gpu:{self.gpus}")
        return extra

    def worker_args(self) -> list[str]:
        args = self.lifetime.worker_args()
        if self.gpus:
            args += ["--resources", f"GPU={self.gpus_per_worker}"]
        return args


@dataclass(frozen=True)
class KubernetesProfile:
    """A DaskCluster created through the Dask Kubernetes operator (dask-kubernetes)."""

    image: str
    namespace: str | None = None
    n_workers: int = 1
    #: ``{"requests": {"cpu": 2, "memory": "8Gi"}, "limits": {...}}``, quantities as given.
    resources: Mapping[str, Mapping[str, str | int]] = field(default_factory=dict)
    kind: str = field(default="kubernetes", init=False)
    #: The [cluster] keys as given, in their order ("profile" included): what ``table`` writes.
    keys: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def table(self) -> dict[str, Any]:
        """The ``[cluster]`` table this profile was parsed from (recorded in the store)."""
        out: dict[str, Any] = {}
        for key in self.keys or _default_keys(self):
            value: Any = self.kind if key == "profile" else getattr(self, key)
            out[key] = {k: dict(v) for k, v in value.items()} if key == "resources" else value
        return out


Profile = LocalProfile | AddressProfile | JobqueueProfile | KubernetesProfile


def _default_keys(profile: JobqueueProfile | KubernetesProfile) -> tuple[str, ...]:
    """The keys of a profile built in code (not parsed): those that differ from the defaults."""
    keys = ["profile"]
    for f in dataclasses.fields(profile):
        if f.name in ("kind", "keys") or not f.init:
            continue
        value = getattr(profile, f.name)
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        if f.default is MISSING and f.default_factory is MISSING or value != default:
            keys.append(f.name)
    return tuple(keys)


_KEYS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "local": {"workers": int, "threads_per_worker": int, "gpus": int, "dashboard_address": str},
    "address": {"address": str},
    "slurm": {
        "queue": str,
        "account": str,
        "walltime": str,
        "cores": int,
        "memory": str,
        "processes": int,
        "gpus": int,
        "jobs": int,
        "minimum_jobs": int,
        "maximum_jobs": int,
        "job_extra_directives": list,
        "local_directory": str,
        "log_directory": str,
        "interface": str,
    },
    "kubernetes": {"image": str, "namespace": str, "n_workers": int, "resources": dict},
}
_KEYS["pbs"] = _KEYS["slurm"]
_REQUIRED = {
    "address": ("address",),
    "slurm": ("walltime", "cores", "memory"),
    "pbs": ("walltime", "cores", "memory"),
    "kubernetes": ("image",),
}


def profile_name(data: Mapping[str, Any]) -> str:
    """The ``profile`` of a ``[cluster]`` table (``local`` when absent), checked."""
    name = data.get("profile", "local")
    if not isinstance(name, str) or name not in PROFILES:
        raise UsageError(f"cluster 'profile' must be one of {', '.join(PROFILES)}, got {name!r}")
    return name


def check_keys(data: Mapping[str, Any]) -> str:
    """Validate names and types of a ``[cluster]`` table; returns the profile name."""
    name = profile_name(data)
    allowed = _KEYS[name]
    for key, value in data.items():
        if key == "profile":
            continue
        if key not in allowed:
            known = ", ".join(["profile", *allowed])
            raise UsageError(
                f"unknown key {key!r} in [cluster] for profile {name!r}; known: {known}"
            )
        expected = allowed[key]
        if expected is int:
            check_int(key, value, "cluster ")
        elif expected is list:
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise UsageError(f"cluster {key!r} must be a list of strings, got {value!r}")
        elif expected is dict:
            if not isinstance(value, Mapping):
                raise UsageError(f"cluster {key!r} must be a table, got {value!r}")
        elif not isinstance(value, expected) or (expected is str and not value):
            raise UsageError(f"cluster {key!r} must be a non-empty string, got {value!r}")
    for key in _REQUIRED.get(name, ()):
        if key not in data:
            raise UsageError(f"cluster profile {name!r} needs {key!r} in [cluster]")
    if "dashboard_address" in data:
        check_dashboard(data["dashboard_address"])
    return name


def parse_profile(data: Mapping[str, Any]) -> Profile:
    """A validated profile from a ``[cluster]`` table (``{}`` is the local profile)."""
    name = check_keys(data)
    d = {k: v for k, v in data.items() if k != "profile"}
    if name == "local":
        return LocalProfile(**d)
    if name == "address":
        return AddressProfile(**d)
    keys = tuple(data)
    if name == "kubernetes":
        resources = _resources(d.get("resources") or {})
        return KubernetesProfile(**{**d, "resources": resources, "keys": keys})
    return _jobqueue(name, d, keys)


def _jobqueue(name: str, d: dict[str, Any], keys: tuple[str, ...]) -> JobqueueProfile:
    derive_lifetime(d["walltime"])  # format and minimum checked here
    memory_bytes(d["memory"])
    if "jobs" in d and ("minimum_jobs" in d or "maximum_jobs" in d):
        raise UsageError(
            "cluster 'jobs' (a fixed number) and 'minimum_jobs'/'maximum_jobs' (adaptive) "
            "exclude each other"
        )
    if "minimum_jobs" in d and "maximum_jobs" in d and d["minimum_jobs"] > d["maximum_jobs"]:
        raise UsageError(
            f"cluster 'minimum_jobs' ({d['minimum_jobs']}) exceeds 'maximum_jobs' "
            f"({d['maximum_jobs']})"
        )
    processes = d.get("processes", 1)
    if processes > d["cores"]:
        raise UsageError(f"cluster 'processes' ({processes}) exceeds 'cores' ({d['cores']})")
    gpus = d.get("gpus", 0)
    if gpus % processes:
        raise UsageError(
            f"cluster 'gpus' ({gpus}) must be a multiple of 'processes' ({processes}): each "
            "worker process declares an equal share"
        )
    if "jobs" not in d and "minimum_jobs" not in d and "maximum_jobs" not in d:
        d["jobs"] = 1
    d["job_extra_directives"] = tuple(d.get("job_extra_directives", ()))
    return JobqueueProfile(kind=name, keys=keys, **d)


def _resources(value: Mapping[str, Any]) -> dict[str, dict[str, str | int]]:
    out: dict[str, dict[str, str | int]] = {}
    for section, table in value.items():
        if section not in ("requests", "limits"):
            raise UsageError(
                f"unknown key {section!r} in cluster 'resources'; known: requests, limits"
            )
        if not isinstance(table, Mapping) or not all(
            isinstance(v, str | int) and not isinstance(v, bool) for v in table.values()
        ):
            raise UsageError(
                f"cluster 'resources.{section}' must be a table of quantities "
                f'(cpu = "2", memory = "8Gi"), got {table!r}'
            )
        out[section] = {str(k): v for k, v in table.items()}
    return out
