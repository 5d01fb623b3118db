"""SHA256SUMS for a publish directory, in the format `sha256sum -c` reads, and its check."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from builder.atomic import write_atomic
from builder.errors import InputError, IntegrityError
from builder.gpg import Signer, sign_detached
from builder.repro import sha256_file

SUMS_NAME = "SHA256SUMS"
SIGNATURE_SUFFIX = ".asc"
# `sha256sum` escapes these in names (a leading backslash then marks the line): refuse them.
UNSAFE_NAME = re.compile(r"[\\\n\r]")
LINE = re.compile(r"^(?P<digest>[0-9a-f]{64}) [ *](?P<name>.+)$")


@dataclass(frozen=True)
class Checksum:
    name: str  # POSIX path relative to the publish directory
    sha256: str


def collect_files(root: Path, *, exclude: frozenset[str] = frozenset()) -> list[str]:
    """Every regular file below `root` as a sorted relative POSIX path; a symlink or a
    special file has no place in a release and is refused."""
    if not root.is_dir():
        raise InputError(f"publish directory not found: {root}")
    names = []
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise InputError(f"{root}: {name} is not a regular file (links are not published)")
        if path.is_file() and name not in exclude:
            if UNSAFE_NAME.search(name):
                raise InputError(f"{root}: file name {name!r} holds a backslash or line break")
            names.append(name)
    return names


def compute_checksums(root: Path, names: list[str]) -> list[Checksum]:
    return [Checksum(name, sha256_file(root / name)) for name in names]


def render_sums(checksums: list[Checksum]) -> bytes:
    """`<digest>  <name>` lines (text mode, as sha256sum writes them), sorted by name."""
    lines = [f"{c.sha256}  {c.name}\n" for c in sorted(checksums, key=lambda c: c.name)]
    return "".join(lines).encode("utf-8")


def write_sha256sums(root: Path, *, name: str = SUMS_NAME) -> Path:
    """`root/SHA256SUMS` over every other file below `root` (its signature excluded)."""
    exclude = frozenset({name, name + SIGNATURE_SUFFIX})
    sums = root / name
    write_atomic(sums, render_sums(compute_checksums(root, collect_files(root, exclude=exclude))))
    return sums


def sign_sha256sums(signer: Signer, sums: Path) -> Path:
    """`SHA256SUMS.asc`: an armored detached signature (`gpg --verify SHA256SUMS.asc`)."""
    return sign_detached(signer, sums, sums.with_name(sums.name + SIGNATURE_SUFFIX))


def parse_sums(sums: Path) -> list[Checksum]:
    entries = []
    for number, line in enumerate(sums.read_text(encoding="utf-8").splitlines(), start=1):
        match = LINE.match(line)
        if match is None:
            raise IntegrityError(f"{sums}:{number}: not a sha256sum line")
        entries.append(Checksum(match["name"], match["digest"]))
    return entries


def verify_sha256sums(root: Path, *, name: str = SUMS_NAME) -> int:
    """Every listed file matches and no unlisted file is present; the number of files, or
    IntegrityError naming the first problem."""
    sums = root / name
    if not sums.is_file():
        raise IntegrityError(f"{sums} not found")
    listed = parse_sums(sums)
    present = collect_files(root, exclude=frozenset({name, name + SIGNATURE_SUFFIX}))
    unlisted = sorted(set(present) - {c.name for c in listed})
    if unlisted:
        raise IntegrityError(f"{root}: {unlisted[0]} is not in {name}")
    for entry in listed:
        path = root / entry.name
        if not path.is_file():
            raise IntegrityError(f"{root}: {entry.name} is listed in {name} but missing")
        if sha256_file(path) != entry.sha256:
            raise IntegrityError(f"{root}: {entry.name} does not match its SHA-256 in {name}")
    return len(listed)
