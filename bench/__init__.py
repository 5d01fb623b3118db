"""Benchmarks: each compares against a reference tool in the same run and prints the ratio."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from builder.cli.handler import error_lines
from builder.errors import BuilderError, file_error


@dataclass(frozen=True)
class Outcome:
    """What one case of a fuzz campaign came to: its kind, and what happened when it failed."""

    kind: str
    detail: str = ""


def run_bench(main: Callable[[], int | None]) -> NoReturn:
    """A bench's entry point: an expected failure (libvirtd not reachable, a tool missing, a
    file given that cannot be read) is printed as he-build prints it, with its exit code;
    anything else is a bug in the bench and keeps its traceback."""
    try:
        code = main()
    except BuilderError as exc:
        fail(exc)
    except OSError as exc:
        error = file_error(exc)
        if error is None:
            raise
        fail(error)
    raise SystemExit(code or 0)


def fail(exc: BuilderError) -> NoReturn:
    name = f"bench.{Path(sys.argv[0]).stem}"
    sys.stderr.write("".join(f"{name}: {line}\n" for line in error_lines(exc)))
    raise SystemExit(int(exc.exit_code)) from None
