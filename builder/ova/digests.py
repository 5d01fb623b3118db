"""A packed file's size, SHA-1 and SHA-256, computed once and kept beside it.

SHA-256 names artifacts (manifests, summaries, the RPM's metadata); SHA-1 is what hosted-engine's
discovery file carries (`sha1sum=`). The OVA writer computes both while it writes; other files
are read once, sparsely, and the result is kept in a sidecar `<file>.digests.json`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from builder.atomic import write_atomic
from builder.sparse import read_sparse

SIDECAR_SUFFIX = ".digests.json"
ZEROS = memoryview(bytes(4 << 20))


@dataclass(frozen=True)
class FileDigests:
    size: int
    sha1: str
    sha256: str


def file_digests(path: Path) -> FileDigests:
    """Both digests in one read of `path`'s data extents (holes hashed as zeros)."""
    sha1 = hashlib.sha1()  # noqa: S324 - the discovery file's format
    sha256 = hashlib.sha256()
    position = 0
    for offset, block in read_sparse(path):
        _feed_zeros((sha1, sha256), offset - position)
        sha1.update(block)
        sha256.update(block)
        position = offset + len(block)
    size = path.stat().st_size
    _feed_zeros((sha1, sha256), size - position)
    return FileDigests(size, sha1.hexdigest(), sha256.hexdigest())


def _feed_zeros(digests: tuple[hashlib._Hash, ...], count: int) -> None:
    while count > 0:
        step = min(count, len(ZEROS))
        for digest in digests:
            digest.update(ZEROS[:step])
        count -= step


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def store_digests(path: Path, digests: FileDigests) -> None:
    write_atomic(sidecar(path), (json.dumps(asdict(digests), sort_keys=True) + "\n").encode())


def known_digests(path: Path) -> FileDigests:
    """The digests kept beside `path` when they still describe it, else computed and kept."""
    try:
        found = FileDigests(**json.loads(sidecar(path).read_text()))
    except (OSError, ValueError, TypeError):
        found = None
    if found is not None and found.size == path.stat().st_size:
        return found
    digests = file_digests(path)
    store_digests(path, digests)
    return digests
