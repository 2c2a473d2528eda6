"""Job specification: a frozen dataclass, loaded from TOML and overridden by CLI flags.

Resolution order: command-line flag > spec file > default.
"""

from __future__ import annotations

import copy
import dataclasses
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
    JobqueueProfile,
    KubernetesProfile,
    LocalProfile,
    Profile,
    check_int,
    check_keys,
    parse_profile,
    profile_name,
)
from batchseg.core.plan import DEFAULT_TILE_SIZE, DEFAULT_TILE_THRESHOLD
from batchseg.errors import UsageError
from batchseg.io.read import DEFAULT_MAX_PIXELS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSpec:
    """Everything that defines a job. Where its workers come from is one ``profile``
    (batchseg.cluster.profiles); the flat keys users write (``workers``, ``scheduler``, ...)
    are folded into it by :func:`build_spec`, and :meth:`to_dict` writes them back."""

    input: str
    method: str
    output: str
    params: dict[str, Any] = field(default_factory=dict)
    shard_size: int | None = None
    overwrite: bool = False
    #: add the input's images that the store does not hold yet to an existing store
    append: bool = False
    retry_failed: bool = True
    #: follow folder symlinks that lead out of the input folder during discovery
    follow_links: bool = False
    #: measure every object into the store's object table; None: the method's default
    objects: bool | None = None
    #: CSV of class colours (``class,r,g,b`` or ``class,#rrggbb``) stored for the classes
    colors: str | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    io_threads: int = 4
    #: images with more pixels are segmented tile by tile; 0 = never tile
    tile_threshold: int = DEFAULT_TILE_THRESHOLD
    tile_size: int = DEFAULT_TILE_SIZE
    tls_ca_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    #: Where the workers come from: local (default), address, slurm, pbs or kubernetes.
    profile: Profile = field(default_factory=LocalProfile)

    def to_dict(self) -> dict[str, Any]:
        """The spec as its TOML keys (recorded in the store; ``build_spec`` reads it back).

        The layout predates ``profile``: the local cluster's sizes and the ``address`` are flat
        keys, other profiles their ``[cluster]`` table as given. Keep it: stores record it."""
        p = self.profile
        local = p if isinstance(p, LocalProfile) else LocalProfile()
        if isinstance(p, JobqueueProfile | KubernetesProfile):
            table = p.table()
        elif isinstance(p, LocalProfile) and p.dashboard_address is not None:
            table = {"dashboard_address": p.dashboard_address}
        else:
            table = {}
        return {
            "input": self.input,
            "method": self.method,
            "output": self.output,
            "params": copy.deepcopy(self.params),
            "workers": local.workers,
            "threads_per_worker": local.threads_per_worker,
            "scheduler": p.address if isinstance(p, AddressProfile) else None,
            "shard_size": self.shard_size,
            "overwrite": self.overwrite,
            **({"append": True} if self.append else {}),
            "retry_failed": self.retry_failed,
            # recorded only when set, so the specs of existing stores stay byte-identical
            **({"follow_links": True} if self.follow_links else {}),
            **({"objects": self.objects} if self.objects is not None else {}),
            **({"colors": self.colors} if self.colors else {}),
            "max_pixels": self.max_pixels,
            "io_threads": self.io_threads,
            "tile_threshold": self.tile_threshold,
            "tile_size": self.tile_size,
            "gpus": local.gpus,
            "tls_ca_file": self.tls_ca_file,
            "tls_cert": self.tls_cert,
            "tls_key": self.tls_key,
            "cluster": table,
        }

    def replace(self, **changes: Any) -> JobSpec:
        return dataclasses.replace(self, **changes)


_LOCAL_KEYS = ("workers", "threads_per_worker", "gpus")
#: The keys of a job spec (TOML, flags, ``to_dict``), in the order ``to_dict`` writes them.
SPEC_KEYS = tuple(
    JobSpec(
        input="", method="", output="", append=True, follow_links=True, objects=True, colors="c"
    ).to_dict()
)
_TLS_KEYS = ("tls_ca_file", "tls_cert", "tls_key")
_PATH_KEYS = ("input", "output", "colors", *_TLS_KEYS)
_STR_KEYS = ("input", "method", "output", "scheduler", "colors", *_TLS_KEYS)
#: Inclusive ranges of the job's own integer keys (the cluster's are in INT_RANGES). Beyond
#: them a job cannot run well: 2^63-1 images per shard overflowed the store's row count after
#: creating half of it; with 10^8 the job ran 100 s before every image failed.
SPEC_RANGES: dict[str, tuple[int, int]] = {
    "shard_size": (1, 65_536),
    "max_pixels": (1, 1 << 40),
    "io_threads": (1, 256),
    "tile_threshold": (0, 1 << 40),
}


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
    data = _lift_param_keys(data, str(spec_path))
    for key in _PATH_KEYS:
        data[key] = _from_folder(data.get(key), folder)
    params = data.get("params")
    if isinstance(params, Mapping):
        data["params"] = {**params, **_param_paths(params, folder)}
    table = data.get("cluster")
    if isinstance(table, Mapping):
        log_dir = table.get("log_directory")
        if isinstance(log_dir, str) and not os.path.isabs(log_dir):
            data["cluster"] = {**table, "log_directory": str(folder / log_dir)}
    return build_spec(data, overrides, source=str(spec_path))


#: Method parameters that a job spec may also give at its top level (as the flags do).
PARAM_KEYS = ("weights", "model", "classes")


