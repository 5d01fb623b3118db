"""Reproducibility: one source of build time, names turned into stable ids."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from builder.errors import InputError

# Every id the project derives from a name lives under this namespace.
NAMESPACE = uuid.UUID("6f1c3a52-8d0b-5b7e-9a44-0c2f6e8d1b90")


def source_date_epoch(env: Mapping[str, str]) -> int | None:
    """The SOURCE_DATE_EPOCH from `env`, or None when unset."""
    raw = env.get("SOURCE_DATE_EPOCH")
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError as exc:
        raise InputError(f"SOURCE_DATE_EPOCH is not an integer: {raw!r}") from exc
    if value < 0:
        raise InputError(f"SOURCE_DATE_EPOCH is negative: {raw!r}")
    return value


def build_time(env: Mapping[str, str]) -> int:
    """SOURCE_DATE_EPOCH when set, else now (whole seconds)."""
    fixed = source_date_epoch(env)
    return fixed if fixed is not None else int(time.time())


def stable_uuid(*parts: str) -> uuid.UUID:
    """A uuid5 of the joined parts: the same names give the same id on every run."""
    return uuid.uuid5(NAMESPACE, "\x1f".join(parts))


def stable_mac(name: str, prefix: str = "00:16:3e") -> str:
    """A MAC in the KVM/oVirt locally-usable prefix, derived from `name`."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    tail = ":".join(f"{b:02x}" for b in digest[:3])
    return f"{prefix}:{tail}"


def sha256_file(path: Path, *, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    with path.open("rb") as handle:
        return sha256_stream(handle, chunk=chunk)


def sha256_stream(handle: IO[bytes], *, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of what `handle` yields until its end."""
    digest = hashlib.sha256()
    while block := handle.read(chunk):
        digest.update(block)
    return digest.hexdigest()
