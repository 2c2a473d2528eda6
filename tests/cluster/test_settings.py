"""Cluster settings from flags and a TOML file (``--cluster-spec``): what evaluate and
panoptic resolve with the same rules as run's job spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchseg.cluster.profiles import AddressProfile, JobqueueProfile, LocalProfile
from batchseg.cluster.settings import ClusterSettings, load_cluster_settings
from batchseg.errors import UsageError

SLURM = """
tls_ca_file = "ca.pem"
tls_cert = "cert.pem"
tls_key = "key.pem"
input = "ignored: not a cluster key"
[cluster]
profile = "slurm"
walltime = "00:10:00"
cores = 1
memory = "1GB"
log_directory = "logs"
"""


def test_flags_only_and_defaults() -> None:
    assert load_cluster_settings(None) == ClusterSettings(LocalProfile())
    got = load_cluster_settings(None, {"workers": 2, "threads_per_worker": None})
    assert got == ClusterSettings(LocalProfile(workers=2))
    got = load_cluster_settings(None, {"scheduler": "tcp://h:8786"})
    assert got.profile == AddressProfile("tcp://h:8786")


def test_file_table_and_relative_paths(tmp_path: Path) -> None:
    spec = tmp_path / "cluster.toml"
    spec.write_text(SLURM)
    got = load_cluster_settings(spec)
    assert isinstance(got.profile, JobqueueProfile) and got.profile.kind == "slurm"
    assert got.profile.log_directory == str(tmp_path / "logs")
    assert (got.tls_ca_file, got.tls_key) == (str(tmp_path / "ca.pem"), str(tmp_path / "key.pem"))
    # flags win: --cluster pbs keeps the table's keys, --scheduler replaces the profile
    assert load_cluster_settings(spec, {"cluster": "pbs"}).profile.kind == "pbs"
    attached = load_cluster_settings(spec, {"scheduler": "tls://h:8786"})
    assert attached.profile == AddressProfile("tls://h:8786")


@pytest.mark.parametrize(
    ("text", "flags", "needle"),
    [
        ("", {"workers": 0}, "'workers' must be an integer in [1, 1024]"),
        ("", {"workers": 2, "scheduler": "tcp://h:1"}, "applies to the local cluster only"),
        ("", {"tls_cert": "c.pem"}, "missing tls_ca_file, tls_key"),
        ("[cluster]\nprofile = 'slurm'\n", {}, "needs 'walltime'"),
        ("[cluster]\nqueue = 'x'\n", {}, "unknown key 'queue'"),
        ("workers = [", {}, "is not valid TOML"),
    ],
)
def test_refusals_are_usage_errors(tmp_path: Path, text: str, flags: dict, needle: str) -> None:
    spec = tmp_path / "c.toml"
    spec.write_text(text)
    with pytest.raises(UsageError, match=needle.replace("[", r"\[")):
        load_cluster_settings(spec, flags)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cluster spec not found"):
        load_cluster_settings(tmp_path / "nope.toml")