def _lift_param_keys(data: dict[str, Any], source: str) -> dict[str, Any]:
    """``data`` with top-level ``weights``, ``model`` and ``classes`` moved into ``[params]``."""
    lifted = {k: data[k] for k in PARAM_KEYS if k in data}
    if not lifted:
        return data
    params = data.get("params") or {}
    if not isinstance(params, Mapping):
        raise UsageError(f"'params' in {source} must be a table")
    both = sorted(set(lifted) & set(params))
    if both:
        raise UsageError(f"{both[0]!r} is given both at the top level and in [params] of {source}")
    rest = {k: v for k, v in data.items() if k not in PARAM_KEYS}
    return {**rest, "params": {**params, **lifted}}


def _from_folder(value: Any, folder: Path) -> Any:
    """A relative local path taken from the spec's ``folder``; anything else as it is."""
    if isinstance(value, str) and value and "://" not in value and not os.path.isabs(value):
        return os.path.normpath(folder / value)
    return value


def _param_paths(params: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """The file parameters of ``params`` (``model``, ``classes``, a ``weights`` file, not a
    weights name such as ``DEFAULT``) taken from the spec's ``folder``."""
    from batchseg.methods.models import is_weights_path

    out = {k: _from_folder(params[k], folder) for k in ("model", "classes") if k in params}
    weights = params.get("weights")
    if isinstance(weights, str) and (is_weights_path(weights) or os.path.exists(folder / weights)):
        out["weights"] = _from_folder(weights, folder)
    return out


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
    if "pre" in merged:  # the preprocessing chain is kept (and recorded) with the parameters
        pre, params = merged.pop("pre"), merged.get("params") or {}
        if not isinstance(params, Mapping):
            raise UsageError(f"'params' in {source} must be a table")
        merged["params"] = {**params, "pre": pre}
    unknown = sorted(set(merged) - set(SPEC_KEYS))
    if unknown:
        known = ", ".join((*SPEC_KEYS, "pre", *PARAM_KEYS))
        raise UsageError(f"unknown key {unknown[0]!r} in {source}; known: {known}")
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
    for key in _LOCAL_KEYS:
        if merged.get(key) is not None:
            check_int(key, merged[key])
    for key, (low, high) in SPEC_RANGES.items():
        value = merged.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high
        ):
            never = " (0 = never tile)" if key == "tile_threshold" else ""
            raise UsageError(f"{key!r} must be an integer in [{low}, {high}]{never}, got {value!r}")
    tile = merged.get("tile_size")
    if tile is not None and (
        not isinstance(tile, int)
        or isinstance(tile, bool)
        or tile % 256
        or not 256 <= tile <= 16384
    ):
        raise UsageError(f"'tile_size' must be a multiple of 256 in [256, 16384], got {tile!r}")
    for key in ("overwrite", "append", "retry_failed", "follow_links", "objects"):
        if merged.get(key) is not None and not isinstance(merged[key], bool):
            raise UsageError(f"{key!r} must be true or false, got {merged[key]!r}")
    if merged.get("append") and merged.get("overwrite"):
        raise UsageError("--append adds to an existing store, --overwrite replaces it: give one")
    merged["params"] = dict(merged.get("params") or {})
    profile = _resolve_cluster(merged, data, overrides or {}, source)
    for key in (*_LOCAL_KEYS, "scheduler", "cluster"):
        merged.pop(key, None)
    return JobSpec(**merged, profile=profile)


def _fits(table: Mapping[str, Any], name: str) -> bool:
    """Whether every key of ``table`` is a key of profile ``name``."""
    try:
        check_keys({**{k: v for k, v in table.items() if k != "profile"}, "profile": name})
    except UsageError as exc:
        return "unknown key" not in str(exc)
    return True


def _resolve_cluster(
    merged: dict[str, Any], data: Mapping[str, Any], overrides: Mapping[str, Any], source: str
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
    sizes = {key: merged.get(key) for key in _LOCAL_KEYS}
    for key in _LOCAL_KEYS:
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
    given = [key for key in _LOCAL_KEYS if merged.get(key)]
    flags = [key for key in given if overrides.get(key) is not None]
    if flags or (given and not replaced):
        key = (flags or given)[0]
        raise UsageError(
            f"{key!r} (--{key.replace('_', '-')}) applies to the local cluster only; {hint}"
        )
    if given:
        log.info("%s of the job spec not used: %s", ", ".join(given), hint)


def parse_param(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` from the command line."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--param expects KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def resolve_spec(source: str | os.PathLike[str], overrides: Mapping[str, Any]) -> JobSpec:
    """The job of ``source`` (a ``.toml`` job spec, else the input collection) with
    ``overrides`` (flag or keyword values; None: not given), as ``batchseg run`` resolves it."""
    text = os.fspath(source)
    if text.lower().endswith(".toml"):
        return load_spec(text, overrides)
    return build_spec({"input": text}, overrides)


def cluster_profile(options: Mapping[str, Any], *, source: str = "arguments") -> Profile:
    """The profile of a job's cluster options (``workers``, ``threads_per_worker``, ``gpus``,
    ``scheduler``, ``cluster``: a profile name or a ``[cluster]`` table; None: not given),
    resolved and checked as :func:`build_spec` does for ``run``."""
    given = {key: value for key, value in options.items() if value is not None}
    unknown = sorted(set(given) - {*_LOCAL_KEYS, "scheduler", "cluster"})
    if unknown:
        raise UsageError(f"unknown cluster option {unknown[0]!r} in {source}")
    if "scheduler" in given and not isinstance(given["scheduler"], str):
        raise UsageError(f"'scheduler' must be a string, got {given['scheduler']!r}")
    for key in _LOCAL_KEYS:
        if key in given:
            check_int(key, given[key])
    return _resolve_cluster(dict(given), {}, given, source)
