"""Killing a command at chosen moments, for the kill-and-rerun campaigns (seeds, appliance).

A kill point is one of:
- a time: SIGKILL after `delay_s` seconds;
- a syscall: the command runs under `strace -e inject=SYSCALL:signal=KILL:when=N`, so the
  kernel kills it on entering its Nth call of SYSCALL (before that call does anything): this
  is how a campaign hits the exact rename that switches a seed set, or the exact rename that
  puts a cache entry in place, which a timer would hit only by luck;
- a path: SIGKILL `delay_s` after a file matching `glob` appears (e.g. a staging directory);
  with `while_present`, only if one still matches then (else the command runs on, unkilled:
  the moment fell after the step that file belongs to).

`group` kills the whole process group (a CI timeout, a stopped systemd unit, a power cut);
otherwise only the command's own process dies (kill -9 PID, the OOM killer), and whatever it
started must not outlive it for long.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

POLL_S = 0.002


@dataclass(frozen=True)
class KillPoint:
    label: str
    delay_s: float = 0.0
    syscall: str | None = None
    nth: int = 0
    glob: str | None = None
    group: bool = True
    while_present: bool = False


@dataclass(frozen=True)
class Outcome:
    """How a run under a kill point ended."""

    returncode: int
    killed: bool
    elapsed_s: float
    stderr: str


def strace_argv(point: KillPoint) -> list[str]:
    """The strace prefix that kills the traced process on its Nth call of `point.syscall`.

    Only the command's own process is traced (no -f): its children run at full speed, and the
    counter is that process's own (strace counts per traced process)."""
    tool = shutil.which("strace")
    if tool is None:
        raise RuntimeError("strace is needed for syscall kill points (apt-get install strace)")
    return [tool, "-qq", "-o", "/dev/null", "-e", f"trace={point.syscall}",
            "-e", f"inject={point.syscall}:signal=KILL:when={point.nth}"]


def run_with_kill(argv: Sequence[str], env: Mapping[str, str], point: KillPoint | None, *,
                  timeout_s: float, cwd: Path | None = None) -> Outcome:
    """Run `argv` in its own session and kill it at `point` (None: let it finish)."""
    prefix = strace_argv(point) if point is not None and point.syscall else []
    start = time.monotonic()
    proc = subprocess.Popen([*prefix, *argv], env=dict(env), cwd=cwd, start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    killed = False
    if point is not None and not point.syscall:
        killed = _kill_when_due(proc, point, start, timeout_s)
    try:
        _, stderr = proc.communicate(timeout=max(1.0, timeout_s - (time.monotonic() - start)))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
        raise RuntimeError(f"{argv[0]} did not finish within {timeout_s} s") from None
    if point is not None and point.syscall:
        killed = proc.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL)
    return Outcome(proc.returncode, killed, time.monotonic() - start,
                   stderr.decode("utf-8", errors="replace"))


def _kill_when_due(proc: subprocess.Popen[bytes], point: KillPoint, start: float,
                   timeout_s: float) -> bool:
    if point.glob is not None:
        while proc.poll() is None and not _matches(point.glob):
            if time.monotonic() - start > timeout_s:
                return False
            time.sleep(POLL_S)
        due = time.monotonic() + point.delay_s
    else:
        due = start + point.delay_s
    while proc.poll() is None and time.monotonic() < due:
        time.sleep(POLL_S)
    if proc.poll() is not None:
        return False
    if point.while_present and point.glob is not None and not _matches(point.glob):
        return False
    if point.group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.kill()
    return True


def _matches(glob: str) -> bool:
    """Whether a file matches `glob` (its wildcards below a fixed directory)."""
    root = Path(glob.split("*", 1)[0]).parent
    return any(root.glob(str(Path(glob).relative_to(root))))


def survivors(marker: str, *, grace_s: float = 3.0) -> list[int]:
    """Processes whose command line contains `marker`, once they had `grace_s` to die."""
    deadline = time.monotonic() + grace_s
    while True:
        found = [pid for pid in pids() if marker in command_line(pid) and pid != os.getpid()]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def pids() -> list[int]:
    """Every process's PID."""
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def command_line(pid: int) -> str:
    """The process's arguments joined by spaces ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            "utf-8", errors="replace").strip()
    except OSError:
        return ""


def syscall_sequence(argv: Sequence[str], env: Mapping[str, str], syscalls: Sequence[str],
                     log: Path, *, timeout_s: float) -> list[tuple[str, str]]:
    """Run `argv` once under strace (its own process only) and return (syscall, arguments) of
    each call of `syscalls`, in order: where the moments that matter fall."""
    tool = shutil.which("strace")
    if tool is None:
        raise RuntimeError("strace is needed (apt-get install strace)")
    traced = subprocess.run([tool, "-qq", "-s", "256", "-o", str(log), "-e",
                             f"trace={','.join(syscalls)}", *argv], env=dict(env),
                            check=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, timeout=timeout_s)
    if traced.returncode != 0:
        raise RuntimeError(f"the traced run of {' '.join(argv[:2])} failed "
                           f"({traced.returncode}): "
                           f"{traced.stderr.decode(errors='replace')[-2000:]}")
    calls = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        name, _, rest = line.partition("(")
        if name in syscalls:
            calls.append((name, rest))
    return calls


def nth_call(calls: Sequence[tuple[str, str]], index: int) -> tuple[str, int]:
    """The syscall at position `index` of `calls` and its ordinal among calls of that name."""
    name = calls[index][0]
    return name, sum(1 for other, _ in calls[: index + 1] if other == name)
