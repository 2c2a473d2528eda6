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

from batchseg.errors import UsageError
from batchseg.readers import DEFAULT_MAX_PIXELS


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
    gpus: int = 0
    tls_ca_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> JobSpec:
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in dataclasses.fields(JobSpec)}
_TLS_KEYS = ("tls_ca_file", "tls_cert", "tls_key")
_PATH_KEYS = ("input", "output", *_TLS_KEYS)
_INT_KEYS = ("workers", "threads_per_worker", "shard_size", "max_pixels", "io_threads")
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
    return build_spec(data, overrides, source=str(spec_path))


def build_spec(
    data: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, *, source: str = "flags"
) -> JobSpec:
    """A JobSpec from ``data`` with ``overrides`` (None values ignored); unknown keys fail."""
    merged = dict(data)
    for key, value in (overrides or {}).items():
        if value is None:
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
    for key in ("overwrite", "retry_failed"):
        if key in merged and not isinstance(merged[key], bool):
            raise UsageError(f"{key!r} must be true or false, got {merged[key]!r}")
    merged["params"] = dict(merged.get("params") or {})
    return JobSpec(**merged)


def parse_param(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` from the command line."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--param expects KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()
