"""Where a job's workers come from, resolved once for every command: the flat keys users write
(``workers``, ``threads_per_worker``, ``gpus``, ``scheduler``, ``tls_*``) and the ``[cluster]``
table, flags over a TOML file over the default (the embedded local cluster). Pure parsing, no
Dask: ``batchseg run`` reads them from its job spec (:mod:`batchseg.job.spec`), ``evaluate``
and ``panoptic`` from their flags and ``--cluster-spec FILE.toml``.
"""

from __future__ import annotations

import logging
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
    check_int,
    check_keys,
    parse_profile,
    profile_name,
)
from batchseg.errors import UsageError

log = logging.getLogger(__name__)

#: The local cluster's sizes (flat keys and flags).
LOCAL_KEYS = ("workers", "threads_per_worker", "gpus")
#: The three TLS files, which go together.
TLS_KEYS = ("tls_ca_file", "tls_cert", "tls_key")
#: Every key (of a TOML file, or a flag) that says where the workers come from.
CLUSTER_KEYS = (*LOCAL_KEYS, "scheduler", *TLS_KEYS, "cluster")


@dataclass(frozen=True)
class ClusterSettings:
    """Where the workers come from (``profile``) and the TLS files of the link (all or none)."""

    profile: Profile = field(default_factory=LocalProfile)
    tls_ca_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None


def check_cluster_values(merged: Mapping[str, Any]) -> None:
    """Types of the flat cluster keys, and the TLS files given together (or not at all)."""
    for key in ("scheduler", *TLS_KEYS):
        value = merged.get(key)
        if value is not None and not isinstance(value, str):
            raise UsageError(f"{key!r} must be a string, got {value!r}")
    check_tls_together(merged)
    for key in LOCAL_KEYS:
        if merged.get(key) is not None:
            check_int(key, merged[key])


def check_tls_together(merged: Mapping[str, Any]) -> None:
    """The three ``tls_*`` keys go together."""
    tls_given = [key for key in TLS_KEYS if merged.get(key)]
    if tls_given and len(tls_given) < len(TLS_KEYS):
        missing = [key for key in TLS_KEYS if not merged.get(key)]
        raise UsageError(
            "TLS needs tls_ca_file, tls_cert and tls_key together (--tls-ca-file, --tls-cert, "
            f"--tls-key); missing {', '.join(missing)}"
        )


def cluster_settings(
    data: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, *, source: str = "flags"
) -> ClusterSettings:
    """The settings of ``data`` (a TOML file's keys; keys that are not cluster keys are left
    alone) with the flags ``overrides`` (None values ignored): flags > file > local."""
    overrides = overrides or {}
    merged = {key: data.get(key) for key in CLUSTER_KEYS if key != "cluster"}
    merged.update({k: v for k, v in overrides.items() if v is not None and k != "cluster"})
    check_cluster_values(merged)
    profile = resolve_cluster(merged, data, overrides, source)
    return ClusterSettings(profile, *(merged.get(key) for key in TLS_KEYS))


def load_cluster_settings(
    path: str | os.PathLike[str] | None, overrides: Mapping[str, Any] | None = None
) -> ClusterSettings:
    """:func:`cluster_settings` of a TOML file (a job spec, or only its cluster keys and
    ``[cluster]`` table; None: flags only). Relative paths are taken from the file's folder."""
    if path is None:
        return cluster_settings({}, overrides)
    file = Path(path)
    data = read_toml(file, "cluster spec")
    return cluster_settings(relative_to(data, file.absolute().parent), overrides, source=str(file))


def read_toml(file: Path, what: str) -> dict[str, Any]:
    """The TOML file ``file`` (a ``what``: "job spec", "cluster spec"); one-line UsageErrors."""
    try:
        with open(file, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"{what} not found: {file}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{what} {file} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {file}: {exc.strerror or exc}") from None


def relative_to(data: dict[str, Any], folder: Path, keys: tuple[str, ...] = TLS_KEYS) -> dict:
    """``data`` with its relative local paths (``keys`` and ``[cluster]`` ``log_directory``)
    taken from ``folder``."""
    out = dict(data)
    for key in keys:
        value = out.get(key)
        if isinstance(value, str) and "://" not in value and not os.path.isabs(value):
            out[key] = str(folder / value)
    table = out.get("cluster")
    if isinstance(table, Mapping):
        log_dir = table.get("log_directory")
        if isinstance(log_dir, str) and not os.path.isabs(log_dir):
            out["cluster"] = {**table, "log_directory": str(folder / log_dir)}
    return out


def _fits(table: Mapping[str, Any], name: str) -> bool:
    """Whether every key of ``table`` is a key of profile ``name``."""
    try:
        check_keys({**{k: v for k, v in table.items() if k != "profile"}, "profile": name})
    except UsageError as exc:
        return "unknown key" not in str(exc)
    return True


