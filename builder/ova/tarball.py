"""A PAX tar writer for OVAs: pinned owner/mode/mtime, SHA-256 while streaming, holes kept.

Members are written with tarfile's own header encoder (PAX, so members over 8 GiB work); the
content is streamed by hand so a sparse source is read only where it has data, the output
keeps the holes, and a member reserved early (the manifest) can be filled in at the end."""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

from builder.ova.sparse import read_sparse

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
ZERO_CHUNK = bytes(4 << 20)
Progress = Callable[[int, int], None]


def _header(name: str, size: int, mtime: int, mode: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = mode
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> int:
    return -size % BLOCK


class TarWriter:
    """Writes members to an open file descriptor positioned at 0."""

    def __init__(self, fd: int, mtime: int) -> None:
        self.fd = fd
        self.mtime = mtime
        self.offset = 0

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view, self.offset)
            view = view[written:]
            self.offset += written

    def add_bytes(self, name: str, data: bytes, mode: int = 0o644) -> str:
        """A small member from memory; returns its SHA-256."""
        self._write(_header(name, len(data), self.mtime, mode))
        self._write(data + bytes(_padding(len(data))))
        return hashlib.sha256(data).hexdigest()

    def reserve(self, name: str, size: int, mode: int = 0o644) -> int:
        """A member of `size` bytes filled later with `fill`; returns its content offset."""
        self._write(_header(name, size, self.mtime, mode))
        start = self.offset
        self._write(bytes(size + _padding(size)))
        return start

    def fill(self, start: int, data: bytes) -> None:
        os.pwrite(self.fd, data, start)

    def add_file(self, name: str, path: Path, progress: Progress | None = None,
                 mode: int = 0o644) -> str:
        """A member streamed from `path` (one read of its data extents); returns its SHA-256."""
        size = path.stat().st_size
        self._write(_header(name, size, self.mtime, mode))
        start = self.offset
        digest = hashlib.sha256()
        position = 0
        for offset, block in read_sparse(path):
            _hash_zeros(digest, offset - position)
            self.offset = start + offset
            self._write(block)
            digest.update(block)
            position = offset + len(block)
            if progress is not None:
                progress(position, size)
        _hash_zeros(digest, size - position)
        self.offset = start + size
        self._write(bytes(_padding(size)))
        return digest.hexdigest()

    def close(self) -> None:
        """The end-of-archive blocks, padded to a whole record like GNU tar."""
        end = self.offset + 2 * BLOCK
        self._write(bytes(2 * BLOCK + (-end % RECORD)))
        os.ftruncate(self.fd, self.offset)


def _hash_zeros(digest: hashlib._Hash, count: int) -> None:
    """Holes read as zeros: hash them without touching the disk."""
    while count > 0:
        step = min(count, len(ZERO_CHUNK))
        digest.update(memoryview(ZERO_CHUNK)[:step])
        count -= step
