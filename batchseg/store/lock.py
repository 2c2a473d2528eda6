"""One launcher per store: an exclusive lock file beside the store, with stale-lock recovery.

The lock is ``STORE.lock`` (beside the store so ``--overwrite`` can replace the store), where
STORE is the store's resolved real path (a symlink alias or ``STORE/.`` takes the same lock; an
object store's lock is keyed on its normalised URL). A launcher that finds its lock removed or
taken over (:meth:`StoreLock.check`, also watched by the heartbeat) stops. It holds
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
import posixpath
import socket
import threading
import time
import uuid
from types import TracebackType
from typing import Self

from batchseg.errors import StoreError

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
STALE_AFTER_SECONDS = 120.0
BREAK_WAIT_SECONDS = 10.0  # how long acquire keeps retrying while stale locks are being broken
BREAK_STALE_SECONDS = 30.0  # a ".break" file older than this was left by a killed breaker
CHECK_SECONDS = 5.0  # object stores: how often check() reads the lock object


def lock_key(store: str) -> str:
    """What identifies a store for locking: the resolved real path of a local store (so a
    symlink alias or ``STORE/.`` is the same store), the normalised URL of an object store."""
    if store.startswith("file://"):
        store = store[len("file://") :] or "/"
    if "://" in store:
        scheme, rest = store.split("://", 1)
        bucket, _, key = rest.partition("/")
        key = posixpath.normpath("/" + key).lstrip("/") if key else ""
        return f"{scheme.lower()}://{bucket}" + (f"/{key}" if key else "")
    real = os.path.realpath(store)
    if real == os.path.realpath(os.sep):
        raise StoreError(f"{store} is the filesystem root; choose a folder below it")
    return real


def lock_path(store: str) -> str:
    """The lock file (or object) of ``store``: beside it, keyed by :func:`lock_key`."""
    return lock_key(store).rstrip("/") + ".lock"


def lost_lock_error(lock: str) -> StoreError:
    return StoreError(
        f"lost the lock {lock} (removed or taken over by another launcher): stopped submitting "
        "and writing; stored results are kept, rerun the same command to resume"
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _in_use(store: str, holder: dict[str, object], lock: str) -> StoreError:
    return StoreError(
        f"{store} is in use by another launcher (pid {holder.get('pid')} on "
        f"{holder.get('host')}); wait for it or remove {lock} if it is gone"
    )


class _HeldWhileInside:
    """``with lock:`` acquires on entry and releases on exit."""

    def acquire(self) -> None:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class StoreLock(_HeldWhileInside):
    """Context manager holding the store's lock file while a job runs."""

    def __init__(self, store: str, *, stale_after: float = STALE_AFTER_SECONDS) -> None:
        self.path = lock_path(store)
        self.store = store
        self.stale_after = stale_after
        self.token = uuid.uuid4().hex
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> None:
        """Raise StoreError if the lock was removed or taken over since :meth:`acquire`.

        The launcher calls this before each write it makes; the heartbeat also watches.
        """
        if self._thread is None:
            return
        if not self.lost.is_set():
            holder = self._read() if os.path.exists(self.path) else {"token": None}
            if holder and holder.get("token") != self.token:  # {}: unreadable, judge later
                log.debug("lost the lock %s (removed or taken over by another launcher)", self.path)
                self.lost.set()
        if self.lost.is_set():
            raise lost_lock_error(self.path)

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
                raise _in_use(self.store, holder, self.path) from None
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
                log.debug("lost the lock %s (removed or taken over by another launcher)", self.path)
                self.lost.set()  # the launcher stops at its next check()
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


