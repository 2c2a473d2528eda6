"""The lock is keyed on the store's real path, and a launcher that loses it stops
(issue 17, items 6 and 7)."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from batchseg.errors import StoreError
from batchseg.store import lock as lock_mod
from batchseg.store.lock import StoreLock, lock_key, lock_path


def _steal(path: str) -> None:
    """What another launcher that broke our lock leaves: its own lock file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump({"host": "elsewhere", "pid": 1, "token": "thief", "started": time.time()}, fh)
    os.replace(tmp, path)


def test_a_symlink_alias_takes_the_same_lock(tmp_path):
    real = tmp_path / "data" / "out.zarr"
    real.parent.mkdir()
    os.symlink(tmp_path / "data", tmp_path / "alias")
    alias = tmp_path / "alias" / "out.zarr"
    assert lock_path(str(alias)) == lock_path(str(real)) == str(real) + ".lock"
    with StoreLock(str(real)), pytest.raises(StoreError, match="in use by another launcher"):
        StoreLock(str(alias)).acquire()
    # and a symlink to the store itself (dangling until the store exists)
    os.symlink(real, tmp_path / "link.zarr")
    with StoreLock(str(tmp_path / "link.zarr")), pytest.raises(StoreError, match="in use"):
        StoreLock(str(real)).acquire()


def test_store_dot_locks_beside_the_store_not_inside(tmp_path):
    store = tmp_path / "out.zarr"
    store.mkdir()
    for spelling in (f"{store}/.", f"{store}/", f"{store}/../out.zarr"):
        assert lock_path(spelling) == str(store) + ".lock", spelling
    with StoreLock(f"{store}/."), pytest.raises(StoreError, match="in use"):
        StoreLock(str(store)).acquire()
    assert os.listdir(store) == []  # nothing inside the store that --overwrite would wipe


def test_object_store_locks_are_keyed_on_the_normalised_url():
    assert lock_key("s3://bucket/a/./out.zarr/") == "s3://bucket/a/out.zarr"
    assert lock_key("S3://bucket//a/b/../out.zarr") == "s3://bucket/a/out.zarr"
    assert lock_path("gs://b/x.zarr/") == "gs://b/x.zarr.lock"


def test_the_root_cannot_be_locked():
    with pytest.raises(StoreError, match="filesystem root"):
        lock_path("/")


def test_check_raises_once_the_lock_is_taken_over(tmp_path):
    store = str(tmp_path / "out.zarr")
    held = StoreLock(store)
    held.acquire()
    held.check()  # still ours
    _steal(lock_path(store))
    with pytest.raises(StoreError, match="lost the lock .* rerun the same command to resume"):
        held.check()
    held.release()
    assert json.load(open(lock_path(store)))["token"] == "thief"  # never removes another's lock


def test_check_raises_once_the_lock_is_removed(tmp_path):
    store = str(tmp_path / "out.zarr")
    with StoreLock(store) as held:
        os.unlink(lock_path(store))
        with pytest.raises(StoreError, match="lost the lock"):
            held.check()


def test_heartbeat_notices_the_loss(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_mod, "HEARTBEAT_SECONDS", 0.05)
    store = str(tmp_path / "out.zarr")
    with StoreLock(store) as held:
        _steal(lock_path(store))
        assert held.lost.wait(5)
        with pytest.raises(StoreError, match="lost the lock"):
            held.check()


class _Thief(threading.Thread):
    """Steals the lock of ``store`` as soon as a launcher has taken it."""

    def __init__(self, store: str) -> None:
        super().__init__(daemon=True)
        self.path, self.stolen = lock_path(store), threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if json.load(open(self.path)).get("token") not in (None, "thief"):
                    _steal(self.path)
                    self.stolen.set()
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.005)


@pytest.mark.integration
def test_a_launcher_that_loses_its_lock_stops_and_the_store_resumes(
    collection, tmp_path, cluster_address
):
    from batchseg.cluster.profiles import AddressProfile
    from batchseg.job.run import run_job
    from batchseg.job.spec import JobSpec
    from tests.helpers.cli import run_cli
    from tests.helpers.stores import status_counts

    out = tmp_path / "out.zarr"
    spec = JobSpec(
        input=str(collection),
        method="skimage.otsu",
        output=str(out),
        shard_size=2,
        profile=AddressProfile(cluster_address),
    )
    seen: list[int] = []

    def steal_after_first_shard(done: int, failed: int, total: int) -> None:
        seen.append(done + failed)
        if len(seen) == 1:
            _steal(lock_path(str(out)))

    with pytest.raises(StoreError, match="lost the lock"):
        run_job(spec, on_progress=steal_after_first_shard)
    assert len(seen) == 1  # stopped at the next result: nothing more recorded by this launcher
    counts = status_counts(out)
    assert counts["done"] < 24 and counts["pending"] > 0
    os.unlink(lock_path(str(out)))  # the other launcher is gone
    again = run_job(spec)
    assert (again.done, again.failed, again.pending) == (24, 0, 0)

    # through the CLI: one line, exit 1, whenever during the run the lock goes
    other = tmp_path / "other.zarr"
    thief = _Thief(str(other))
    thief.start()
    args = ["run", collection, "-m", "skimage.otsu", "-o", other, "--shard-size", "2"]
    result = run_cli(*args, "--scheduler", cluster_address)
    thief.join(timeout=5)
    assert thief.stolen.is_set()
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "lost the lock" in errors[0]
    assert result.stderr.count("lost the lock") == 1  # the error line only, no log line too


def test_url_aliases_take_the_same_lock_and_a_stolen_url_lock_stops(monkeypatch):
    monkeypatch.setattr(lock_mod, "CHECK_SECONDS", 0.0)  # read the lock object on every check
    url = f"memory://locks-id-{os.getpid()}/a.zarr"
    with lock_mod.store_lock(url + "/") as held:
        assert isinstance(held, lock_mod.FsspecStoreLock) and held.active
        for alias in (f"memory://locks-id-{os.getpid()}/./a.zarr", url):
            with pytest.raises(StoreError, match="in use by another launcher"):
                lock_mod.store_lock(alias).acquire()
        held.check()
        thief = {"host": "elsewhere", "pid": 1, "token": "thief", "beat": time.time()}
        held.fs.pipe_file(held.path, json.dumps(thief).encode())
        with pytest.raises(StoreError, match="lost the lock"):
            held.check()
    assert json.loads(held.fs.cat_file(held.path))["token"] == "thief"  # left alone
    held.fs.rm(held.path)
