"""Job specification: a frozen dataclass, loaded from TOML and overridden by CLI flags.

Resolution order: command-line flag > spec file > default.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchseg.cluster.profiles import (
    AddressProfile,
    JobqueueProfile,
    KubernetesProfile,
    LocalProfile,
    Profile,
    check_int,
)
from batchseg.cluster.settings import (
    LOCAL_KEYS,
    TLS_KEYS,
    ClusterSettings,
    check_tls_together,
    read_toml,
    resolve_cluster,
)
from batchseg.core.plan import DEFAULT_TILE_SIZE, DEFAULT_TILE_THRESHOLD
from batchseg.errors import UsageError
from batchseg.io.planes import StackView, parse_view
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
    #: stacks: axes split into planes (z, t, zt), channels the method sees, z projection,
    #: an axes hint for files without names, per-channel measurements (all / none)
    planes: str | None = None
    channels: str | None = None
    project: str | None = None
    axes: str | None = None
    measure_channels: str | None = None
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
            **self.view.record(),
            "gpus": local.gpus,
            "tls_ca_file": self.tls_ca_file,
            "tls_cert": self.tls_cert,
            "tls_key": self.tls_key,
            "cluster": table,
        }

    @property
    def view(self) -> StackView:
        """How stacks and channels are read (:mod:`batchseg.io.planes`)."""
        return parse_view(
            self.planes, self.channels, self.project, self.axes, self.measure_channels
        )

    @property
    def cluster_settings(self) -> ClusterSettings:
        """Where the workers come from and the TLS files of the link."""
        return ClusterSettings(self.profile, self.tls_ca_file, self.tls_cert, self.tls_key)

    def replace(self, **changes: Any) -> JobSpec:
        return dataclasses.replace(self, **changes)


#: The keys of a job spec (TOML, flags, ``to_dict``), in the order ``to_dict`` writes them.
SPEC_KEYS = tuple(
    JobSpec(
        input="",
        method="",
        output="",
        append=True,
        follow_links=True,
        objects=True,
        colors="c",
        planes="t",
        channels="0",
        project="max",
        axes="zyx",
        measure_channels="all",
    ).to_dict()
)
_PATH_KEYS = ("input", "output", "colors", *TLS_KEYS)
STACK_KEYS = ("planes", "channels", "project", "axes", "measure_channels")
_STR_KEYS = ("input", "method", "output", "scheduler", "colors", *STACK_KEYS, *TLS_KEYS)
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
    data = read_toml(spec_path, "job spec")
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
    chans = merged.get("channels")
    if isinstance(chans, int) and not isinstance(chans, bool):
        merged["channels"] = str(chans)  # channels = 1 in TOML
    elif isinstance(chans, list) and all(type(c) is int for c in chans):
        merged["channels"] = ",".join(map(str, chans))  # channels = [2, 1, 0]
    for key in _STR_KEYS:
        value = merged.get(key)
        if value is not None and not isinstance(value, str):
            raise UsageError(f"{key!r} must be a string, got {value!r}")
    check_tls_together(merged)
    if not isinstance(merged.get("params") or {}, Mapping):
        raise UsageError(f"'params' in {source} must be a table")
    for key in LOCAL_KEYS:
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
    parse_view(*(merged.get(k) for k in STACK_KEYS))  # a bad value: one line naming it
    profile = resolve_cluster(merged, data, overrides or {}, source)
    for key in (*LOCAL_KEYS, "scheduler", "cluster"):
        merged.pop(key, None)
    return JobSpec(**merged, profile=profile)


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
