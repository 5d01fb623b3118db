"""A PAX tar writer for OVAs: pinned owner/mode/mtime, SHA-256 of every member while streaming.

Members are written with tarfile's own header encoder (PAX, so members over 8 GiB work); the
content is streamed by hand so a sparse source is read only where it has data. The bytes go to
a sink: a plain file (holes stay holes, and a member reserved early can be filled in at the
end) or a gzip stream (`GzipSink`)."""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from builder.ova.gzipstream import GzipWriter, Method
from builder.sparse import read_sparse

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
ZERO_CHUNK = memoryview(bytes(4 << 20))
Progress = Callable[[int, int], None]


class TarSink(Protocol):
    """Where the tar bytes go, in order."""

    def write(self, data: bytes | memoryview, method: Method) -> None: ...

    def zeros(self, count: int, method: Method) -> None: ...


class PlainSink:
    """A plain tar file at an open descriptor positioned at 0; runs of zeros become holes."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.offset = 0

    def write(self, data: bytes | memoryview, method: Method) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view, self.offset)
            view = view[written:]
            self.offset += written

    def zeros(self, count: int, method: Method) -> None:
        self.offset += count

    def patch(self, offset: int, data: bytes) -> None:
        os.pwrite(self.fd, data, offset)

    def finish(self) -> None:
        os.ftruncate(self.fd, self.offset)


class GzipSink:
    """The tar bytes into a `GzipWriter`; holes are fed to it as zeros (deflate packs them)."""

    def __init__(self, writer: GzipWriter) -> None:
        self.writer = writer

    def write(self, data: bytes | memoryview, method: Method) -> None:
        self.writer.write(data, method)

    def zeros(self, count: int, method: Method) -> None:
        while count > 0:
            step = min(count, len(ZERO_CHUNK))
            self.writer.write(ZERO_CHUNK[:step], method)
            count -= step


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


class TarStream:
    """Writes members, in order, to a sink; headers and small members are always deflated."""

    def __init__(self, sink: TarSink, mtime: int) -> None:
        self.sink = sink
        self.mtime = mtime
        self.offset = 0

    def _write(self, data: bytes | memoryview, method: Method = "deflate") -> None:
        self.sink.write(data, method)
        self.offset += len(data)

    def _zeros(self, count: int, method: Method = "deflate") -> None:
        if count:
            self.sink.zeros(count, method)
            self.offset += count

    def add_bytes(self, name: str, data: bytes, mode: int = 0o644) -> str:
        """A small member from memory; returns its SHA-256."""
        self._write(_header(name, len(data), self.mtime, mode))
        self._write(data + bytes(_padding(len(data))))
        return hashlib.sha256(data).hexdigest()

    def reserve(self, name: str, size: int, mode: int = 0o644) -> int:
        """A member of `size` zero bytes, to be overwritten later in a plain file; returns the
        offset of its content."""
        self._write(_header(name, size, self.mtime, mode))
        start = self.offset
        self._write(bytes(size + _padding(size)))
        return start

    def add_file(self, name: str, path: Path, *, method: Method = "deflate",
                 progress: Progress | None = None, mode: int = 0o644) -> str:
        """A member streamed from `path` (one read of its data extents); returns its SHA-256."""
        size = path.stat().st_size
        self._write(_header(name, size, self.mtime, mode))
        digest = hashlib.sha256()
        position = 0
        for offset, block in read_sparse(path):
            _hash_zeros(digest, offset - position)
            self._zeros(offset - position, method)
            self._write(block, method)
            digest.update(block)
            position = offset + len(block)
            if progress is not None:
                progress(position, size)
        _hash_zeros(digest, size - position)
        self._zeros(size - position, method)
        self._write(bytes(_padding(size)))
        return digest.hexdigest()

    def close(self) -> None:
        """The end-of-archive blocks, padded to a whole record like GNU tar."""
        end = self.offset + 2 * BLOCK
        self._write(bytes(2 * BLOCK + (-end % RECORD)))


def _hash_zeros(digest: hashlib._Hash, count: int) -> None:
    """Holes read as zeros: hash them without touching the disk."""
    while count > 0:
        step = min(count, len(ZERO_CHUNK))
        digest.update(ZERO_CHUNK[:step])
        count -= step
