"""The job runner's Dask part (batchseg.engine.runner) on the session cluster: bounded
submission, results and errors per item, connecting through the cluster settings."""

from __future__ import annotations

import operator
from typing import Any

import pytest

from batchseg.cluster.profiles import AddressProfile
from batchseg.cluster.settings import ClusterSettings
from batchseg.engine.runner import connected, run_tasks, window_size
from tests.helpers.clusters import wait_for

pytestmark = pytest.mark.integration


def _tasks_named(client: Any, name: str) -> int:
    """Tasks of ``name`` (not its context) the client holds now (submitted, not released)."""
    return sum(1 for k in list(client.futures) if str(k).startswith(f"{name}-"))


def test_bounded_window_results_and_errors(cluster_address: str) -> None:
    settings = ClusterSettings(AddressProfile(cluster_address))
    with connected(settings) as handle:
        assert window_size(handle) >= 32
        items = [*range(1, 21), 0]  # 1 / 0 fails alone
        seen: dict[int, Any] = {}
        most = 0
        outcomes = run_tasks(
            handle.client, operator.truediv, 60, items, name="windowtest", key_of=str, window=3
        )
        for item, result in outcomes:
            most = max(most, _tasks_named(handle.client, "windowtest"))
            seen[item] = result
        # the window, and at most the finished task whose release is still on its way (all 21
        # would be there at once without the window)
        assert 3 <= most <= 4
        assert set(seen) == set(items)
        assert all(seen[i] == 60 / i for i in items if i)
        assert isinstance(seen[0], ZeroDivisionError)
        wait_for("released tasks", lambda: _tasks_named(handle.client, "windowtest") == 0, 10)


def test_leaving_early_cancels_what_is_not_done(cluster_address: str) -> None:
    settings = ClusterSettings(AddressProfile(cluster_address))
    with connected(settings) as handle:
        outcomes = run_tasks(
            handle.client, operator.add, 1, list(range(50)), name="canceltest", key_of=str,
            window=4,
        )  # fmt: skip
        next(outcomes)
        outcomes.close()
        wait_for("cancelled tasks", lambda: _tasks_named(handle.client, "canceltest") == 0, 10)
