"""Job specification: a frozen dataclass, loaded from TOML and overridden by CLI flags.

Resolution order: command-line flag > spec file > default.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchseg.cluster.profiles import (
    PROFILES,
    AddressProfile,
    LocalProfile,
    Profile,
    check_keys,
    parse_profile,
    profile_name,
)
from batchseg.errors import UsageError
from batchseg.io.read import DEFAULT_MAX_PIXELS
from batchseg.job.plan import DEFAULT_TILE_SIZE, DEFAULT_TILE_THRESHOLD


@dataclass(frozen=True)
class JobSpec:
    """Everything that defines a job."""

    input: str
    method: str
    output: str
    params: dict[str, Any] = field(default_factory=dict)
    workers: int | None = None
    threads_per_worker: int | None = None
    scheduler: str | None = None
    shard_size: int | None = None
    overwrite: bool = False
    retry_failed: bool = True
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    io_threads: int = 4
    #: images with more pixels are segmented tile by tile; 0 = never tile
    tile_threshold: int = DEFAULT_TILE_THRESHOLD
    tile_size: int = DEFAULT_TILE_SIZE
    gpus: int = 0
    tls_ca_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    #: The ``[cluster]`` table of a slurm, pbs or kubernetes profile; empty for the local
    #: cluster and for ``address`` (whose address is ``scheduler``). See batchseg.cluster.profiles.
    cluster: dict[str, Any] = field(default_factory=dict)

    @property
    def profile(self) -> Profile:
        """Where the workers come from (a batchseg.cluster.profiles dataclass)."""
        if self.cluster:
            return parse_profile(self.cluster)
        if self.scheduler:
            return AddressProfile(self.scheduler)
        return LocalProfile(self.workers, self.threads_per_worker, self.gpus)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> JobSpec:
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in dataclasses.fields(JobSpec)}
_TLS_KEYS = ("tls_ca_file", "tls_cert", "tls_key")
_PATH_KEYS = ("input", "output", *_TLS_KEYS)
_INT_KEYS = (
    "workers",
    "threads_per_worker",
    "shard_size",
    "max_pixels",
    "io_threads",
    "tile_size",
)
_STR_KEYS = ("input", "method", "output", "scheduler", *_TLS_KEYS)


def load_spec(path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None) -> JobSpec:
    """Read a TOML job spec; relative paths are taken from the spec file's folder."""
    spec_path = Path(path)
    try:
        with open(spec_path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"job spec not found: {spec_path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"job spec {spec_path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read job spec {spec_path}: {exc.strerror or exc}") from None
    folder = spec_path.absolute().parent
    for key in _PATH_KEYS:
        value = data.get(key)
        if isinstance(value, str) and "://" not in value and not os.path.isabs(value):
            data[key] = str(folder / value)
    table = data.get("cluster")
    if isinstance(table, Mapping):
        log_dir = table.get("log_directory")
        if isinstance(log_dir, str) and not os.path.isabs(log_dir):
            data["cluster"] = {**table, "log_directory": str(folder / log_dir)}
    return build_spec(data, overrides, source=str(spec_path))


def build_spec(
    data: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, *, source: str = "flags"
) -> JobSpec:
    """A JobSpec from ``data`` with ``overrides`` (None values ignored); unknown keys fail."""
    merged = dict(data)
    for key, value in (overrides or {}).items():
        if value is None or key == "cluster":
            continue
        if key == "params":
            base = merged.get("params") or {}
            if not isinstance(base, Mapping) or not isinstance(value, Mapping):
                raise UsageError(f"'params' in {source} must be a table")
            merged["params"] = {**base, **value}
        else:
            merged[key] = value
    unknown = sorted(set(merged) - set(_FIELDS))
    if unknown:
        raise UsageError(f"unknown key {unknown[0]!r} in {source}; known: {', '.join(_FIELDS)}")
    for key in ("input", "method", "output"):
        if not merged.get(key):
            raise UsageError(f"missing {key!r} (give it on the command line or in the job spec)")
    for key in _STR_KEYS:
        value = merged.get(key)
        if value is not None and not isinstance(value, str):
            raise UsageError(f"{key!r} must be a string, got {value!r}")
    tls_given = [key for key in _TLS_KEYS if merged.get(key)]
    if tls_given and len(tls_given) < len(_TLS_KEYS):
        missing = [key for key in _TLS_KEYS if not merged.get(key)]
        raise UsageError(
            "TLS needs tls_ca_file, tls_cert and tls_key together (--tls-ca-file, --tls-cert, "
            f"--tls-key); missing {', '.join(missing)}"
        )
    if not isinstance(merged.get("params") or {}, Mapping):
        raise UsageError(f"'params' in {source} must be a table")
    for key in _INT_KEYS:
        value = merged.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise UsageError(f"{key!r} must be an integer, got {value!r}")
        if value is not None and value < 1:
            raise UsageError(f"{key!r} must be >= 1, got {value}")
    threshold = merged.get("tile_threshold")
    if threshold is not None and (
        not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 0
    ):
        raise UsageError(
            f"'tile_threshold' must be an integer >= 0 (0 = never tile), got {threshold!r}"
        )
    tile = merged.get("tile_size")
    if tile is not None and (tile % 256 or not 256 <= tile <= 16384):
        raise UsageError(f"'tile_size' must be a multiple of 256 in [256, 16384], got {tile}")
    for key in ("overwrite", "retry_failed"):
        if key in merged and not isinstance(merged[key], bool):
            raise UsageError(f"{key!r} must be true or false, got {merged[key]!r}")
    merged["params"] = dict(merged.get("params") or {})
    _resolve_cluster(merged, data, overrides or {}, source)
    return JobSpec(**merged)


_LOCAL_KEYS = ("workers", "threads_per_worker", "gpus")


def _fits(table: Mapping[str, Any], name: str) -> bool:
    """Whether every key of ``table`` is a key of profile ``name``."""
    try:
        check_keys({**{k: v for k, v in table.items() if k != "profile"}, "profile": name})
    except UsageError as exc:
        return "unknown key" not in str(exc)
    return True


def _resolve_cluster(
    merged: dict[str, Any], data: Mapping[str, Any], overrides: Mapping[str, Any], source: str
) -> None:
    """Settle the cluster profile in ``merged``: flags > spec file > local.

    ``--cluster PROFILE`` (override ``cluster``) picks the profile: it keeps the spec's
    ``[cluster]`` keys when the table names no other profile. ``--scheduler`` means
    ``address``. In one source, ``scheduler`` with a non-address ``[cluster]`` is an error.
    """
    table_in = data.get("cluster")
    if table_in is not None and not isinstance(table_in, Mapping):
        raise UsageError(f"'cluster' in {source} must be a table, got {table_in!r}")
    table = dict(table_in or {})
    flag_profile = overrides.get("cluster")
    flag_scheduler = overrides.get("scheduler")
    file_scheduler = data.get("scheduler")
    if isinstance(flag_profile, Mapping):
        table, flag_profile = dict(flag_profile), None
    elif flag_profile is not None:
        if flag_profile not in PROFILES:
            raise UsageError(
                f"--cluster must be one of {', '.join(PROFILES)}, got {flag_profile!r}"
            )
        if flag_scheduler and flag_profile != "address":
            raise UsageError(
                f"--scheduler attaches to an existing scheduler (profile 'address'); it "
                f"cannot go with --cluster {flag_profile}"
            )
        if table.get("profile", flag_profile) != flag_profile and not _fits(table, flag_profile):
            table = {}  # the spec's table describes another profile (slurm <-> pbs keys fit)
        table["profile"] = flag_profile
        if flag_profile != "address":
            merged["scheduler"] = None
    elif flag_scheduler:
        table = {"profile": "address", "address": flag_scheduler}
    elif file_scheduler and table and profile_name(table) != "address":
        raise UsageError(
            f"'scheduler' in {source} attaches to an existing scheduler but [cluster] profile "
            f"is {profile_name(table)!r}; keep one of them"
        )
    if not table.get("profile") and (flag_scheduler or merged.get("scheduler")):
        table["profile"] = "address"
    if profile_name(table) == "address" and not table.get("address"):
        if not (flag_scheduler or merged.get("scheduler")):
            raise UsageError(
                "cluster profile 'address' needs an address: --scheduler tcp://host:8786 or "
                "address in [cluster]"
            )
        table["address"] = flag_scheduler or merged.get("scheduler")
    name = check_keys(table)
    if name == "address":
        address = table.get("address")
        scheduler = flag_scheduler or merged.get("scheduler")
        if address and scheduler and address != scheduler and not flag_scheduler:
            raise UsageError(
                f"'scheduler' ({scheduler}) and [cluster] address ({address}) differ in {source}"
            )
        merged["scheduler"] = flag_scheduler or address or scheduler
        merged["cluster"] = {}
        return
    merged["scheduler"] = None
    if name == "local":
        for key in _LOCAL_KEYS:
            if key not in table:
                continue
            if overrides.get(key) is not None:
                continue  # the flag wins
            if data.get(key) not in (None, table[key]) and not (key == "gpus" and not data[key]):
                raise UsageError(f"{key!r} is given both at the top and in [cluster] of {source}")
            merged[key] = table[key]
        merged["cluster"] = {}
        return
    parse_profile(table)  # validates values, not only names and types
    given = [key for key in _LOCAL_KEYS if merged.get(key)]
    if given:
        raise UsageError(
            f"{given[0]!r} (--{given[0].replace('_', '-')}) applies to the local cluster only; "
            f"for profile {name!r} give cores, processes and gpus in [cluster]"
        )
    if name == "kubernetes" and merged.get("tls_ca_file"):
        raise UsageError("TLS files are not supported with the kubernetes profile")
    if "job_extra_directives" in table:
        table["job_extra_directives"] = list(table["job_extra_directives"])
    merged["cluster"] = table


def parse_param(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` from the command line."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--param expects KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()