def resolve_cluster(
    merged: Mapping[str, Any], data: Mapping[str, Any], overrides: Mapping[str, Any], source: str
) -> Profile:
    """Where the workers come from, from the flat keys and the ``[cluster]`` table: flags >
    spec file > local.

    ``--cluster PROFILE`` (override ``cluster``) picks the profile: it keeps the spec's
    ``[cluster]`` keys when the table names no other profile. ``--scheduler`` means
    ``address``. In one source, ``scheduler`` with a non-address ``[cluster]`` is an error.
    The local cluster's sizes (``workers``, ``threads_per_worker``, ``gpus``), at the top or
    in a local ``[cluster]`` table, make the local profile; with another profile they are an
    error, unless only the spec file gives them and a flag replaced its local cluster.
    """
    table_in = data.get("cluster")
    if table_in is not None and not isinstance(table_in, Mapping):
        raise UsageError(f"'cluster' in {source} must be a table, got {table_in!r}")
    table = dict(table_in or {})
    flag_profile = overrides.get("cluster")
    flag_scheduler = overrides.get("scheduler")
    file_scheduler = data.get("scheduler")
    scheduler = merged.get("scheduler")
    # the spec file's own choice was the local cluster, and a flag chose another one: the
    # file's local sizes are then unused rather than a conflict
    replaced = (flag_profile is not None or bool(flag_scheduler)) and (
        not file_scheduler and table.get("profile", "local") == "local"
    )
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
            scheduler = None
    elif flag_scheduler:
        table = {"profile": "address", "address": flag_scheduler}
    elif file_scheduler and table and profile_name(table) != "address":
        raise UsageError(
            f"'scheduler' in {source} attaches to an existing scheduler but [cluster] profile "
            f"is {profile_name(table)!r}; keep one of them"
        )
    if not table.get("profile") and scheduler:
        table["profile"] = "address"
    if profile_name(table) == "address" and not table.get("address"):
        if not scheduler:
            raise UsageError(
                "cluster profile 'address' needs an address: --scheduler tcp://host:8786 or "
                "address in [cluster]"
            )
        table["address"] = scheduler
    return _profile(table, merged, data, overrides, (source, replaced, flag_scheduler, scheduler))


def _profile(
    table: dict[str, Any],
    merged: Mapping[str, Any],
    data: Mapping[str, Any],
    overrides: Mapping[str, Any],
    how: tuple[str, bool, str | None, str | None],
) -> Profile:
    """The profile of a resolved ``[cluster]`` table (see :func:`resolve_cluster`)."""
    source, replaced, flag_scheduler, scheduler = how
    name = check_keys(table)
    if name == "address":
        address = table["address"]
        if address and scheduler and address != scheduler and not flag_scheduler:
            raise UsageError(
                f"'scheduler' ({scheduler}) and [cluster] address ({address}) differ in {source}"
            )
        target = flag_scheduler or address
        hint = f"the scheduler {target} has its own workers"
        _no_local_sizes(merged, overrides, replaced, hint)
        return AddressProfile(target)
    if name == "local":
        return _local_profile(merged, data, overrides, table, source)
    profile = parse_profile(table)  # validates values, not only names and types
    what = "n_workers" if name == "kubernetes" else "cores, processes and gpus"
    _no_local_sizes(merged, overrides, replaced, f"for profile {name!r} give {what} in [cluster]")
    if name == "kubernetes" and merged.get("tls_ca_file"):
        raise UsageError("TLS files are not supported with the kubernetes profile")
    return profile


def _local_profile(
    merged: Mapping[str, Any],
    data: Mapping[str, Any],
    overrides: Mapping[str, Any],
    table: Mapping[str, Any],
    source: str,
) -> LocalProfile:
    """The embedded cluster's sizes: flags, then the spec's top-level keys or its local
    ``[cluster]`` table (the same key in both is an error unless equal)."""
    sizes = {key: merged.get(key) for key in LOCAL_KEYS}
    for key in LOCAL_KEYS:
        if key not in table or overrides.get(key) is not None:
            continue  # the flag wins
        if data.get(key) not in (None, table[key]) and not (key == "gpus" and not data[key]):
            raise UsageError(f"{key!r} is given both at the top and in [cluster] of {source}")
        sizes[key] = table[key]
    return LocalProfile(
        workers=sizes["workers"],
        threads_per_worker=sizes["threads_per_worker"],
        gpus=sizes["gpus"] or 0,
        dashboard_address=table.get("dashboard_address"),
    )


def _no_local_sizes(
    merged: Mapping[str, Any], overrides: Mapping[str, Any], replaced: bool, hint: str
) -> None:
    """Refuse local-cluster sizes with another profile, unless only the spec file gives them
    and a flag ``replaced`` the file's local cluster with that profile."""
    given = [key for key in LOCAL_KEYS if merged.get(key)]
    flags = [key for key in given if overrides.get(key) is not None]
    if flags or (given and not replaced):
        key = (flags or given)[0]
        raise UsageError(
            f"{key!r} (--{key.replace('_', '-')}) applies to the local cluster only; {hint}"
        )
    if given:
        log.info("%s of the job spec not used: %s", ", ".join(given), hint)
