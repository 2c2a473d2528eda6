"""Offline validation of the manifests in jobs/kubernetes/ with kubernetes-validate.

Core objects (the PersistentVolumeClaim) are validated against the Kubernetes OpenAPI schemas
that kubernetes-validate ships. It has no schema for the Dask operator's custom resources, so
their embedded pod specs are wrapped in a ``Pod`` and validated, and the custom resource
structure (apiVersion, kind, required keys) is checked here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
kv = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is not installed (dev extra)"
)

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "jobs" / "kubernetes").glob("*.yaml"))
K8S_VERSION = "1.30"
DASK_API = "kubernetes.dask.org/v1"
PVC = "batchseg-data"
UID = 10001


def _docs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((f"{path.name}:{doc.get('kind')}/{doc['metadata']['name']}", doc))
    return out


DOCS = _docs()
IDS = [name for name, _ in DOCS]


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in DOCS if doc["kind"] == kind]


def _validate_pod_spec(spec: dict[str, Any], name: str) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
    kv.validate(pod, K8S_VERSION, strict=True)


def _cluster_specs() -> list[tuple[str, dict[str, Any]]]:
    """(cluster name, DaskCluster spec) for every DaskCluster and every DaskJob's cluster."""
    specs = [(d["metadata"]["name"], d["spec"]) for d in _of_kind("DaskCluster")]
    specs += [(d["metadata"]["name"], d["spec"]["cluster"]["spec"]) for d in _of_kind("DaskJob")]
    return specs


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec["containers"]


def test_manifests_present() -> None:
    kinds = {doc["kind"] for _, doc in DOCS}
    assert {"PersistentVolumeClaim", "DaskCluster", "DaskJob"} <= kinds


def test_schemas_are_offline() -> None:
    # validation reads the schemas packaged with kubernetes-validate: no network involved
    assert kv.validate(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
        K8S_VERSION,
        strict=True,
    )
    with pytest.raises(kv.ValidationError):
        _validate_pod_spec({"containers": [{"name": "a", "image": "b", "bogus": 1}]}, "bad")


@pytest.mark.parametrize(("name", "doc"), DOCS, ids=IDS)
def test_manifest_validates(name: str, doc: dict[str, Any]) -> None:
    if doc["apiVersion"] != DASK_API:
        kv.validate(doc, K8S_VERSION, strict=True)
        return
    # no schema for the operator's custom resources: validate their pod specs as Pods
    with pytest.raises(kv.SchemaNotFoundError):
        kv.validate(doc, K8S_VERSION, strict=True)
    spec = doc["spec"]
    if doc["kind"] == "DaskJob":
        _validate_pod_spec(spec["job"]["spec"], f"{doc['metadata']['name']}-job")
        spec = spec["cluster"]["spec"]
    _validate_pod_spec(spec["scheduler"]["spec"], "scheduler")
    _validate_pod_spec(spec["worker"]["spec"], "worker")
    # the scheduler service spec is a core ServiceSpec
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "scheduler"},
        "spec": spec["scheduler"]["service"],
    }
    kv.validate(service, K8S_VERSION, strict=True)


def test_crd_structure() -> None:
    for doc in _of_kind("DaskCluster") + _of_kind("DaskJob"):
        assert doc["apiVersion"] == DASK_API
        assert set(doc) <= {"apiVersion", "kind", "metadata", "spec"}
        assert doc["metadata"]["name"]
    for doc in _of_kind("DaskJob"):
        assert {"job", "cluster"} <= set(doc["spec"])
        assert "spec" in doc["spec"]["job"] and "spec" in doc["spec"]["cluster"]
    for cluster_name, spec in _cluster_specs():
        assert {"scheduler", "worker"} <= set(spec)
        assert {"spec", "service"} <= set(spec["scheduler"])  # required by the CRD
        assert "spec" in spec["worker"]
        assert isinstance(spec["worker"].get("replicas", 1), int)
        selector = spec["scheduler"]["service"]["selector"]
        assert selector == {
            "dask.org/cluster-name": cluster_name,
            "dask.org/component": "scheduler",
        }
        ports = {p["port"] for p in spec["scheduler"]["service"]["ports"]}
        assert {8786, 8787} <= ports


def test_cluster_containers() -> None:
    for _, spec in _cluster_specs():
        (scheduler,) = _containers(spec["scheduler"]["spec"])
        (worker,) = _containers(spec["worker"]["spec"])
        # the image's entrypoint is batchseg: dask roles must override it
        assert scheduler["command"] == ["dask", "scheduler"]
        assert worker["command"] == ["dask", "worker"]
        assert scheduler["image"] == worker["image"]
        assert scheduler["image"].endswith("-cpu")
        args = worker["args"]
        assert args[args.index("--nthreads") + 1] == "1"
        res = worker["resources"]
        assert res["requests"]["cpu"] and res["limits"]["memory"]
        assert "/health" in str(scheduler["readinessProbe"])


def test_job_runs_batchseg_against_operator_scheduler() -> None:
    (job,) = _of_kind("DaskJob")
    (container,) = _containers(job["spec"]["job"]["spec"])
    cluster = job["spec"]["cluster"]["spec"]
    assert container["image"] == _containers(cluster["worker"]["spec"])[0]["image"]
    assert "command" not in container  # the image's entrypoint: batchseg
    args = container["args"]
    assert args[0] == "run"
    assert args[args.index("--scheduler") + 1] == "$(DASK_SCHEDULER_ADDRESS)"
    assert args[args.index("--output") + 1].startswith("/data/")
    assert args[1].startswith("/data/")


def _mounts_pvc(spec: dict[str, Any]) -> bool:
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in spec.get("volumes", [])
        if "persistentVolumeClaim" in v
    }
    return all(
        any(
            claims.get(m["name"]) == PVC and m["mountPath"] == "/data"
            for m in c.get("volumeMounts", [])
        )
        for c in spec["containers"]
    )


def test_pvc_shared_by_workers_and_job() -> None:
    (pvc,) = _of_kind("PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == PVC
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    for _, spec in _cluster_specs():
        assert _mounts_pvc(spec["worker"]["spec"])
    for job in _of_kind("DaskJob"):
        assert _mounts_pvc(job["spec"]["job"]["spec"])


def test_pods_run_as_image_user() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile.cpu").read_text()
    assert f"\nUSER {UID}:{UID}\n" in dockerfile
    specs = []
    for _, spec in _cluster_specs():
        specs += [spec["scheduler"]["spec"], spec["worker"]["spec"]]
    specs += [job["spec"]["job"]["spec"] for job in _of_kind("DaskJob")]
    for spec in specs:
        ctx = spec["securityContext"]
        assert ctx["runAsNonRoot"] is True
        assert ctx["runAsUser"] == UID and ctx["fsGroup"] == UID
        for c in spec["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
