"""One launcher per store: the lock file, stale-lock recovery and the CLI refusal."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from batchseg.cli import app
from batchseg.errors import StoreError
from batchseg.store import lock as lock_mod
from batchseg.store.lock import StoreLock, lock_path


def _write_holder(path: str, **holder: object) -> None:
    with open(path, "w") as fh:
        json.dump(holder, fh)


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


def test_second_launcher_is_refused_with_a_clear_message(collection, tmp_path):
    out = tmp_path / "out.zarr"
    with StoreLock(str(out)):
        result = CliRunner().invoke(
            app, ["run", str(collection), "-m", "skimage.otsu", "-o", str(out), "--workers", "1"]
        )
        assert result.exit_code == 1, result.output
        lines = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(lines) == 1
        assert "in use by another launcher" in lines[0]
        assert f"pid {os.getpid()}" in lines[0] and socket.gethostname() in lines[0]
        assert not out.exists()  # refused before anything was written
    assert not os.path.exists(lock_path(str(out)))  # released on exit


def test_lock_of_a_killed_process_is_stale_and_broken(tmp_path, caplog):
    store = str(tmp_path / "out.zarr")
    # a real launcher-like process takes the lock and is SIGKILLed while holding it
    code = (
        "import os, signal, sys\n"
        "from batchseg.store.lock import StoreLock\n"
        f"StoreLock({store!r}).acquire()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    assert proc.wait(timeout=60) == -signal.SIGKILL
    holder = json.loads(Path(lock_path(store)).read_text())
    assert (holder["pid"], holder["host"]) == (proc.pid, socket.gethostname())
    with caplog.at_level("WARNING", logger="batchseg.store.lock"), StoreLock(store) as held:
        assert json.loads(Path(held.path).read_text())["token"] == held.token
    assert "stale lock" in caplog.text
    assert not os.path.exists(lock_path(store))


def test_lock_from_another_host(tmp_path):
    store = str(tmp_path / "out.zarr")
    path = lock_path(store)
    # fresh heartbeat from another host: in use (its pid cannot be checked from here)
    _write_holder(path, host="some-other-host", pid=1, token="x", started=time.time())
    with pytest.raises(StoreError, match="in use by another launcher .*some-other-host"):
        StoreLock(store, stale_after=60).acquire()
    # heartbeat older than stale_after: stale, broken
    old = time.time() - 3600
    os.utime(path, (old, old))
    with StoreLock(store, stale_after=60) as held:
        assert json.loads(Path(path).read_text())["token"] == held.token


def test_live_local_holder_is_never_stale_and_half_written_lock_ages_out(tmp_path):
    store = str(tmp_path / "out.zarr")
    path = lock_path(store)
    _write_holder(path, host=socket.gethostname(), pid=os.getpid(), token="me")
    old = time.time() - 3600
    os.utime(path, (old, old))  # even with an old heartbeat: the pid is alive here
    with pytest.raises(StoreError, match="in use"):
        StoreLock(store, stale_after=1).acquire()
    # a lock file left empty by a launcher killed while creating it
    Path(path).write_text("")
    with pytest.raises(StoreError, match="in use"):
        StoreLock(store).acquire()  # could still be being written: not yet stale
    os.utime(path, (old, old))
    StoreLock(store).acquire()


def test_holder_heartbeat_refreshes_mtime(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_mod, "HEARTBEAT_SECONDS", 0.05)
    store = str(tmp_path / "out.zarr")
    with StoreLock(store) as held:
        old = time.time() - 3600
        os.utime(held.path, (old, old))
        deadline = time.monotonic() + 10
        while os.stat(held.path).st_mtime < old + 1800:
            assert time.monotonic() < deadline, "heartbeat did not refresh the lock"
            time.sleep(0.02)
        # another launcher with a short stale_after sees a live lock
        with pytest.raises(StoreError, match="in use"):
            StoreLock(store, stale_after=1).acquire()


def test_two_breakers_of_one_stale_lock_do_not_both_win(tmp_path):
    """Deterministic interleaving: B judges the lock stale, A breaks it and takes it, then B
    goes on to break "the stale lock" -- which is now A's live lock."""
    store = str(tmp_path / "out.zarr")
    path = lock_path(store)
    _write_holder(path, host=socket.gethostname(), pid=_dead_pid(), token="dead")
    a, b = StoreLock(store), StoreLock(store)
    real_is_stale = b._is_stale
    calls = []

    def is_stale_then_a_wins(*args, **kwargs):
        verdict = real_is_stale(*args, **kwargs)
        if not calls:
            calls.append(verdict)
            a.acquire()  # A breaks the same stale lock first and now holds the store
        return verdict

    b._is_stale = is_stale_then_a_wins  # type: ignore[method-assign]
    try:
        with pytest.raises(StoreError, match="in use"):
            b.acquire()
        assert calls == [True]
        assert json.loads(Path(path).read_text())["token"] == a.token  # A's lock survived
    finally:
        a.release()
        b.release()
    assert not os.path.exists(path)


