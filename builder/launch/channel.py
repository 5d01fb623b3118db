"""The guest's report channel: read lines from the virtio-serial socket, recognise the verdict."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from builder.console import counted
from builder.errors import BootTimeoutError, ChannelClosedError, SetupTimeoutError
from builder.seed.protocol import NETWORK_TAG, RC_LINE, SCRUB_TAG, SSH_TAG, VERDICTS

# A guest that reports only the hosted-engine verdict (no RC line) gets this long to add one.
RC_GRACE_S = 10.0
POLL_S = 0.2
MAX_LINE = 64 * 1024


@dataclass
class ChannelReport:
    """What the guest said: network, SSH and scrub lines, the verdict, engine-setup's exit
    code."""

    network: list[str] = field(default_factory=list)
    ssh: list[str] = field(default_factory=list)
    scrub: list[str] = field(default_factory=list)
    success: bool | None = None
    exit_code: int | None = None
    lines: int = 0
    first_line_at: float | None = None
    verdict_at: float | None = None

    def take(self, line: str, now: float) -> None:
        """Record one line of the channel."""
        self.lines += 1
        if self.first_line_at is None:
            self.first_line_at = now
        text = line.strip()
        for prefix, found in ((NETWORK_TAG, self.network), (SSH_TAG, self.ssh),
                              (SCRUB_TAG, self.scrub)):
            if text.startswith(prefix + " ") or text == prefix:
                found.append(text[len(prefix):].strip())
                return
        if text in VERDICTS:
            self.success = VERDICTS[text]
            self.verdict_at = now
        elif match := RC_LINE.match(text):
            self.exit_code = int(match.group(1))

    @property
    def complete(self) -> bool:
        return self.exit_code is not None

    def final_exit_code(self) -> int | None:
        """engine-setup's status: the RC line, else what the verdict implies."""
        if self.exit_code is not None:
            return self.exit_code
        if self.success is None:
            return None
        return 0 if self.success else 1


@dataclass(frozen=True)
class Deadlines:
    """How long the guest may take to say anything, then to finish engine-setup."""

    boot_s: float
    setup_s: float


LineSink = Callable[[str], None]
Alive = Callable[[], bool]


def connect_channel(
    path_of: Callable[[], Path | None], alive: Alive, deadline: float
) -> socket.socket:
    """Connect to the channel's unix socket once qemu has created it."""
    while True:
        path = path_of()
        if path is not None and path.exists():
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(path))
                return sock
            except OSError:
                sock.close()
        if not alive():
            raise ChannelClosedError("the VM stopped before its report channel opened")
        if time.monotonic() >= deadline:
            raise BootTimeoutError(
                "the guest never reported (boot timeout): its report channel did not open")
        time.sleep(POLL_S)


def read_report(
    sock: socket.socket, deadlines: Deadlines, sink: LineSink, transcript: BinaryIO,
    *, started: float, report: ChannelReport | None = None,
    quiet: Callable[[ChannelReport], None] | None = None,
) -> ChannelReport:
    """Read lines until the exit-status report; every line goes to `transcript` and `sink`.

    `report` (filled in place) lets a caller see what came before a timeout; `quiet` is called
    after each second without data (a progress display for long silent waits).
    """
    report = report if report is not None else ChannelReport()
    buffer = b""
    while not report.complete:
        wait = _time_left(report, deadlines, started)
        ready, _, _ = select.select([sock], [], [], max(0.0, min(wait, 1.0)))
        if not ready:
            if quiet is not None:
                quiet(report)
            continue
        chunk = sock.recv(65536)
        if not chunk:
            _raise_closed(report)
            break
        transcript.write(chunk)
        transcript.flush()
        buffer = _consume_lines(buffer + chunk, report, sink)
    return report


def _consume_lines(data: bytes, report: ChannelReport, sink: LineSink) -> bytes:
    """Hand every complete line to the report and the sink; return the unfinished tail."""
    *lines, tail = data.split(b"\n")
    now = time.monotonic()
    for raw in lines:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        report.take(line, now)
        sink(line)
    if len(tail) > MAX_LINE:  # a guest that never sends a newline must not fill our memory
        report.take(tail.decode("utf-8", errors="replace"), now)
        sink(tail.decode("utf-8", errors="replace"))
        return b""
    return tail


def _time_left(report: ChannelReport, deadlines: Deadlines, started: float) -> float:
    """Seconds until the current deadline; raises the matching timeout when it passed."""
    now = time.monotonic()
    if report.first_line_at is None:
        left = started + deadlines.boot_s - now
        if left <= 0:
            raise BootTimeoutError(
                f"the guest never reported within {deadlines.boot_s:g} s (boot timeout)")
        return left
    if report.success is not None:
        return _grace_left(report, now)
    left = report.first_line_at + deadlines.setup_s - now
    if left <= 0:
        raise SetupTimeoutError(
            f"engine-setup did not report its status within {deadlines.setup_s:g} s "
            "(setup timeout)")
    return left


def _grace_left(report: ChannelReport, now: float) -> float:
    """After the verdict line, wait briefly for the RC line, then settle on the verdict."""
    verdict_at = report.verdict_at if report.verdict_at is not None else now
    left = verdict_at + RC_GRACE_S - now
    if left <= 0:
        report.exit_code = 0 if report.success else 1
    return max(left, 0.0)


def _raise_closed(report: ChannelReport) -> None:
    if report.final_exit_code() is not None:
        report.exit_code = report.final_exit_code()
        return
    raise ChannelClosedError(
        f"the report channel closed without an exit status after {counted(report.lines, 'line')}")