class FsspecStoreLock(_HeldWhileInside):
    """The lock of a store at an fsspec URL: ``STORE.lock``, an object created exclusively.

    Taken with ``fs.open(path, "xb")`` (``If-None-Match: *`` on S3). A filesystem that refuses
    exclusive creation, or accepts it without enforcing it (checked by creating the lock a second
    time right after taking it: some S3-compatible servers ignore the condition), gets no lock: a
    warning is logged and the job runs unlocked. The holder rewrites the object with a new
    ``beat`` time every ``HEARTBEAT_SECONDS``; a lock whose beat is older than ``stale_after``,
    or whose owner is a dead process on this host, is broken under ``STORE.lock.break``, also
    created exclusively. Only the URL is ever logged, never storage options or credentials.
    """

    def __init__(self, store: str, *, stale_after: float = STALE_AFTER_SECONDS) -> None:
        import fsspec

        self.store = store
        self.url = lock_path(store)  # the normalised URL + ".lock"
        self.protocol = store.split("://", 1)[0]
        self.fs, path = fsspec.core.url_to_fs(self.url)
        self.path = str(path)
        self.stale_after = stale_after
        self.token = uuid.uuid4().hex
        self.active = False
        self.lost = threading.Event()
        self._checked = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> None:
        """Raise StoreError if the lock was removed or taken over (read at most every
        ``CHECK_SECONDS``; the heartbeat also watches). Nothing to check when unlocked."""
        if not self.active:
            return
        now = time.monotonic()
        if not self.lost.is_set() and now - self._checked >= CHECK_SECONDS:
            self._checked = now
            holder = self._read()
            if (holder and holder.get("token") != self.token) or (
                not holder and not self._exists()
            ):
                log.debug("lost the lock %s (removed or taken over by another launcher)", self.url)
                self.lost.set()
        if self.lost.is_set():
            raise lost_lock_error(self.url)

    def _payload(self) -> bytes:
        owner = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "token": self.token,
            "beat": time.time(),
        }
        return json.dumps(owner).encode()

    def _create(self, path: str, data: bytes) -> None:
        with self.fs.open(path, "xb") as fh:
            fh.write(data)

    def _unlocked(self, why: str) -> None:
        log.warning(
            "no launcher lock on %s stores: do not run two launchers on one store (%s)",
            self.protocol,
            why,
        )

    def acquire(self) -> None:
        """Take the lock, or raise StoreError naming the holder; unlocked where unsupported."""
        deadline = time.monotonic() + BREAK_WAIT_SECONDS
        while True:
            data = self._payload()
            try:
                self._create(self.path, data)
            except FileExistsError:
                holder = self._read()
                if not holder and not self._exists():
                    continue  # released meanwhile
                if self._is_stale(holder):
                    self._break(holder)
                    if time.monotonic() > deadline:
                        raise StoreError(f"could not take the lock {self.url}") from None
                    continue
                raise _in_use(self.store, holder, self.url) from None
            except (NotImplementedError, ValueError, TypeError) as exc:
                self._unlocked(f"exclusive create not supported: {type(exc).__name__}")
                return
            except OSError as exc:
                raise StoreError(f"cannot create lock {self.url}: {exc.strerror or exc}") from None
            break
        try:  # the same bytes again: harmless if the condition is not enforced
            self._create(self.path, data)
        except FileExistsError:
            pass
        except Exception as exc:  # noqa: BLE001 - cannot tell: run unlocked, and say so
            self._remove_own()
            self._unlocked(f"exclusive create could not be checked: {type(exc).__name__}")
            return
        else:
            self._remove_own()
            self._unlocked("the server does not enforce exclusive create")
            return
        self.active = True
        self._thread = threading.Thread(target=self._beat, name="batchseg-lock", daemon=True)
        self._thread.start()

    def _exists(self) -> bool:
        try:
            self.fs.invalidate_cache(self.path)
            return bool(self.fs.exists(self.path))
        except OSError:
            return False

    def _read(self, path: str | None = None) -> dict[str, object]:
        try:
            return dict(json.loads(self.fs.cat_file(path or self.path)))
        except (OSError, ValueError, TypeError):
            return {}

    def _age(self, holder: dict[str, object]) -> float:
        beat = holder.get("beat")
        if isinstance(beat, int | float):
            return time.time() - float(beat)
        try:
            return time.time() - self.fs.modified(self.path).timestamp()
        except Exception:  # noqa: BLE001 - no modification time: judge it old
            return float("inf")

    def _is_stale(self, holder: dict[str, object]) -> bool:
        pid = holder.get("pid")
        if holder.get("host") == socket.gethostname() and isinstance(pid, int):
            return not _pid_alive(pid)
        if not holder:  # unreadable: stale once it is not being written any more
            return self._age(holder) > 5.0
        return self._age(holder) > self.stale_after

    def _break(self, holder: dict[str, object]) -> None:
        """Remove the lock judged stale if it is still that lock (one breaker at a time)."""
        breaker = self.path + ".break"
        try:
            self._create(breaker, self._payload())
        except FileExistsError:
            if self._age(self._read(breaker)) > BREAK_STALE_SECONDS:  # left by a killed breaker
                self._rm(breaker)
            time.sleep(0.05)
            return
        except OSError as exc:
            raise StoreError(f"cannot break lock {self.url}: {exc.strerror or exc}") from None
        try:
            now = self._read()
            if (now.get("token"), now.get("beat")) != (holder.get("token"), holder.get("beat")):
                return  # replaced (or refreshed) since we judged it: judge again
            self._rm(self.path)
            log.warning(
                "removed a stale lock of pid %s on %s", holder.get("pid"), holder.get("host")
            )
        finally:
            self._rm(breaker)

    def _rm(self, path: str) -> None:
        try:
            self.fs.rm(path)
        except FileNotFoundError:
            pass

    def _remove_own(self) -> None:
        if self._read().get("token") == self.token:
            self._rm(self.path)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            if self._read().get("token") != self.token:
                log.debug("lost the lock %s (removed or taken over by another launcher)", self.url)
                self.lost.set()  # the launcher stops at its next check()
                return  # never refresh somebody else's lock
            try:
                self.fs.pipe_file(self.path, self._payload())
            except Exception:  # noqa: BLE001 - a failed beat only ages the lock
                continue

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.active:
            self._remove_own()
            self.active = False


def store_lock(store: str) -> StoreLock | FsspecStoreLock:
    """The launcher lock of ``store``: a lock file for local paths (and ``file://``), else an
    exclusively created object beside the store (see :class:`FsspecStoreLock`)."""
    if store.startswith("file://"):
        return StoreLock(store[len("file://") :] or "/")
    if "://" in store:
        return FsspecStoreLock(store)
    return StoreLock(store)


LauncherLock = StoreLock | FsspecStoreLock
