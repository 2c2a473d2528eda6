"""The job spec a store records (``spec.to_dict()`` in its attributes) and the job fingerprint
are pinned for sample specs: resuming a store compares the fingerprint, and the recorded spec
is what ``batchseg status``/provenance show, so both must stay byte-identical for the same job
however JobSpec represents the cluster inside.

The expected strings were produced by the code before JobSpec held one cluster profile.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batchseg.io.sources import ImageRef
from batchseg.job.fingerprint import fingerprint
from batchseg.job.spec import build_spec, load_spec
from batchseg.methods import get_method

BASIC = {"input": "imgs", "method": "skimage.otsu", "output": "out.zarr"}
SLURM_TOML = """input = "imgs"
method = "skimage.slic"
output = "out.zarr"
shard_size = 16

[params]
n_segments = 50

[cluster]
queue = "gpu"
profile = "slurm"
walltime = "02:00:00"
cores = 8
memory = "32GB"
processes = 1
job_extra_directives = ["--constraint=a100"]
log_directory = "logs"
"""
KUBE_TOML = """input = "s3://bucket/imgs"
method = "skimage.otsu"
output = "s3://bucket/out.zarr"

[cluster]
profile = "kubernetes"
image = "ghcr.io/x/batchseg:1"
n_workers = 4
resources = {requests = {cpu = 2, memory = "8Gi"}}
"""
LOCAL_TOML = """input = "imgs"
method = "skimage.otsu"
output = "out.zarr"
workers = 2
io_threads = 2
tile_threshold = 0

