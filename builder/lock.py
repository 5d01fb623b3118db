"""Advisory file locks (flock): who is writing a path right now, and waiting for them.

A lock is held by an open file description, so the kernel releases it when its holder dies,
however it dies: a lock that can be taken means its owner is gone. Work left behind by a dead
owner (a partial directory, a staging generation) is therefore stale exactly when its lock is
free. Transient lock files are unlinked by their holder before release; whoever then takes the
old inode notices it is no longer linked at the path and starts over, so removing a lock file
never lets two processes hold "the same" lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from builder.errors import StorageError

Notify = Callable[[str], None]
LOCK_MODE = 0o600


@dataclass(frozen=True)
class HeldLock:
    """A lock this process holds on `path` through the descriptor `fd`."""

    path: Path
    fd: int
    transient: bool

    def release(self) -> None:
        """Let go; a transient lock file is unlinked first, while it is still held."""
        try:
            if self.transient:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
        finally:
            os.close(self.fd)


def try_lock(path: Path, *, transient: bool = False) -> HeldLock | None:
    """The lock on `path` if nobody holds it, else None (never waits)."""
    return _acquire(path, wait=False, transient=transient)


def acquire_lock(path: Path, *, transient: bool = False, notify: Notify | None = None,
                 what: str = "") -> HeldLock:
    """The lock on `path`, waiting for its holder; `notify` hears why we wait (once)."""
    held = _acquire(path, wait=False, transient=transient)
    if held is not None:
        return held
    if notify is not None:
        notify(f"waiting for {_holder_text(path)} to finish {what or path}")
    held = _acquire(path, wait=True, transient=transient)
    assert held is not None  # a blocking acquire returns a lock or raises
    return held


@contextlib.contextmanager
def locked(path: Path, *, transient: bool = False, notify: Notify | None = None,
           what: str = "") -> Iterator[HeldLock]:
    """Hold the lock on `path` for the block."""
    held = acquire_lock(path, transient=transient, notify=notify, what=what)
    try:
        yield held
    finally:
        held.release()


def is_held_elsewhere(path: Path) -> bool:
    """Whether some process holds the lock on `path` right now (never creates the file)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StorageError(f"cannot open the lock file {path}: {exc.strerror}") from exc
    try:
        return not _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def wait_until_free(path: Path, *, notify: Notify | None = None, what: str = "") -> None:
    """Block while another process holds the lock on a transient lock file `path` (not when
    this process holds it: it would wait for itself)."""
    if not is_held_elsewhere(path) or holder_pid(path) == os.getpid():
        return
    acquire_lock(path, transient=True, notify=notify, what=what).release()


def holder_pid(path: Path) -> int | None:
    """The pid the current holder wrote into the lock file (informational: it may be gone)."""
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _holder_text(path: Path) -> str:
    pid = holder_pid(path)
    return f"process {pid}" if pid is not None else "another process"


def _acquire(path: Path, *, wait: bool, transient: bool) -> HeldLock | None:
    flags = os.O_RDWR | os.O_CLOEXEC | os.O_CREAT
    operation = fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB)
    while True:
        try:
            fd = os.open(path, flags, LOCK_MODE)
        except OSError as exc:
            raise StorageError(f"cannot open the lock file {path}: {exc.strerror}") from exc
        if not _flock(fd, operation):
            os.close(fd)
            return None
        if _still_linked(fd, path):
            _record_holder(fd)
            return HeldLock(path, fd, transient)
        os.close(fd)  # its holder unlinked it before letting go: take the new one


def _flock(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise StorageError(f"cannot lock: {exc.strerror}") from exc
    return True


def _still_linked(fd: int, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


def _record_holder(fd: int) -> None:
    """Write our pid into the lock file, for the message of whoever waits for us."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
