"""What the user sees: progress and notes on stderr, results on stdout (text or JSON).

A reader that has gone (`he-build cache list | head -1`) is not a failure of the command: what
it would have read is dropped, the work goes on, and the exit status is the command's own."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeAlias

# A command's result for --json, or the function that makes it.
JsonData: TypeAlias = "dict[str, Any] | Callable[[], dict[str, Any]]"


@dataclass
class Console:
    """Progress and messages for one command run; quiet progress when not a terminal."""

    json_mode: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    _last_progress: float = 0.0
    _open_line: bool = False

    @property
    def interactive(self) -> bool:
        return self.err.isatty()

    def note(self, message: str) -> None:
        """A one-line status message (stderr, so stdout stays machine-readable)."""
        self._end_progress_line()
        write_or_drop(self.err, message + "\n")

    def step(self, message: str) -> None:
        self.note(f"==> {message}")

    def progress(self, label: str, done: int, total: int | None) -> None:
        """A progress bar on a terminal; an occasional line otherwise."""
        now = time.monotonic()
        final = total is not None and done >= total
        if not final and now - self._last_progress < (0.1 if self.interactive else 5.0):
            return
        self._last_progress = now
        if total:
            pct = min(100.0, 100.0 * done / total)
            filled = int(pct / 5)
            text = f"{label} [{'#' * filled}{'.' * (20 - filled)}] {pct:5.1f}%"
        else:
            text = f"{label} {done}"
        if self.interactive:
            write_or_drop(self.err, "\r\x1b[K" + text + ("\n" if final else ""))
            self._open_line = not final
        else:
            write_or_drop(self.err, text + "\n")

    def _end_progress_line(self) -> None:
        if self._open_line:
            write_or_drop(self.err, "\n")
            self._open_line = False

    def emit(self, data: JsonData, text: str, *, verbatim: bool = False) -> None:
        """A command's result: `data` (made now if a function) as JSON with --json, else `text`
        for people (ending in one newline), or exactly `text` when `verbatim`."""
        self._end_progress_line()
        if self.json_mode:
            write_or_drop(self.out, as_json(data() if callable(data) else data))
        elif verbatim:
            write_or_drop(self.out, text)
        elif text:
            write_or_drop(self.out, text.rstrip("\n") + "\n")

    def emit_error(self, prog: str, data: dict[str, Any], lines: list[str]) -> None:
        self._end_progress_line()
        if self.json_mode:
            write_or_drop(self.out, as_json(data))
        write_or_drop(self.err, "".join(f"{prog}: {line}\n" for line in lines))


def write_or_drop(stream: TextIO, text: str) -> None:
    """`text` written and flushed; when the reader has closed the pipe, this and every later
    write to `stream` go to /dev/null instead (so the exit's own flush cannot fail either)."""
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)


def as_json(data: dict[str, Any]) -> str:
    """The --json document: indented, keys sorted, one write (json.dump writes each token)."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def human_size(size: int) -> str:
    """`812 B`, `4.0 KiB`, ... `3.0 GiB` (GiB is the largest unit)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def counted(count: float, noun: str, plural: str | None = None) -> str:
    """`1 site`, `2 sites`, `0.5 days`; `plural` where English does not just add an s
    (`3 entries`). A float is written as short as it reads (`1` for 1.0)."""
    figure = f"{count:g}" if isinstance(count, float) else str(count)
    return f"{figure} {noun if count == 1 else plural or noun + 's'}"


def utc_time(stamp: float) -> str:
    """Seconds since the epoch as ISO 8601 in UTC, to the second: `2026-12-03T01:57:18Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


def text_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows as columns two spaces apart, each padded to its widest cell but the last (no
    trailing blanks)."""
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)),
                   row[-1]]).rstrip()
        for row in rows)
