"""Artifacts appear at their final path complete or not at all (temp + rename)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from builder.errors import StorageError


def _temp_name(final: Path, suffix: str = "") -> str:
    return f".{final.name}.partial-{os.getpid()}{suffix}"


def write_atomic(final: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write `data` to `final` via a temp file in the same directory, created with `mode`."""
    with staged_file(final, mode=mode) as temp:
        fd = os.open(temp, os.O_WRONLY | os.O_TRUNC)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


@contextlib.contextmanager
def staged_file(final: Path, *, mode: int = 0o644) -> Iterator[Path]:
    """Yield an empty temp file beside `final` (already `mode`); rename it over `final` on success.

    The temp file is created with `mode` from the start, so a secret never sits in a file
    readable by others, not even briefly.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, name = tempfile.mkstemp(prefix=_temp_name(final), dir=final.parent)
    except OSError as exc:
        raise StorageError(f"cannot write in {final.parent}: {exc.strerror}") from exc
    temp = Path(name)
    try:
        os.fchmod(fd, mode)
        os.close(fd)
        yield temp
        temp.replace(final)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise StorageError(f"cannot write {final}: {exc.strerror}") from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Yield an empty temp directory beside `final`; swap it into place on success.

    An existing `final` is replaced only after the new one is complete.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        temp = Path(tempfile.mkdtemp(prefix=_temp_name(final), dir=final.parent))
    except OSError as exc:
        raise StorageError(f"cannot write in {final.parent}: {exc.strerror}") from exc
    try:
        yield temp
        _swap_into_place(temp, final)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _swap_into_place(temp: Path, final: Path) -> None:
    old: Path | None = None
    if final.exists():
        old = final.with_name(_temp_name(final, ".old"))
        shutil.rmtree(old, ignore_errors=True)
        final.replace(old)
    temp.replace(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
