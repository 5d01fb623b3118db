"""The gzip stream the OVA is written through: any mix of methods and write sizes decodes to
exactly the input, the bytes depend on the input alone (not on how it was cut or on threads),
and data that looks compressed is stored, not deflated again."""

from __future__ import annotations

import hashlib
import os
import tempfile
import zlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from builder.ova.gzipstream import (
    SEGMENT,
    UNIT,
    GzipWriter,
    Method,
    auto_runs,
    encode_segment,
)

METHODS: tuple[Method, ...] = ("deflate", "store", "auto")


def gzip_bytes(tmp: Path, pieces: list[tuple[bytes, Method]], workers: int = 2) -> bytes:
    path = tmp / f"out-{os.getpid()}-{workers}.gz"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with GzipWriter(fd, workers=workers) as writer:
            for data, method in pieces:
                writer.write(data, method)
            digests = writer.close()
    finally:
        os.close(fd)
    data = path.read_bytes()
    assert digests.sha256 == hashlib.sha256(data).hexdigest() and digests.size == len(data)
    assert digests.sha1 == hashlib.sha1(data).hexdigest()
    return data


def decompress(data: bytes) -> bytes:
    """zlib's own gzip decoder, which checks the CRC-32 and the length in the trailer."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = inflater.decompress(data) + inflater.flush()
    assert inflater.eof and not inflater.unused_data
    return out


chunks = st.lists(
    st.tuples(st.one_of(st.binary(max_size=3000),
                        st.integers(0, 3 * UNIT).map(bytes),
                        st.integers(0, 2 * UNIT).map(os.urandom)),
              st.sampled_from(METHODS)),
    max_size=8)


@settings(max_examples=60, deadline=None)
@given(pieces=chunks)
def test_any_mix_round_trips(pieces: list[tuple[bytes, Method]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        packed = gzip_bytes(Path(tmp), pieces)
    assert decompress(packed) == b"".join(data for data, _ in pieces)


def test_bytes_depend_on_the_input_not_on_how_it_is_cut(tmp_path: Path) -> None:
    data = os.urandom(SEGMENT) + bytes(SEGMENT) + os.urandom(SEGMENT // 3) * 3
    whole = gzip_bytes(tmp_path, [(data, "auto")], workers=1)
    cut: list[tuple[bytes, Method]] = [(data[i:i + 77777], "auto")
                                       for i in range(0, len(data), 77777)]
    assert gzip_bytes(tmp_path, cut, workers=3) == whole
    assert decompress(whole) == data


def test_compressed_units_are_stored_and_zero_units_deflated() -> None:
    noise = os.urandom(2 * UNIT)
    data = memoryview(noise[:UNIT] + bytes(UNIT) + noise[UNIT:])
    assert list(auto_runs(data)) == [(0, UNIT, False), (UNIT, 2 * UNIT, True),
                                     (2 * UNIT, 3 * UNIT, False)]
    encoded = encode_segment(b"", data, "auto")
    assert len(noise) < len(encoded) < len(noise) + 1024
    assert zlib.decompressobj(-15).decompress(encoded) == bytes(data)


def test_deflate_refers_back_across_segments() -> None:
    """A deflated segment primed with the 32 KiB before it packs a repeat of them."""
    history = os.urandom(1 << 15)
    repeat = history[-(1 << 14):]
    primed = encode_segment(history, repeat, "deflate")
    cold = encode_segment(b"", repeat, "deflate")
    assert len(primed) < len(cold) // 10
    inflater = zlib.decompressobj(-15, zdict=history)
    assert inflater.decompress(primed) == repeat
