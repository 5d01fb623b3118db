"""Reading an input file safely: regular files only, never blocking on a FIFO, bounded in size."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)
OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
READ_CHUNK = 1 << 20


class FileRefused(Exception):
    """The file cannot be used; `reason` completes 'cannot read PATH: ...'."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RegularFile:
    """A file's bytes and the mode it had when it was read."""

    data: bytes
    mode: int


def kind_of(mode: int) -> str:
    for test, name in KINDS:
        if test(mode):
            return name
    return "not a regular file"


def size_text(size: int) -> str:
    return f"{size:,} bytes"


def read_regular_file(path: Path, *, limit: int, follow_symlinks: bool = True) -> RegularFile:
    """At most `limit` bytes of the regular file `path`; FileRefused for anything else.

    A stat first keeps devices from being opened at all; O_NONBLOCK keeps a FIFO swapped in
    after that stat from blocking the open, and the fstat of the open file is what counts.
    """
    info = _stat(path, follow_symlinks)
    _check_regular(info.st_mode, info.st_size, limit)
    flags = OPEN_FLAGS | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise FileRefused(_reason(exc)) from None
    try:
        info = os.fstat(fd)
        _check_regular(info.st_mode, info.st_size, limit)
        data = _read_at_most(fd, limit + 1)
    except OSError as exc:
        raise FileRefused(_reason(exc)) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise FileRefused(f"larger than the limit of {size_text(limit)}")
    return RegularFile(data=data, mode=stat.S_IMODE(info.st_mode))


def _stat(path: Path, follow_symlinks: bool) -> os.stat_result:
    try:
        return path.stat(follow_symlinks=follow_symlinks)
    except OSError as exc:
        raise FileRefused(_reason(exc)) from None
    except ValueError:  # an embedded NUL byte
        raise FileRefused("not a usable path (it contains a NUL character)") from None


def _check_regular(mode: int, size: int, limit: int) -> None:
    if stat.S_ISLNK(mode):
        raise FileRefused("a symbolic link")
    if not stat.S_ISREG(mode):
        kind = kind_of(mode)
        raise FileRefused(kind if kind == "not a regular file" else f"{kind}, not a regular file")
    if size > limit:
        raise FileRefused(f"{size_text(size)}, larger than the limit of {size_text(limit)}")


def _read_at_most(fd: int, count: int) -> bytes:
    chunks: list[bytes] = []
    left = count
    while left > 0:
        chunk = os.read(fd, min(left, READ_CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symbolic link"
    if exc.errno == errno.ENXIO:
        return "a socket or a device without a reader, not a regular file"
    return exc.strerror or str(exc)
