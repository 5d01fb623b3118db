"""The overlay scan: a streamed byte count over a file's data extents, on real sparse files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builder.launch.scan import data_extents, scan_file

NEEDLE = b"OVESETUP_CONFIG/adminPassword=str:Marker-1"


def sparse_file(path: Path, pieces: dict[int, bytes], size: int) -> Path:
    """A file of `size` bytes holding `pieces` at their offsets and holes elsewhere."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, size)
        for offset, data in pieces.items():
            os.pwrite(fd, data, offset)
    finally:
        os.close(fd)
    return path


def test_copies_are_counted_wherever_they_sit_even_across_chunk_boundaries(
    tmp_path: Path,
) -> None:
    chunk = 4096
    body = bytearray(os.urandom(8 * chunk).replace(b"O", b"o"))
    for at in (0, chunk - 10, 3 * chunk - 1, len(body) - len(NEEDLE)):  # 2 straddle a boundary
        body[at:at + len(NEEDLE)] = NEEDLE
    path = tmp_path / "disk"
    path.write_bytes(bytes(body))
    result = scan_file(path, [NEEDLE, b"absent-needle"], chunk=chunk)
    assert result.counts == (4, 0) and result.found == 4
    assert result.bytes_read == len(body)


def test_holes_are_skipped_and_no_match_spans_one(tmp_path: Path) -> None:
    block = 1 << 20  # holes are tracked per file-system block: keep pieces far apart
    half = len(NEEDLE) // 2
    path = sparse_file(tmp_path / "overlay.qcow2", {
        0: b"x" * 100 + NEEDLE,
        4 * block - half: NEEDLE[:half],      # ends a data extent...
        8 * block: NEEDLE[half:] + b"y" * 10,  # ...the rest begins the next, after a hole
    }, size=16 * block)
    extents = list(data_extents(os.open(path, os.O_RDONLY)))
    if len(extents) < 3:
        pytest.skip("this file system does not report holes")
    result = scan_file(path, [NEEDLE], chunk=64 * 1024)
    assert result.counts == (1,)
    assert result.bytes_read == sum(end - start for start, end in extents)
    assert result.bytes_read < path.stat().st_size // 2


def test_empty_needles_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "disk"
    path.write_bytes(b"data")
    with pytest.raises(ValueError):
        scan_file(path, [])
    with pytest.raises(ValueError):
        scan_file(path, [b""])
