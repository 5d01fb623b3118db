"""A streamed byte scan of a disk image for secrets: the check after the guest's scrub.

Only the image file's data extents are read (holes are zeros: qcow2 clusters the guest
discarded are holes), in large chunks, carrying the last bytes of each chunk into the next so
a match across a chunk boundary still counts; a match never spans a hole.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

CHUNK = 8 << 20


@dataclass(frozen=True)
class ScanResult:
    """How many times each needle occurs in the scanned file, and how much was read."""

    counts: tuple[int, ...]
    bytes_read: int

    @property
    def found(self) -> int:
        return sum(self.counts)


def scan_file(path: Path, needles: Sequence[bytes], *, chunk: int = CHUNK) -> ScanResult:
    """Count the (non-overlapping) occurrences of each needle in `path`'s bytes."""
    if not needles or any(not needle for needle in needles):
        raise ValueError("scan_file needs non-empty needles")
    keep = max(len(needle) for needle in needles) - 1
    counts = [0] * len(needles)
    read = 0
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for start, end in data_extents(fd):
            tail = b""
            for block in _blocks(fd, start, end, chunk):
                read += len(block)
                window = tail + block
                for index, needle in enumerate(needles):
                    # Matches wholly inside the carried tail were counted with the last block.
                    counts[index] += window.count(needle) - tail.count(needle)
                tail = window[-keep:] if keep else b""
    finally:
        os.close(fd)
    return ScanResult(counts=tuple(counts), bytes_read=read)


def data_extents(fd: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each data extent of the open file (the whole file where the file
    system cannot tell holes)."""
    size = os.fstat(fd).st_size
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole is left
                return
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                yield offset, size
                return
            raise
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, end
        offset = end


def _blocks(fd: int, start: int, end: int, chunk: int) -> Iterator[bytes]:
    offset = start
    while offset < end:
        block = os.pread(fd, min(chunk, end - offset), offset)
        if not block:
            return
        yield block
        offset += len(block)
