"""One launcher per store: an exclusive lock file beside the store, with stale-lock recovery.

The lock is ``STORE.lock`` (beside the store so ``--overwrite`` can replace the store). It holds
the owner's host, pid and a heartbeat the owner refreshes. A lock is stale when its owner is a
dead process on this host, or its heartbeat is older than ``stale_after`` seconds. Breaking a
stale lock happens under a second exclusive file ``STORE.lock.break``: the breaker checks that
the lock file is still the very one it judged stale (inode, mtime, size, token) before removing
it, so two launchers that judged the same lock stale cannot both break it and both win (the
second would otherwise delete the first one's fresh lock).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from types import TracebackType

from batchseg.errors import StoreError

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
STALE_AFTER_SECONDS = 120.0
BREAK_WAIT_SECONDS = 10.0  # how long acquire keeps retrying while stale locks are being broken
BREAK_STALE_SECONDS = 30.0  # a ".break" file older than this was left by a killed breaker


def lock_path(store: str) -> str:
    return store.rstrip("/") + ".lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StoreLock:
    """Context manager holding the store's lock file while a job runs."""

    def __init__(self, store: str, *, stale_after: float = STALE_AFTER_SECONDS) -> None:
        self.path = lock_path(store)
        self.store = store
        self.stale_after = stale_after
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _owner(self) -> dict[str, object]:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "token": self.token,
            "started": time.time(),
        }

    def acquire(self) -> None:
        """Take the lock or raise StoreError naming the holder."""
        deadline = time.monotonic() + BREAK_WAIT_SECONDS
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder, identity = self._read_with_identity()
                if identity is None:  # released meanwhile: try again
                    continue
                if self._is_stale(holder):
                    self._break(holder, identity)
                    if time.monotonic() > deadline:
                        raise StoreError(f"could not take the lock {self.path}") from None
                    continue
                raise StoreError(
                    f"{self.store} is in use by another launcher (pid {holder.get('pid')} on "
                    f"{holder.get('host')}); wait for it or remove {self.path} if it is gone"
                ) from None
            except OSError as exc:
                raise StoreError(f"cannot create lock {self.path}: {exc.strerror or exc}") from None
            with os.fdopen(fd, "w") as fh:
                json.dump(self._owner(), fh)
            self._thread = threading.Thread(target=self._beat, name="batchseg-lock", daemon=True)
            self._thread.start()
            return

    def _read(self) -> dict[str, object]:
        try:
            with open(self.path) as fh:
                return dict(json.load(fh))
        except (OSError, ValueError, TypeError):
            return {}

    def _read_with_identity(self) -> tuple[dict[str, object], tuple[object, ...] | None]:
        """The holder and an identity of the lock file (None when there is no lock file)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {}, None
        holder = self._read()
        return holder, (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size, holder.get("token"))

    def _is_stale(self, holder: dict[str, object]) -> bool:
        try:
            age = time.time() - os.stat(self.path).st_mtime
        except FileNotFoundError:
            return True
        pid = holder.get("pid")
        if holder.get("host") == socket.gethostname() and isinstance(pid, int):
            return not _pid_alive(pid)
        if not holder:  # half-written by a launcher killed while creating it
            return age > 5.0
        return age > self.stale_after

    def _break(self, holder: dict[str, object], identity: tuple[object, ...]) -> None:
        """Remove the lock file judged stale, if it is still that file (one breaker at a time)."""
        breaker = self.path + ".break"
        try:
            fd = os.open(breaker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            # another launcher is breaking it; one killed while doing so leaves this file behind
            try:
                if time.time() - os.stat(breaker).st_mtime > BREAK_STALE_SECONDS:
                    os.unlink(breaker)
            except FileNotFoundError:
                pass
            time.sleep(0.01)
            return
        except OSError as exc:
            raise StoreError(f"cannot break lock {self.path}: {exc.strerror or exc}") from None
        os.close(fd)
        try:
            now_holder, now_identity = self._read_with_identity()
            if now_identity != identity:
                return  # replaced (or removed) since we judged it: judge again
            os.unlink(self.path)
            log.warning(
                "removed a stale lock of pid %s on %s", holder.get("pid"), holder.get("host")
            )
        finally:
            try:
                os.unlink(breaker)
            except FileNotFoundError:
                pass

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            if self._read().get("token") != self.token:
                log.error("lost the lock %s (removed or taken over by another launcher)", self.path)
                return  # never refresh somebody else's lock
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._read().get("token") == self.token:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
