"""Tests for batchseg.job.spec: TOML job specs, flag overrides and validation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from batchseg.cluster.profiles import LocalProfile
from batchseg.errors import UsageError
from batchseg.io.read import DEFAULT_MAX_PIXELS
from batchseg.job.spec import JobSpec, build_spec, load_spec, parse_param

BASIC = {"input": "imgs", "method": "skimage.otsu", "output": "out.zarr"}


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_load_spec_with_params_and_relative_paths(tmp_path: Path) -> None:
    spec_file = _write(
        tmp_path / "jobs" / "job.toml",
        'input = "../images"\n'
        'method = "skimage.slic"\n'
        'output = "results/out.zarr"\n'
        "workers = 3\n"
        "shard_size = 16\n"
        "overwrite = true\n"
        "\n"
        "[params]\n"
        "n_segments = 100\n"
        "compactness = 0.5\n",
    )
    spec = load_spec(spec_file)
    folder = (tmp_path / "jobs").absolute()
    assert spec.input == str(tmp_path.absolute() / "images")  # normalised: no "jobs/.."
    assert spec.output == str(folder / "results/out.zarr")
    assert os.path.isabs(spec.input) and os.path.isabs(spec.output)
    assert spec.method == "skimage.slic"
    assert spec.params == {"n_segments": 100, "compactness": 0.5}
    assert spec.profile == LocalProfile(workers=3)
    assert spec.shard_size == 16 and spec.overwrite is True
    # untouched fields keep their defaults
    assert spec.retry_failed is True
    assert spec.max_pixels == DEFAULT_MAX_PIXELS
    assert spec.io_threads == 4


def test_load_spec_relative_to_spec_not_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "a" / "job.toml", 'input = "in"\nmethod = "m"\noutput = "o.zarr"\n')
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "b")
    spec = load_spec("../a/job.toml")
    assert Path(spec.input) == (tmp_path / "a" / "in").absolute()
    assert os.path.samefile(Path(spec.input).parent, tmp_path / "a")


def test_load_spec_keeps_absolute_paths_and_urls(tmp_path: Path) -> None:
    absolute = str((tmp_path / "abs" / "imgs").absolute())
    spec_file = _write(
        tmp_path / "job.toml",
        f'input = "{absolute}"\nmethod = "m"\noutput = "s3://bucket/out.zarr"\n',
    )
    spec = load_spec(spec_file)
    assert spec.input == absolute
    assert spec.output == "s3://bucket/out.zarr"


def test_overrides_win_over_file(tmp_path: Path) -> None:
    spec_file = _write(
        tmp_path / "job.toml",
        'input = "imgs"\nmethod = "skimage.otsu"\noutput = "o.zarr"\n'
        "workers = 2\noverwrite = true\nretry_failed = true\n"
        "[params]\na = 1\nb = 2\n",
    )
    spec = load_spec(
        spec_file,
        {
            "method": "skimage.slic",
            "workers": 8,
            "overwrite": False,
            "retry_failed": None,  # None = flag not given: file value kept
            "shard_size": None,
            "params": {"b": "20", "c": "3"},
        },
    )
    assert spec.method == "skimage.slic"
    assert spec.profile == LocalProfile(workers=8)
    assert spec.overwrite is False
    assert spec.retry_failed is True
    assert spec.shard_size is None  # neither flag nor file: default
    assert spec.params == {"a": 1, "b": "20", "c": "3"}


def test_override_paths_are_not_resolved_against_the_spec(tmp_path: Path) -> None:
    spec_file = _write(tmp_path / "j" / "job.toml", 'input = "x"\nmethod = "m"\noutput = "o"\n')
    spec = load_spec(spec_file, {"output": "flag_out.zarr"})
    assert spec.output == "flag_out.zarr"
    assert spec.input == str((tmp_path / "j").absolute() / "x")


def test_flags_only() -> None:
    spec = build_spec({"input": "imgs"}, {"method": "skimage.otsu", "output": "o.zarr"})
    assert spec == JobSpec(input="imgs", method="skimage.otsu", output="o.zarr")
    assert spec.params == {}


def test_params_merge_in_build_spec() -> None:
    spec = build_spec({**BASIC, "params": {"x": 1}}, {"params": {"y": 2}})
    assert spec.params == {"x": 1, "y": 2}
    spec = build_spec(BASIC, {"params": {"y": 2}})
    assert spec.params == {"y": 2}


def test_build_spec_does_not_mutate_inputs() -> None:
    data: dict[str, Any] = {**BASIC, "params": {"x": 1}}
    overrides = {"params": {"y": 2}}
    spec = build_spec(data, overrides)
    assert data["params"] == {"x": 1}
    assert overrides == {"params": {"y": 2}}
    spec.params["z"] = 3
    assert data["params"] == {"x": 1}


def test_unknown_key_in_file(tmp_path: Path) -> None:
    spec_file = _write(
        tmp_path / "job.toml", 'input = "i"\nmethod = "m"\noutput = "o"\nworker = 4\n'
    )
    with pytest.raises(UsageError, match="'worker'") as exc:
        load_spec(spec_file)
    assert "job.toml" in str(exc.value)


def test_unknown_key_in_overrides() -> None:
    with pytest.raises(UsageError, match="'colour'"):
        build_spec(BASIC, {"colour": "red"})


@pytest.mark.parametrize("missing", ["input", "method", "output"])
def test_missing_required(missing: str) -> None:
    data = {k: v for k, v in BASIC.items() if k != missing}
    with pytest.raises(UsageError, match=repr(missing)):
        build_spec(data)
    with pytest.raises(UsageError, match=repr(missing)):
        build_spec({**data, missing: ""})


def test_missing_required_in_file(tmp_path: Path) -> None:
    spec_file = _write(tmp_path / "job.toml", 'input = "i"\nmethod = "m"\n')
    with pytest.raises(UsageError, match="'output'"):
        load_spec(spec_file)
    assert load_spec(spec_file, {"output": "o.zarr"}).output == "o.zarr"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("workers", "4"),
        ("workers", 2.5),
        ("workers", True),
        ("workers", 0),
        ("shard_size", -1),
        ("threads_per_worker", "two"),
        ("max_pixels", 0),
        ("io_threads", 1.0),
        ("overwrite", "yes"),
        ("overwrite", 1),
        ("retry_failed", "false"),
        ("params", [1, 2]),
        ("params", "n=3"),
        ("input", 5),
        ("method", ["a"]),
        ("output", 3.0),
        ("scheduler", 8786),
    ],
)
def test_bad_types(key: str, value: Any) -> None:
    with pytest.raises(UsageError, match=repr(key)):
        build_spec({**BASIC, key: value})


def test_bad_types_in_file(tmp_path: Path) -> None:
    spec_file = _write(
        tmp_path / "job.toml", 'input = "i"\nmethod = "m"\noutput = "o"\nworkers = "many"\n'
    )
    with pytest.raises(UsageError, match="'workers'"):
        load_spec(spec_file)
    spec_file = _write(
        tmp_path / "job2.toml", 'input = "i"\nmethod = "m"\noutput = "o"\nparams = 3\n'
    )
    with pytest.raises(UsageError, match="'params'"):
        load_spec(spec_file)
    # also when flags add parameters to a spec whose params are not a table
    with pytest.raises(UsageError, match="'params'"):
        load_spec(spec_file, {"params": {"a": "1"}})


def test_spec_file_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        load_spec(tmp_path / "missing.toml")
    bad = _write(tmp_path / "bad.toml", "input = \n")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_spec(bad)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b'input = "\xff\xfe"\n')
    with pytest.raises(UsageError, match="binary.toml"):
        load_spec(binary)
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    with pytest.raises(UsageError, match="folder.toml"):
        load_spec(folder)


def test_spec_round_trip() -> None:
    spec = build_spec({**BASIC, "params": {"k": 3}, "workers": 2})
    assert build_spec(spec.to_dict()) == spec
    other = spec.replace(profile=LocalProfile(workers=5))
    assert other.profile.workers == 5 and spec.profile == LocalProfile(workers=2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("k=3", ("k", "3")),
        ("  k = 3 ", ("k", "3")),
        ("expr=a=b", ("expr", "a=b")),
        ("k=", ("k", "")),
        ("name=hello world", ("name", "hello world")),
    ],
)
def test_parse_param(text: str, expected: tuple[str, str]) -> None:
    assert parse_param(text) == expected


@pytest.mark.parametrize("text", ["k", "", "=3", "  =3", "   "])
def test_parse_param_errors(text: str) -> None:
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_param(text)


def test_every_example_job_spec_in_jobs_loads():
    """The job specs shipped in jobs/ parse (keys, types, tiling settings)."""
    from pathlib import Path

    from batchseg.job.spec import load_spec

    folder = Path(__file__).resolve().parents[2] / "jobs"
    specs = sorted(folder.glob("*.toml"))
    assert len(specs) >= 4
    for path in specs:
        spec = load_spec(path)
        assert spec.method and spec.output
    giga = load_spec(folder / "gigapixel.toml")
    assert (giga.tile_threshold, giga.tile_size) == (1 << 26, 2048)


def test_one_cluster_representation() -> None:
    """Flat keys and [cluster] fold into one profile; local sizes with another profile are a
    conflict, except sizes from a spec file whose local cluster a flag replaced."""
    from batchseg.cluster.profiles import AddressProfile, JobqueueProfile

    spec = build_spec({**BASIC, "workers": 2, "threads_per_worker": 3, "gpus": 1})
    assert spec.profile == LocalProfile(workers=2, threads_per_worker=3, gpus=1)
    assert not hasattr(spec, "workers") and not hasattr(spec, "cluster")
    with pytest.raises(UsageError, match="'workers' .*local cluster only.*tcp://h:1 has its own"):
        build_spec({**BASIC, "scheduler": "tcp://h:1", "workers": 4})
    with pytest.raises(UsageError, match="'gpus' .*local cluster only"):
        build_spec(BASIC, {"scheduler": "tcp://h:1", "gpus": 1})
    # a spec written for the local cluster, run on an existing scheduler
    attached = build_spec({**BASIC, "workers": 2}, {"scheduler": "tcp://h:1"})
    assert attached.profile == AddressProfile("tcp://h:1")
    assert attached.to_dict()["workers"] is None
    slurm = {"profile": "slurm", "walltime": "01:00:00", "cores": 2, "memory": "1GB"}
    with pytest.raises(UsageError, match="local cluster only"):
        build_spec({**BASIC, "workers": 2, "cluster": slurm}, {"cluster": "pbs"})
    pbs = build_spec({**BASIC, "workers": 2}, {"cluster": {**slurm, "profile": "pbs"}})
    assert isinstance(pbs.profile, JobqueueProfile) and pbs.profile.kind == "pbs"


def test_spec_and_profiles_import_no_dask() -> None:
    """The CLI parses specs and profiles without importing Dask (batchseg.cluster's rule)."""
    import subprocess
    import sys

    code = (
        "import sys, batchseg.cluster, batchseg.cluster.profiles, batchseg.job.spec\n"
        "assert not {'dask', 'distributed'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_every_path_of_a_spec_is_taken_from_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 27 item 17: [params] paths too, and weights/model/classes at the top level."""
    jobs = tmp_path / "jobs"
    (jobs / "models").mkdir(parents=True)
    (jobs / "models" / "net.pt").write_bytes(b"")
    (jobs / "classes.txt").write_text("a\nb\n")
    monkeypatch.chdir(tmp_path)
    nested = load_spec(
        _write(
            jobs / "nested.toml",
            'input = "in"\nmethod = "m"\noutput = "o.zarr"\n'
            '[params]\nweights = "models/net.pt"\nclasses = "classes.txt"\nmodel = "m.ts"\n',
        )
    )
    top = load_spec(
        _write(
            jobs / "top.toml",
            'input = "in"\nmethod = "m"\noutput = "o.zarr"\n'
            'weights = "models/net.pt"\nclasses = "classes.txt"\nmodel = "m.ts"\n',
        )
    )
    folder = jobs.absolute()
    want = {
        "weights": str(folder / "models" / "net.pt"),
        "classes": str(folder / "classes.txt"),
        "model": str(folder / "m.ts"),
    }
    assert nested.params == top.params == want
    named = load_spec(
        _write(
            jobs / "named.toml", 'input = "in"\nmethod = "m"\noutput = "o"\nweights = "DEFAULT"\n'
        )
    )
    assert named.params == {"weights": "DEFAULT"}  # a torchvision weights name, not a path
    with pytest.raises(UsageError, match="known: .*pre.*weights"):
        load_spec(
            _write(jobs / "bad.toml", 'input = "in"\nmethod = "m"\noutput = "o"\nwieghts = 1\n')
        )
    with pytest.raises(UsageError, match="both at the top level and in \\[params\\]"):
        load_spec(
            _write(
                jobs / "twice.toml",
                'input = "i"\nmethod = "m"\noutput = "o"\nmodel = "a"\n[params]\nmodel = "b"\n',
            )
        )


def test_stack_keys_from_toml_are_checked_and_recorded(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text(
        'input = "in"\nmethod = "skimage.otsu"\noutput = "o.zarr"\n'
        'planes = "zt"\nchannels = [2, 1, 0]\naxes = "TZCYX"\nmeasure_channels = "none"\n'
    )
    spec = load_spec(path)
    assert spec.view.channels == (2, 1, 0) and spec.view.planes == "zt"
    recorded = spec.to_dict()
    assert {k: recorded[k] for k in ("planes", "channels", "axes", "measure_channels")} == {
        "planes": "zt",
        "channels": "2,1,0",
        "axes": "tzcyx",
        "measure_channels": "none",
    }
    assert "planes" not in JobSpec(input="i", method="m", output="o").to_dict()  # old stores
    path.write_text('input = "in"\nmethod = "skimage.otsu"\noutput = "o.zarr"\nplanes = "q"\n')
    with pytest.raises(UsageError, match="--planes must be one of z, t, zt"):
        load_spec(path)
