"""Artifacts appear at their final path complete or not at all (temp + rename), and whatever a
killed writer left behind is recognised and removed by the next one.

A writer of `DIR/NAME` holds the transient lock `DIR/.NAME.lock` while its temp file or
directory `DIR/.NAME.partial-PID-XXXXXXXX` exists, so a partial whose lock is free belongs to a
dead writer: `sweep_stale_partials` removes it (and lock files nobody holds: `.NAME.lock` in a
directory we write is ours). Partials named the way earlier versions named
them (`.NAME.partial-PIDXXXXXXXX`, no lock) are removed once they are a day old.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from builder.errors import InputError, StorageError
from builder.lock import Notify, locked, try_lock

log = logging.getLogger(__name__)

PARTIAL_RE = re.compile(r"^\.(?P<final>.+)\.partial-(?P<pid>\d+)-[^/]*$")
LEGACY_PARTIAL_RE = re.compile(r"^\.(?P<final>.+)\.partial-\d+")
LOCK_RE = re.compile(r"^\.(?P<final>.+)\.lock$")
# Writers before the lock protocol left no sign of life: only an old partial is surely dead.
LEGACY_GRACE_S = 24 * 3600
AT_FDCWD = -100
RENAME_EXCHANGE = 2
MNT_DETACH = 2
DETACH_ROUNDS = 16


def lock_path(final: Path) -> Path:
    """The transient lock a writer of `final` holds."""
    return final.with_name(f".{final.name}.lock")


def partial_prefix(final: Path) -> str:
    """How this process names its temp files and directories for `final`."""
    return f".{final.name}.partial-{os.getpid()}-"


def write_atomic(final: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write `data` to `final` via a temp file in the same directory, created with `mode`."""
    with staged_file(final, mode=mode) as temp:
        fd = os.open(temp, os.O_WRONLY | os.O_TRUNC)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def create_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `mode` from the first byte, whatever the umask, and write `data`
    unflushed (for files inside a private directory that is flushed and renamed as a whole).
    StorageError if `path` exists or cannot be written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed the mode given to open()
        write_all(fd, data)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)


@contextlib.contextmanager
def staged_file(final: Path, *, mode: int = 0o644, notify: Notify | None = None) -> Iterator[Path]:
    """Yield an empty temp file beside `final` (already `mode`); rename it over `final` on success.

    The temp file is created with `mode` from the start, so a secret never sits in a file
    readable by others, not even briefly. Two writers of the same `final` take turns.
    """
    _make_parent(final)
    with locked(lock_path(final), transient=True, notify=notify, what=f"writing {final}"):
        try:
            fd, name = tempfile.mkstemp(prefix=partial_prefix(final), dir=final.parent)
        except OSError as exc:
            raise StorageError(f"cannot write in {final.parent}: {exc.strerror}") from exc
        temp = Path(name)
        try:
            os.fchmod(fd, mode)
            os.close(fd)
            yield temp
            temp.replace(final)
            # rename(2) does nothing when both names are links to the same file (a cached
            # file published again): the temp name would stay.
            temp.unlink(missing_ok=True)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise StorageError(f"cannot write {final}: {exc.strerror}") from exc
        except BaseException:
            temp.unlink(missing_ok=True)
            raise


@contextlib.contextmanager
def staged_dir(final: Path, *, replace: bool = True,
               notify: Notify | None = None) -> Iterator[Path]:
    """Yield an empty private (0700) temp directory beside `final`; put it in place on success.

    With `replace`, an existing `final` is exchanged for the new one in one step (where the
    filesystem can; else moved aside first) only once the new one is complete. Without it, an
    existing `final` wins and the new directory is dropped: for entries that are immutable once
    made, which someone may be reading.
    """
    with partial_dir(final, notify=notify) as temp:
        yield temp
        put_in_place(temp, final, replace=replace)


@contextlib.contextmanager
def partial_dir(final: Path, *, notify: Notify | None = None) -> Iterator[Path]:
    """An empty private (0700) partial directory beside `final`, made and held under `final`'s
    lock and removed when the block ends (a killed writer's is swept by its name)."""
    _make_parent(final)
    with (locked(lock_path(final), transient=True, notify=notify, what=f"writing {final}"),
          private_temp_dir(final.parent, partial_prefix(final)) as temp):
        yield temp


@contextlib.contextmanager
def private_temp_dir(parent: Path, prefix: str) -> Iterator[Path]:
    """A new private (0700) directory in `parent`, removed with what it holds when the block
    ends (unless the block renamed it away); StorageError when it cannot be made."""
    try:
        temp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    except OSError as exc:
        raise StorageError(f"cannot write in {parent}: {exc.strerror}") from exc
    try:
        yield temp
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def check_directory_target(path: Path, what: str) -> None:
    """InputError now, before any long work, when `path` can never be a directory to write in:
    something other than a directory is there or on the way to it, or its name cannot be used.
    (A directory that does not exist yet is fine: it is made when the results are published.)
    `what` names the option (`--out`)."""
    probe = path
    while True:
        try:
            if probe.is_dir():
                return
            if not os.path.lexists(probe):
                probe = probe.parent
                continue
        except OSError as exc:
            raise InputError(f"{what} {path}: {exc.strerror}") from None
        where = "is" if probe == path else f"lies under {probe}, which is"
        raise InputError(f"{what} {path} {where} not a directory")


