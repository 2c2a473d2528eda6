"""The kubernetes profile: a DaskCluster created through the Dask Kubernetes operator."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from distributed import Client

from batchseg.cluster.handle import ClusterHandle
from batchseg.cluster.profiles import KubernetesProfile
from batchseg.errors import BatchsegError

log = logging.getLogger(__name__)


def kubernetes_cluster_spec(profile: KubernetesProfile, name: str = "batchseg") -> dict[str, Any]:
    """The DaskCluster resource dask-kubernetes would create for ``profile``."""
    try:
        from dask_kubernetes.operator import make_cluster_spec
    except ImportError:
        raise BatchsegError(
            "cluster profile 'kubernetes' needs dask-kubernetes: install dask-kubernetes "
            "(pip install dask-kubernetes) and the Dask Kubernetes operator in the cluster"
        ) from None
    spec: dict[str, Any] = make_cluster_spec(
        name=name,
        image=profile.image,
        n_workers=profile.n_workers,
        resources={
            section: {name: str(q) for name, q in quantities.items()}
            for section, quantities in profile.resources.items()
        }
        or None,
    )
    if profile.namespace:
        spec.setdefault("metadata", {})["namespace"] = profile.namespace
    return spec


def kubernetes_connect(profile: KubernetesProfile) -> ClusterHandle:
    """Create a DaskCluster through the Dask Kubernetes operator; deleted with the handle."""
    spec = kubernetes_cluster_spec(profile, name=f"batchseg-{uuid.uuid4().hex[:8]}")
    from dask_kubernetes.operator import KubeCluster

    options: dict[str, Any] = {"custom_cluster_spec": spec}
    if profile.namespace:
        options["namespace"] = profile.namespace
    cluster = KubeCluster(**options)
    try:
        client = Client(cluster)
    except BaseException:
        cluster.close()
        raise
    log.info(
        "started kubernetes cluster %s: %d workers", spec["metadata"]["name"], profile.n_workers
    )
    return ClusterHandle(client, cluster, expected_threads=profile.n_workers, local=False)
