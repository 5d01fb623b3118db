"""The OVA tar writer: PAX members over 8 GiB, pinned metadata, holes kept, streaming hashes."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

from builder.ova.sparse import copy_sparse, data_extents, sha256_sparse
from builder.ova.tarball import TarWriter

GIB = 1 << 30


def sparse_file(path: Path, size: int, chunks: dict[int, bytes]) -> Path:
    with path.open("wb") as handle:
        handle.truncate(size)
        for offset, data in chunks.items():
            handle.seek(offset)
            handle.write(data)
    return path


def write_tar(dest: Path, source: Path, mtime: int = 1_700_000_000) -> str:
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        writer = TarWriter(fd, mtime)
        writer.add_bytes("a.ovf", b"<x/>")
        digest = writer.add_file("disk", source)
        writer.close()
    finally:
        os.close(fd)
    return digest


def test_small_sparse_member_hash_and_content(tmp_path: Path) -> None:
    source = sparse_file(tmp_path / "src", 5 << 20, {0: b"head", (3 << 20) + 7: b"middle"})
    digest = write_tar(tmp_path / "t.tar", source)
    assert digest == hashlib.sha256(source.read_bytes()).hexdigest() == sha256_sparse(source)
    with tarfile.open(tmp_path / "t.tar") as tar:
        member = tar.getmember("disk")
        assert (member.uid, member.gid, member.uname, member.mode) == (0, 0, "root", 0o644)
        assert member.mtime == 1_700_000_000
        handle = tar.extractfile(member)
        assert handle is not None and handle.read() == source.read_bytes()


def test_member_over_8_gib_without_writing_it(tmp_path: Path) -> None:
    size = 9 * GIB + 512 * 3
    tail = b"the-end"
    source = sparse_file(tmp_path / "big.raw", size, {0: b"QFI", size - len(tail): tail})
    dest = tmp_path / "big.tar"
    write_tar(dest, source)
    # The tar keeps the holes: almost nothing is allocated on disk.
    assert dest.stat().st_blocks * 512 < 64 << 20
    with tarfile.open(dest) as tar:
        member = tar.getmember("disk")
        assert member.size == size
        handle = tar.extractfile(member)
        assert handle is not None
        assert handle.read(3) == b"QFI"
        handle.seek(size - len(tail))
        assert handle.read() == tail


def test_same_input_same_bytes(tmp_path: Path) -> None:
    source = sparse_file(tmp_path / "src", 1 << 20, {100: b"data"})
    write_tar(tmp_path / "1.tar", source)
    write_tar(tmp_path / "2.tar", source)
    assert (tmp_path / "1.tar").read_bytes() == (tmp_path / "2.tar").read_bytes()
    assert (tmp_path / "1.tar").stat().st_size % tarfile.RECORDSIZE == 0


def test_copy_sparse_keeps_holes(tmp_path: Path) -> None:
    source = sparse_file(tmp_path / "src", 64 << 20, {1 << 20: b"x" * 4096})
    copy_sparse(source, tmp_path / "dst")
    assert (tmp_path / "dst").read_bytes() == source.read_bytes()
    fd = os.open(tmp_path / "dst", os.O_RDONLY)
    try:
        extents = list(data_extents(fd, 64 << 20))
    finally:
        os.close(fd)
    assert sum(length for _, length in extents) < 8 << 20
