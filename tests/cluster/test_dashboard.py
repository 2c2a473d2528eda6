"""Issue 17 item 13: the embedded cluster's dashboard listened on every interface
(``0.0.0.0:8787``) while its scheduler listened on loopback: anyone on the network could read
the task stream, worker logs and file names. Now everything the embedded cluster opens listens
on 127.0.0.1, unless a dashboard address is asked for. Issue 18 item 5: with port 8787 taken,
a free port is chosen quietly (no "Port 8787 is already in use" warning).
"""

from __future__ import annotations

import contextlib
import socket
import warnings
from collections.abc import Iterator

import psutil
import pytest

from batchseg.cluster.connect import connect
from batchseg.cluster.handle import ClusterHandle
from batchseg.cluster.local import DASHBOARD_PORT, LOOPBACK, choose_dashboard, port_free
from batchseg.cluster.profiles import LocalProfile, parse_profile
from batchseg.errors import UsageError
from batchseg.job.spec import build_spec

pytestmark = pytest.mark.integration


def _listening() -> set[tuple[str, int]]:
    """(host, port) of every listening TCP socket of this process and its children."""
    me = psutil.Process()
    found = set()
    for proc in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.add((conn.laddr.ip, conn.laddr.port))
    return found


def _outside_addresses() -> list[str]:
    """IPv4 addresses of this machine other than loopback (none in some sandboxes)."""
    return [
        a.address
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family == socket.AF_INET and not a.address.startswith("127.")
    ]


def _refused(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        return s.connect_ex((host, port)) != 0


@contextlib.contextmanager
def _started(profile: LocalProfile, **kw: str) -> Iterator[tuple[ClusterHandle, set]]:
    before = _listening()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        handle = connect(profile, **kw)
    try:
        assert not [w for w in caught if "already in use" in str(w.message)], caught
        yield handle, _listening() - before
    finally:
        handle.close()


def _dashboard(handle: ClusterHandle) -> tuple[str, int]:
    server = handle.cluster.scheduler.http_server
    return server.address, server.port


@pytest.fixture
def port_8787_taken() -> Iterator[None]:
    """Something else listens on 8787 (on every interface) during the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        try:
            other.bind(("0.0.0.0", DASHBOARD_PORT))
            other.listen()
        except OSError:
            pass  # taken already: by another program, which serves the test as well
        assert not port_free(LOOPBACK, DASHBOARD_PORT)
        yield


def test_embedded_cluster_listens_on_loopback_only() -> None:
    with _started(LocalProfile(workers=1)) as (handle, opened):
        host, port = _dashboard(handle)
        assert host == LOOPBACK
        assert handle.dashboard is not None and handle.dashboard.startswith(f"http://{LOOPBACK}:")
        assert (LOOPBACK, port) in opened
        # the scheduler, the worker, its nanny and every http server: loopback only
        assert opened and all(ip == LOOPBACK for ip, _ in opened), opened
        for address in _outside_addresses():
            assert _refused(address, port), f"dashboard reachable on {address}:{port}"
        assert not _refused(LOOPBACK, port)


def test_gpu_cluster_listens_on_loopback_only() -> None:
    """The per-GPU SpecCluster (no dask-cuda here) binds its scheduler and workers too."""
    with _started(LocalProfile(gpus=1)) as (handle, opened):
        host, port = _dashboard(handle)
        assert host == LOOPBACK and (LOOPBACK, port) in opened
        assert all(ip == LOOPBACK for ip, _ in opened), opened
        assert handle.client.scheduler.address.startswith(f"tcp://{LOOPBACK}:")


@pytest.mark.usefixtures("port_8787_taken")
def test_taken_dashboard_port_is_replaced_quietly() -> None:
    with _started(LocalProfile(workers=1)) as (handle, _):
        host, port = _dashboard(handle)
        assert (host, port != DASHBOARD_PORT) == (LOOPBACK, True)
        assert not _refused(LOOPBACK, port)


def test_dashboard_address_when_asked() -> None:
    """``dashboard_address`` in a local [cluster] table binds where the user says."""
    spec = build_spec(
        {"input": "i", "method": "skimage.otsu", "output": "o.zarr"},
        {"cluster": {"profile": "local", "workers": 1, "dashboard_address": "0.0.0.0:0"}},
    )
    assert spec.profile == LocalProfile(workers=1, dashboard_address="0.0.0.0:0")
    assert build_spec(spec.to_dict()) == spec  # recorded in the store and read back
    with _started(spec.profile) as (handle, _):
        assert _dashboard(handle)[0] == "0.0.0.0"


def test_dashboard_address_choice() -> None:
    assert choose_dashboard(":0") == ":0"
    assert choose_dashboard().startswith(f"{LOOPBACK}:")
    for bad in ("everywhere", "host:99999", "1.2.3.4", ":", "a b:1"):
        with pytest.raises(UsageError, match="dashboard_address"):
            parse_profile({"dashboard_address": bad})
    for good in (":8787", "127.0.0.1:0", "[::1]:8787", "node-1.example:8787"):
        assert parse_profile({"dashboard_address": good}) == LocalProfile(dashboard_address=good)


@pytest.mark.usefixtures("port_8787_taken")
def test_taken_port_gives_a_free_one_on_every_interface_too() -> None:
    """jobqueue's scheduler (on the login node) keeps every interface but not a taken port."""
    assert choose_dashboard(host="") == ":0"
    assert choose_dashboard() == f"{LOOPBACK}:0"
