"""he-launch's files at rest: explicit modes whatever the umask, owners that let qemu open what
it must and nobody else read anything.

qemu runs as its own user (libvirt's DAC label: libvirt-qemu on Debian, qemu on EL). The
directories on its way to the disks (the storage directory, `images/`, `images/KEY/`, the
site's directory) stay ours and give qemu's group passage only (0710: no listing, no
writing); every other directory is 0700. The disks qemu writes (the overlay, the seed copy)
are handed to qemu's user with mode 0600, as libvirt itself does when it starts a domain, so
they open even where libvirt does not relabel. The unpacked base image stays ours, readable by
qemu's group only (0440): no guest-side process can change it. Logs and records: ours, 0600.
When qemu runs as we do (qemu:///session), or on libvirt's test driver, everything is ours,
directories 0700 and files 0600.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from builder.errors import StorageError

PRIVATE_DIR = 0o700
PASSAGE_DIR = 0o710
# Without the right to give a directory to qemu's group (he-launch not run as root): anyone
# may pass, nobody may list.
OPEN_PASSAGE_DIR = 0o711
PRIVATE_FILE = 0o600
SHARED_READONLY = 0o440
OPEN_READONLY = 0o444


@dataclass(frozen=True)
class StorageModes:
    """How he-launch sets modes and owners, given who qemu runs as (None: as we do)."""

    qemu_uid: int | None = None
    qemu_gid: int | None = None

    @classmethod
    def for_qemu(cls, identity: tuple[int, int] | None) -> StorageModes:
        if identity is None or identity[0] == os.geteuid():
            return cls()
        return cls(qemu_uid=identity[0], qemu_gid=identity[1])

    @property
    def separate_qemu(self) -> bool:
        return self.qemu_uid is not None

    @property
    def can_give(self) -> bool:
        """Whether files can be given to qemu's user and group (root only)."""
        return self.separate_qemu and os.geteuid() == 0

    def private_dir(self, path: Path) -> Path:
        """A directory only we can enter."""
        return _ensure_dir(path, PRIVATE_DIR, gid=None)

    def passage_dir(self, path: Path) -> Path:
        """A directory qemu must pass through to reach its disks (missing parents included)."""
        missing = [p for p in [path, *path.parents] if not p.exists()]
        for directory in reversed(missing):
            self._passage(directory)
        return self._passage(path)

    def _passage(self, path: Path) -> Path:
        if not self.separate_qemu:
            return _ensure_dir(path, PRIVATE_DIR, gid=None)
        if self.can_give:
            return _ensure_dir(path, PASSAGE_DIR, gid=self.qemu_gid)
        return _ensure_dir(path, OPEN_PASSAGE_DIR, gid=None)

    def qemu_disk(self, path: Path) -> Path:
        """A disk qemu reads and writes: 0600, owned by qemu's user when it is not us."""
        _set_mode(path, PRIVATE_FILE)
        if self.can_give:
            _chown(path, self.qemu_uid, self.qemu_gid)
        return path

    def shared_readonly(self, path: Path) -> Path:
        """A file qemu only reads (the pristine base image): ours, readable by qemu's group."""
        if self.can_give:
            _chown(path, os.geteuid(), self.qemu_gid)
            return _set_mode(path, SHARED_READONLY)
        return _set_mode(path, OPEN_READONLY if self.separate_qemu else 0o400)

    def check_reachable(self, directory: Path) -> None:
        """qemu runs as its own user: every existing parent of `directory` must let it pass."""
        if not self.separate_qemu:
            return
        for parent in directory.parents:
            if parent.exists() and not self._passable(parent.stat()):
                raise StorageError(
                    f"{parent} does not let qemu's user pass, so qemu cannot reach the disks",
                    hint=f"chmod o+x {parent}, or pass another --storage",
                )

    def _passable(self, st: os.stat_result) -> bool:
        mode = st.st_mode
        return bool(mode & stat.S_IXOTH
                    or (st.st_gid == self.qemu_gid and mode & stat.S_IXGRP)
                    or (st.st_uid == self.qemu_uid and mode & stat.S_IXUSR))


def private_file(path: Path) -> Path:
    """Make an existing file ours-only (0600)."""
    return _set_mode(path, PRIVATE_FILE)


def create_private_file(path: Path) -> Path:
    """An empty file only we can read: created 0600, or an existing one emptied and fixed."""
    os.close(_open_private(path))
    return path


def open_private(path: Path) -> BinaryIO:
    """`path` truncated and opened for writing, mode 0600 whatever the umask."""
    return os.fdopen(_open_private(path), "wb")


def _open_private(path: Path) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, PRIVATE_FILE)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        os.fchmod(fd, PRIVATE_FILE)
        if os.geteuid() == 0:
            os.fchown(fd, 0, 0)  # e.g. a log an earlier run left to another user
    except BaseException:
        os.close(fd)
        raise
    return fd


def _ensure_dir(path: Path, mode: int, *, gid: int | None) -> Path:
    try:
        path.mkdir(mode=PRIVATE_DIR, exist_ok=True)  # closed first, then opened as asked
        if path.is_symlink() or not path.is_dir():
            raise StorageError(f"{path} is not a directory")
        if os.geteuid() == 0:
            os.chown(path, 0, 0 if gid is None else gid)
        path.chmod(mode)
    except OSError as exc:
        raise StorageError(f"cannot prepare the directory {path}: {exc.strerror}") from exc
    return path


def _set_mode(path: Path, mode: int) -> Path:
    try:
        path.chmod(mode)
    except OSError as exc:
        raise StorageError(f"cannot set the mode of {path}: {exc.strerror}") from exc
    return path


def _chown(path: Path, uid: int | None, gid: int | None) -> None:
    try:
        os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
    except OSError as exc:
        raise StorageError(f"cannot give {path} to qemu's user: {exc.strerror}") from exc