def _make_parent(final: Path) -> None:
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {final.parent}: {exc.strerror}") from exc


def put_in_place(temp: Path, final: Path, *, replace: bool) -> None:
    """Rename `temp` to `final`; what was at `final` ends up at `temp` (removed by the caller)."""
    if not os.path.lexists(final):
        temp.rename(final)
    elif replace and not exchange(temp, final):
        aside = temp.with_name(temp.name + "-old")
        final.rename(aside)
        temp.rename(final)
        aside.rename(temp)


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (renameat2 RENAME_EXCHANGE); False where unsupported."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise StorageError(f"cannot exchange {a} and {b}: {os.strerror(err)}")


def sweep_stale_partials(directory: Path, *, finals: Iterable[str] | None = None,
                         now: float | None = None) -> list[Path]:
    """Remove the partials in `directory` whose writer is gone (only those of `finals` when
    given); return what was removed.

    A partial is kept while its final's lock is held (its writer is alive, possibly waiting on
    a subprocess). Lock files that nobody holds go too: a writer killed between taking its
    lock and unlinking it leaves one, beside its partial or its finished final.
    """
    groups = _partials_by_final(directory)
    if finals is not None:
        wanted = set(finals)
        groups = {final: paths for final, paths in groups.items() if final in wanted}
    removed: list[Path] = []
    clock = time.time() if now is None else now
    for final in sorted(groups):
        held = try_lock(directory / f".{final}.lock", transient=True)
        if held is None:
            continue
        try:
            for path, legacy in groups[final]:
                if legacy and not _older_than(path, clock - LEGACY_GRACE_S):
                    continue
                try:
                    remove_tree(path)
                except StorageError as exc:
                    # Not a reason to fail this run (a tool orphaned by a killed build may
                    # still be writing in it): the next sweep tries again.
                    log.warning("%s", exc.message)
                    continue
                removed.append(path)
        finally:
            held.release()
    return removed


def _partials_by_final(directory: Path) -> dict[str, list[tuple[Path, bool]]]:
    """Partials grouped by the name they were for; a lone lock file makes an empty group."""
    groups: dict[str, list[tuple[Path, bool]]] = {}
    try:
        names = sorted(p.name for p in directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return groups
    for name in names:
        lock = LOCK_RE.match(name)
        if lock is not None:
            groups.setdefault(lock["final"], [])
            continue
        match = PARTIAL_RE.match(name)
        legacy = match is None
        match = match or LEGACY_PARTIAL_RE.match(name)
        if match is not None:
            groups.setdefault(match["final"], []).append((directory / name, legacy))
    return groups


def _older_than(path: Path, limit: float) -> bool:
    try:
        return path.lstat().st_mtime < limit
    except FileNotFoundError:
        return False


def remove_tree(path: Path) -> None:
    """Remove a file, a link or a whole directory; a missing one is fine. A filesystem still
    mounted inside the directory (a killed tool's, e.g. debootstrap's /proc) is detached
    first: the removal never reaches into it."""
    try:
        if path.is_dir() and not path.is_symlink():
            detach_mounts_under(path)
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StorageError(f"cannot remove {path}: {exc.strerror}") from exc


def mounts_under(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> list[Path]:
    """The mount points inside `path` (not `path` itself) in this process's view, deepest
    first."""
    try:
        text = mountinfo.read_text()
    except OSError:
        return []
    inside = os.path.realpath(path) + "/"
    points = [_unescape_mount_point(fields[4]) for fields in map(str.split, text.splitlines())
              if len(fields) > 4]
    return [Path(p) for p in sorted({p for p in points if p.startswith(inside)},
                                    key=lambda p: (-p.count("/"), p))]


def _unescape_mount_point(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040...)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def detach_mounts_under(path: Path) -> None:
    """Detach (lazily, like `umount --lazy`) every filesystem mounted inside `path`, those
    stacked on one another included."""
    libc: ctypes.CDLL | None = None
    for _ in range(DETACH_ROUNDS):
        points = mounts_under(path)
        if not points:
            return
        libc = libc or ctypes.CDLL(None, use_errno=True)
        for point in points:
            if libc.umount2(os.fsencode(point), MNT_DETACH) != 0:
                err = ctypes.get_errno()
                raise StorageError(f"cannot remove {path}: {point} is a mount point and cannot "
                                   f"be unmounted: {os.strerror(err)}")
            log.warning("unmounted %s, left mounted by a killed process", point)
    raise StorageError(f"cannot remove {path}: filesystems are still mounted inside it")


def fsync_path(path: Path) -> None:
    """Flush a file's or a directory's own data and metadata (a directory: its entries)."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FlushAhead:
    """The writeback of the filesystem holding a directory, begun in a thread while the caller
    goes on writing (`start()`, once), so the flush that must succeed later finds most of it
    on disk instead of waiting for all of it with the CPUs idle. As a context manager, waits
    for the thread on leaving. Its own failure is dropped: the later flush reports it."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._flush, name="flush-ahead")
            self._thread.start()

    def _flush(self) -> None:
        with contextlib.suppress(StorageError, OSError):
            sync_filesystem(self._directory)

    def __enter__(self) -> FlushAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._thread.join()


def sync_filesystem(path: Path) -> None:
    """Flush everything pending on the filesystem holding `path` (syncfs), not every disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise StorageError(f"cannot flush the filesystem of {path}: {os.strerror(err)}")
    finally:
        os.close(fd)
