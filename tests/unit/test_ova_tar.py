"""The OVA tar writer: PAX members over 8 GiB, pinned metadata, holes kept, streaming hashes,
and the same tar bytes whether written plain or through the gzip stream."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tarfile
from pathlib import Path

from builder.ova.digests import file_digests, known_digests, sidecar
from builder.ova.gzipstream import GzipWriter, Method
from builder.ova.tarball import GzipSink, PlainSink, TarStream
from builder.sparse import copy_sparse, data_extents, sha256_sparse

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
        sink = PlainSink(fd)
        writer = TarStream(sink, mtime)
        writer.add_bytes("a.ovf", b"<x/>")
        digest = writer.add_file("disk", source)
        writer.close()
        sink.finish()
    finally:
        os.close(fd)
    return digest


def write_gzip_tar(dest: Path, source: Path, method: Method = "auto",
                   mtime: int = 1_700_000_000) -> str:
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with GzipWriter(fd) as gz:
            writer = TarStream(GzipSink(gz), mtime)
            writer.add_bytes("a.ovf", b"<x/>")
            digest = writer.add_file("disk", source, method=method)
            writer.close()
            gz.close()
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


def test_gzip_tar_holds_the_very_tar_bytes(tmp_path: Path) -> None:
    """zcat of the gzip OVA is the plain one, byte for byte (what `zcat | wc` measures)."""
    source = sparse_file(tmp_path / "src", 7 << 20, {0: os.urandom(3 << 20),
                                                     (5 << 20) + 11: b"x" * 4096})
    plain, packed = tmp_path / "t.tar", tmp_path / "t.tar.gz"
    assert write_tar(plain, source) == write_gzip_tar(packed, source)
    zcat = subprocess.run(["zcat", str(packed)], capture_output=True, check=True).stdout
    assert zcat == plain.read_bytes()
    with tarfile.open(packed, "r:gz") as tar:
        handle = tar.extractfile("disk")
        assert handle is not None and handle.read() == source.read_bytes()


def test_gzip_tar_is_reproducible_and_pins_its_header(tmp_path: Path) -> None:
    source = sparse_file(tmp_path / "src", 3 << 20, {4096: os.urandom(1 << 20)})
    write_gzip_tar(tmp_path / "1.gz", source)
    os.utime(source, (1, 1))
    write_gzip_tar(tmp_path / "2.gz", source)
    first = (tmp_path / "1.gz").read_bytes()
    assert first == (tmp_path / "2.gz").read_bytes()
    # magic, deflate, no flags (no file name), MTIME 0, XFL 0, OS 3 (Unix)
    assert first[:10] == bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3])
    with tarfile.open(tmp_path / "1.gz", "r:gz") as tar:
        assert tar.getnames() == ["a.ovf", "disk"]
    test = subprocess.run(["gzip", "-t", str(tmp_path / "1.gz")], capture_output=True,
                          check=False)
    assert test.returncode == 0, test.stderr


def test_random_data_is_stored_not_squeezed(tmp_path: Path) -> None:
    """Compressed-looking data costs 5 bytes per 64 KiB stored block; zeros deflate away."""
    noise = os.urandom(8 << 20)
    source = sparse_file(tmp_path / "src", 16 << 20, {0: noise})
    write_gzip_tar(tmp_path / "t.gz", source)
    size = (tmp_path / "t.gz").stat().st_size
    assert len(noise) < size < len(noise) * 1.001 + (64 << 10)


def test_file_digests_once_and_kept(tmp_path: Path) -> None:
    source = sparse_file(tmp_path / "src", 9 << 20, {1 << 20: b"abc"})
    digests = file_digests(source)
    data = source.read_bytes()
    assert digests.sha1 == hashlib.sha1(data).hexdigest()
    assert digests.sha256 == hashlib.sha256(data).hexdigest() and digests.size == len(data)
    assert known_digests(source) == digests and sidecar(source).is_file()
    sidecar(source).write_text('{"size": 1, "sha1": "x", "sha256": "y"}')
    assert known_digests(source) == digests  # a stale sidecar is not believed


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
