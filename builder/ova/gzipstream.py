"""One reproducible gzip member, written while the OVA streams through: a fixed header, stored
deflate blocks for bytes that are already compressed, real deflate (pigz-style, on every core)
for the rest, and the CRC-32 and the output's SHA-1 and SHA-256 on the way.

Why not zlib over everything: the qcow2 clusters are compressed already, so deflating them again
costs ~30 MB/s of CPU and saves ~1%. Measured in docs/appliance.md ("Where compression
happens"). The encoding depends only on the bytes and on where the writer changes `Method`, never
on read sizes or thread timing, so the same input gives the same file on every machine with the
same zlib.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

# "deflate": compress everything; "store": carry as is; "auto": store what looks compressed
# already, deflate the rest (a qcow2 with compressed clusters: its metadata is mostly zeros).
Method = Literal["deflate", "store", "auto"]

# RFC 1952: magic, CM=8 (deflate), FLG=0 (no name, comment or extra field), MTIME=0 (none),
# XFL=0, OS=3 (Unix). Nothing in it depends on the machine, the file name or the time.
HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"
FINAL_BLOCK = b"\x01\x00\x00\xff\xff"  # an empty stored block with BFINAL set
LEVEL = 1
SEGMENT = 1 << 20  # a thread's unit of work; cut at fixed offsets of each run of one Method
UNIT = 1 << 16  # what "auto" classifies: one qcow2 cluster (the default cluster size)
WINDOW = 1 << 15  # deflate's window: each deflated run is primed with the 32 KiB before it
STORED_MAX = 0xFFFF
SAMPLE_STRIDE = 64
# Compressed data holds about one zero byte in 256; qcow2 metadata (L1/L2 tables, refcount
# blocks) is mostly zeros. A unit with 1/16 of its sampled bytes zero is worth deflating.
ZERO_SHARE = 16


@dataclass(frozen=True)
class StreamDigests:
    """What the writer knows about the bytes it wrote (the whole .gz file)."""

    sha1: str
    sha256: str
    size: int


def stored_blocks(data: bytes | memoryview) -> bytes:
    """`data` as non-final stored blocks; the stream must be byte-aligned before them."""
    view = memoryview(data)
    out = bytearray()
    for start in range(0, len(view), STORED_MAX):
        piece = view[start:start + STORED_MAX]
        out += b"\x00" + struct.pack("<HH", len(piece), len(piece) ^ 0xFFFF)
        out += piece
    return bytes(out)


def deflate_blocks(history: bytes, data: bytes | memoryview) -> bytes:
    """`data` deflated into non-final blocks ending byte-aligned (a sync flush); `history` is
    the stream just before it, which the blocks may refer back to."""
    if history:
        encoder = zlib.compressobj(LEVEL, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY,
                                   history)
    else:
        encoder = zlib.compressobj(LEVEL, zlib.DEFLATED, -15)
    return encoder.compress(data) + encoder.flush(zlib.Z_SYNC_FLUSH)


def looks_uncompressed(unit: memoryview) -> bool:
    sample = unit[::SAMPLE_STRIDE].tobytes()
    return sample.count(0) * ZERO_SHARE >= len(sample)


def auto_runs(data: memoryview) -> Iterator[tuple[int, int, bool]]:
    """(start, end, deflate?) runs of whole UNITs of `data` that look alike."""
    start, current = 0, None
    for offset in range(0, len(data), UNIT):
        deflate = looks_uncompressed(data[offset:offset + UNIT])
        if current is not None and deflate != current:
            yield start, offset, current
            start = offset
        current = deflate
    if current is not None:
        yield start, len(data), current


def encode_segment(history: bytes, data: bytes | memoryview, method: Method) -> bytes:
    """The deflate blocks carrying `data`: a pure function of its arguments."""
    if method == "store":
        return stored_blocks(data)
    if method == "deflate":
        return deflate_blocks(history, data)
    view = memoryview(data)
    out = bytearray()
    for start, end, deflate in auto_runs(view):
        if deflate:
            before = (history + view[max(0, start - WINDOW):start].tobytes())[-WINDOW:]
            out += deflate_blocks(before, view[start:end])
        else:
            out += stored_blocks(view[start:end])
    return bytes(out)


class GzipWriter:
    """Writes one gzip member to an open file descriptor; use as a context manager.

    `write` takes the uncompressed bytes in order with how to encode them. Segments are encoded
    by a thread pool (zlib and hashlib release the GIL) and written in order.
    """

    def __init__(self, fd: int, *, workers: int | None = None) -> None:
        self.fd = fd
        self.workers = workers or min(4, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="gzip")
        self._pending: deque[Future[bytes]] = deque()
        self._buffer = bytearray()
        self._method: Method = "deflate"
        self._history = b""
        self._crc = 0
        self._size = 0
        self._sha1 = hashlib.sha1()  # noqa: S324 - hosted-engine's discovery file wants SHA-1
        self._sha256 = hashlib.sha256()
        self._written = 0
        self._emit(HEADER)

    def __enter__(self) -> GzipWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    @property
    def uncompressed_size(self) -> int:
        return self._size + len(self._buffer)

    def write(self, data: bytes | memoryview, method: Method) -> None:
        """Append `data`; a change of `method` ends the current segment there."""
        if method != self._method:
            self._submit_buffer()
            self._method = method
        view = memoryview(data)
        if self._buffer:
            take = min(len(view), SEGMENT - len(self._buffer))
            self._buffer += view[:take]
            view = view[take:]
            if len(self._buffer) < SEGMENT:
                return
            self._submit_buffer()
        while len(view) >= SEGMENT:
            self._submit(view[:SEGMENT])
            view = view[SEGMENT:]
        self._buffer += view

    def close(self) -> StreamDigests:
        """The last block and the trailer; the digests of the whole file."""
        self._submit_buffer()
        while self._pending:
            self._emit(self._pending.popleft().result())
        self._emit(FINAL_BLOCK + struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
        self._pool.shutdown(wait=True)
        return StreamDigests(self._sha1.hexdigest(), self._sha256.hexdigest(), self._written)

    def _submit_buffer(self) -> None:
        if self._buffer:
            self._submit(bytes(self._buffer))
            self._buffer.clear()

    def _submit(self, segment: bytes | memoryview) -> None:
        self._crc = zlib.crc32(segment, self._crc)
        self._size += len(segment)
        self._pending.append(self._pool.submit(encode_segment, self._history, segment,
                                               self._method))
        tail = bytes(segment[-WINDOW:])
        self._history = tail if len(tail) == WINDOW else (self._history + tail)[-WINDOW:]
        while len(self._pending) > 2 * self.workers:
            self._emit(self._pending.popleft().result())

    def _emit(self, block: bytes) -> None:
        self._sha1.update(block)
        self._sha256.update(block)
        view = memoryview(block)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        self._written += len(block)
