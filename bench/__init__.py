"""Benchmarks: each compares against a reference tool in the same run and prints the ratio."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from builder.errors import BuilderError, ExitCode


def run_bench(main: Callable[[], int | None]) -> NoReturn:
    """A bench's entry point: an expected failure (libvirtd not reachable, a tool missing, a
    file given that cannot be read) is one line and its exit code, as with he-build; anything
    else is a bug in the bench and keeps its traceback."""
    name = f"bench.{Path(sys.argv[0]).stem}"
    try:
        code = main()
    except BuilderError as exc:
        sys.stderr.write("".join(failure_lines(name, exc.message, exc.hint)))
        raise SystemExit(int(exc.exit_code)) from None
    except OSError as exc:
        if exc.filename is None:
            raise
        sys.stderr.write("".join(failure_lines(name, f"{exc.filename}: {exc.strerror}", None)))
        raise SystemExit(int(ExitCode.STORAGE)) from None
    raise SystemExit(code or 0)


def failure_lines(name: str, message: str, hint: str | None) -> list[str]:
    return [f"{name}: {message}\n", *([f"hint: {hint}\n"] if hint else [])]
