"""Sparse files: walk only allocated extents (SEEK_DATA/SEEK_HOLE), copy keeping the holes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHUNK = 4 << 20


def data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """(offset, length) of every allocated extent; the whole file when seeking is unsupported."""
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError:
            # ENXIO: no data after offset (a trailing hole); EINVAL: no support, read it all.
            if offset == 0 and not _has_trailing_hole(fd, size):
                yield 0, size
            return
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, min(end, size) - start
        offset = end


def _has_trailing_hole(fd: int, size: int) -> bool:
    try:
        os.lseek(fd, 0, os.SEEK_HOLE)
    except OSError:
        return False
    return size > 0


def read_sparse(path: Path, chunk: int = CHUNK) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of the allocated data of `path`, in order."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        for start, length in data_extents(fd, size):
            done = 0
            while done < length:
                block = os.pread(fd, min(chunk, length - done), start + done)
                if not block:
                    break
                yield start + done, block
                done += len(block)
    finally:
        os.close(fd)


def copy_sparse(source: Path, dest: Path) -> None:
    """Copy `source` to `dest` (which exists or is created), leaving its holes as holes."""
    size = source.stat().st_size
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for offset, block in read_sparse(source):
            os.pwrite(fd, block, offset)
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def sha256_sparse(path: Path) -> str:
    """SHA-256 of `path`, reading only its data extents (holes are hashed as zeros)."""
    digest = hashlib.sha256()
    zeros = memoryview(bytes(CHUNK))
    position = 0
    for offset, block in read_sparse(path):
        _feed_zeros(digest, zeros, offset - position)
        digest.update(block)
        position = offset + len(block)
    _feed_zeros(digest, zeros, path.stat().st_size - position)
    return digest.hexdigest()


def _feed_zeros(digest: Any, zeros: memoryview, count: int) -> None:
    while count > 0:
        step = min(count, len(zeros))
        digest.update(zeros[:step])
        count -= step
