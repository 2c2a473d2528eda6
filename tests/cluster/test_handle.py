"""The dashboard link is printed only when the scheduler serves one (issue 27, item 20)."""

from __future__ import annotations

import pytest
from distributed import Client

from batchseg.cluster.handle import ClusterHandle
from tests.helpers.clusters import dask_processes_cluster

pytestmark = pytest.mark.integration


def test_no_dashboard_link_for_a_scheduler_without_one():
    with dask_processes_cluster(0, nanny=False, dashboard=False) as address:
        with Client(address, timeout="10s", set_as_default=False) as client:
            assert ClusterHandle(client, None).dashboard is None


def test_the_link_names_the_schedulers_own_port(cluster_address):
    with Client(cluster_address, timeout="10s", set_as_default=False) as client:
        port = client.scheduler_info(n_workers=0)["services"]["dashboard"]
        link = ClusterHandle(client, None).dashboard
    assert link is not None and f":{port}/" in link