[cluster]
threads_per_worker = 2
gpus = 1
"""

_HEAD = '"params": {}, '
_TAIL = (
    '"shard_size": null, "overwrite": false, "retry_failed": true, "max_pixels": 268435456, '
    '"io_threads": 4, "tile_threshold": 67108864, "tile_size": 2048'
)
_TLS_NONE = '"tls_ca_file": null, "tls_cert": null, "tls_key": null'
_BASIC = '{"input": "imgs", "method": "skimage.otsu", "output": "out.zarr", '


def _local(workers: str, threads: str, scheduler: str, gpus: str) -> str:
    return (
        f'{_BASIC}{_HEAD}"workers": {workers}, "threads_per_worker": {threads}, '
        f'"scheduler": {scheduler}, {_TAIL}, "gpus": {gpus}, {_TLS_NONE}, "cluster": {{}}}}'
    )


def _from_file(tmp_path: Path, text: str, overrides: dict[str, Any] | None = None) -> str:
    path = tmp_path / "job.toml"
    path.write_text(text, encoding="utf-8")
    record = json.dumps(load_spec(path, overrides).to_dict())
    return record.replace(str(tmp_path.absolute()), "DIR")


@pytest.mark.parametrize(
    ("data", "overrides", "expected"),
    [
        (BASIC, None, _local("null", "null", "null", "0")),
        (BASIC, {"workers": 3, "threads_per_worker": 2}, _local("3", "2", "null", "0")),
        (BASIC, {"gpus": 2}, _local("null", "null", "null", "2")),
        (BASIC, {"scheduler": "tcp://h:8786"}, _local("null", "null", '"tcp://h:8786"', "0")),
        (
            {**BASIC, "cluster": {"profile": "address", "address": "tls://h:1"}},
            None,
            _local("null", "null", '"tls://h:1"', "0"),
        ),
        (
            {**BASIC, "cluster": {"workers": 4, "profile": "local"}},
            {"threads_per_worker": 3},
            _local("4", "3", "null", "0"),
        ),
        (
            {**BASIC, "workers": 2, "cluster": {"profile": "slurm"}},
            {"cluster": "local"},
            _local("2", "null", "null", "0"),
        ),
    ],
)
def test_recorded_spec_of_local_and_address_jobs(
    data: dict[str, Any], overrides: dict[str, Any] | None, expected: str
) -> None:
    spec = build_spec(data, overrides)
    assert json.dumps(spec.to_dict()) == expected
    assert build_spec(spec.to_dict()) == spec


def test_recorded_spec_of_a_file_with_local_table(tmp_path: Path) -> None:
    assert _from_file(tmp_path, LOCAL_TOML) == (
        '{"input": "DIR/imgs", "method": "skimage.otsu", "output": "DIR/out.zarr", '
        '"params": {}, "workers": 2, "threads_per_worker": 2, "scheduler": null, '
        '"shard_size": null, "overwrite": false, "retry_failed": true, "max_pixels": 268435456, '
        '"io_threads": 2, "tile_threshold": 0, "tile_size": 2048, "gpus": 1, '
        f'{_TLS_NONE}, "cluster": {{}}}}'
    )


_SLURM_RECORD = (
    '{"input": "DIR/imgs", "method": "skimage.slic", "output": "DIR/out.zarr", '
    '"params": {"n_segments": 50}, "workers": null, "threads_per_worker": null, '
    '"scheduler": null, "shard_size": 16, "overwrite": false, "retry_failed": true, '
    '"max_pixels": 268435456, "io_threads": 4, "tile_threshold": 67108864, "tile_size": 2048, '
    f'"gpus": 0, {_TLS_NONE}, "cluster": {{"queue": "gpu", "profile": "PROFILE", '
    '"walltime": "02:00:00", "cores": 8, "memory": "32GB", "processes": 1, '
    '"job_extra_directives": ["--constraint=a100"], "log_directory": "DIR/logs"}}'
)


def test_recorded_spec_of_batch_profiles(tmp_path: Path) -> None:
    slurm = _SLURM_RECORD.replace("PROFILE", "slurm")
    assert _from_file(tmp_path, SLURM_TOML) == slurm
    # --cluster pbs keeps the table (its keys fit) and renames the profile in place
    assert _from_file(tmp_path, SLURM_TOML, {"cluster": "pbs"}) == slurm.replace('"slurm"', '"pbs"')
    record = json.loads(_from_file(tmp_path, SLURM_TOML))
    assert build_spec(record).to_dict() == record


def test_recorded_spec_of_kubernetes_profile(tmp_path: Path) -> None:
    assert _from_file(tmp_path, KUBE_TOML) == (
        '{"input": "s3://bucket/imgs", "method": "skimage.otsu", "output": '
        '"s3://bucket/out.zarr", "params": {}, "workers": null, "threads_per_worker": null, '
        f'"scheduler": null, {_TAIL}, "gpus": 0, {_TLS_NONE}, "cluster": '
        '{"profile": "kubernetes", "image": "ghcr.io/x/batchseg:1", "n_workers": 4, '
        '"resources": {"requests": {"cpu": 2, "memory": "8Gi"}}}}'
    )


def test_recorded_spec_with_tls(tmp_path: Path) -> None:
    spec = build_spec(
        BASIC,
        {"scheduler": "tls://h:1", "tls_ca_file": "ca", "tls_cert": "c", "tls_key": "k"},
    )
    assert json.dumps(spec.to_dict()).endswith(
        '"scheduler": "tls://h:1", ' + _TAIL + ', "gpus": 0, "tls_ca_file": "ca", '
        '"tls_cert": "c", "tls_key": "k", "cluster": {}}'
    )


def test_fingerprint_is_pinned() -> None:
    """Resume compares this digest: the same inputs, method, parameters and tiling give it."""
    refs = [ImageRef("a.png", "/data/a.png"), ImageRef("b/c.tif", "/data/b/c.tif", 10, 20)]
    otsu = get_method("skimage.otsu")
    slic = get_method("skimage.slic")
    assert fingerprint(refs, otsu, otsu.resolve_params({})) == (
        "c13dc05ab006ce950bee2fb7b47c3e8dbad52134e2b3758917cd994709f95342"
    )
    assert fingerprint(refs, slic, slic.resolve_params({"n_segments": 50}), (0, 2048)) == (
        "f34597c9cd8916e018eed94a9e45a12e27511d9adfff69bb995e7239a86edca8"
    )


def test_kubernetes_quantities_are_recorded_as_given_and_used_as_strings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``cpu = 2`` stays 2 in the record (as before) and reaches the pod spec as "2"."""
    import sys
    import types

    from batchseg.cluster.kubernetes import kubernetes_cluster_spec
    from batchseg.cluster.profiles import parse_profile

    seen: dict[str, Any] = {}

    def make_cluster_spec(**kw: Any) -> dict[str, Any]:
        seen.update(kw)
        return {"metadata": {"name": kw["name"]}}

    operator = types.ModuleType("dask_kubernetes.operator")
    operator.make_cluster_spec = make_cluster_spec  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dask_kubernetes", types.ModuleType("dask_kubernetes"))
    monkeypatch.setitem(sys.modules, "dask_kubernetes.operator", operator)
    table = {"profile": "kubernetes", "image": "i", "resources": {"limits": {"cpu": 2}}}
    profile = parse_profile(table)
    assert profile.table() == table  # type: ignore[union-attr]
    kubernetes_cluster_spec(profile)  # type: ignore[arg-type]
    assert seen["resources"] == {"limits": {"cpu": "2"}}


def test_profiles_built_in_code_record_their_settings() -> None:
    """A JobSpec made with a profile object (not parsed) records a table that reads back."""
    from batchseg.cluster.profiles import JobqueueProfile, KubernetesProfile
    from batchseg.job.spec import JobSpec

    pbs = JobqueueProfile(kind="pbs", walltime="01:00:00", cores=4, memory="8GB", jobs=2)
    k8s = KubernetesProfile(image="img:1", n_workers=3)
    for profile, table in (
        (pbs, {"profile": "pbs", "walltime": "01:00:00", "cores": 4, "memory": "8GB", "jobs": 2}),
        (k8s, {"profile": "kubernetes", "image": "img:1", "n_workers": 3}),
    ):
        spec = JobSpec(input="i", method="skimage.otsu", output="o.zarr", profile=profile)
        assert spec.to_dict()["cluster"] == table
        assert build_spec(spec.to_dict()) == spec