def _contend(store: str, barrier, results) -> None:  # runs in a child process
    held = StoreLock(store)
    barrier.wait()
    try:
        held.acquire()
    except StoreError:
        results.put("refused")
        return
    results.put("won")
    time.sleep(1.0)  # hold it while the others try (a winner releases on exit)
    held.release()


@pytest.mark.parametrize("round_", range(3))
def test_many_concurrent_breakers_one_winner(tmp_path, round_):
    store = str(tmp_path / "out.zarr")
    _write_holder(lock_path(store), host=socket.gethostname(), pid=_dead_pid(), token="dead")
    ctx = multiprocessing.get_context("fork")
    n = 6
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(store, barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert sorted(outcomes) == ["refused"] * (n - 1) + ["won"]
    assert not any(name.endswith(".break") for name in os.listdir(tmp_path))


def test_lock_in_unwritable_place_is_a_store_error(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    with pytest.raises(StoreError, match="cannot create lock"):
        StoreLock(str(blocker / "out.zarr")).acquire()


# ----------------------------------------------------------------- stores at fsspec URLs


def test_url_lock_is_exclusive_and_released():
    url = f"memory://locks-{os.getpid()}/a.zarr"
    with lock_mod.store_lock(url) as held:
        assert isinstance(held, lock_mod.FsspecStoreLock) and held.active
        holder = json.loads(held.fs.cat_file(held.path))
        assert (holder["pid"], holder["token"]) == (os.getpid(), held.token)
        with pytest.raises(StoreError, match="in use by another launcher"):
            lock_mod.store_lock(url).acquire()
    assert not held.fs.exists(held.path)


def test_url_lock_of_a_dead_local_process_is_broken(caplog):
    url = f"memory://locks-{os.getpid()}/b.zarr"
    first = lock_mod.FsspecStoreLock(url)
    first.fs.pipe_file(
        first.path,
        json.dumps(
            {"host": socket.gethostname(), "pid": _dead_pid(), "token": "x", "beat": time.time()}
        ).encode(),
    )
    with caplog.at_level("WARNING", logger="batchseg.store.lock"), lock_mod.store_lock(url) as held:
        assert held.active
    assert "stale lock" in caplog.text


def test_url_lock_without_exclusive_create_warns_and_runs_unlocked(monkeypatch, caplog):
    url = f"memory://locks-{os.getpid()}/c.zarr"

    def ignores_exclusivity(self, path, data):  # an S3-compatible server ignoring If-None-Match
        with self.fs.open(path, "wb") as fh:
            fh.write(data)

    monkeypatch.setattr(lock_mod.FsspecStoreLock, "_create", ignores_exclusivity)
    with caplog.at_level("WARNING", logger="batchseg.store.lock"), lock_mod.store_lock(url) as held:
        assert not held.active
        assert not held.fs.exists(held.path)  # the probe's lock object was removed
    assert "no launcher lock on memory stores: do not run two launchers on one store" in caplog.text

    def refuses(self, path, data):
        raise NotImplementedError("File mode not supported")

    monkeypatch.setattr(lock_mod.FsspecStoreLock, "_create", refuses)
    caplog.clear()
    with caplog.at_level("WARNING", logger="batchseg.store.lock"), lock_mod.store_lock(url) as held:
        assert not held.active
    assert "no launcher lock on memory stores" in caplog.text


def test_file_url_uses_the_local_lock(tmp_path):
    with lock_mod.store_lock(f"file://{tmp_path}/d.zarr") as held:
        assert isinstance(held, StoreLock)
        assert os.path.exists(lock_path(str(tmp_path / "d.zarr")))
