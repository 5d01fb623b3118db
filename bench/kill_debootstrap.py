"""Kill `he-build appliance --recipe debian-test` (its own process only, as the OOM killer
would) while debootstrap runs, and count what debootstrap had started that is still running.

    .venv/bin/python -m bench.kill_debootstrap [--moments first-stage,unpack,configure]

Each moment has a private cache (HE_BUILDER_CACHE; the .deb downloads are shared through
HE_BUILDER_DEB_CACHE, else debs/ of the default stage cache), so debootstrap really runs. The
build is killed once a process of the moment appears among he-build's descendants:
- first-stage: `dpkg-deb` taking a package apart, before the chroot exists;
- unpack: the chroot's `dpkg --unpack`;
- configure: `mkinitramfs`, run by the kernel package's postinst under `dpkg --configure`.
Three seconds later, the descendants seen at the kill that still run (same PID and start time,
not a zombie) are counted. debootstrap runs as the first process of a PID namespace of its own
(builder.run.with_descendants): the count must be 0. Without it, at `configure` the rest of
debootstrap, dpkg and the postinst ran on into the dead build's partial root (9 processes).
Survivors are killed before the next moment. Needs root, as the recipe does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import run_bench
from bench.killrun import command_line, pids
from builder.disk.debian_standin import ENV_DEB_CACHE
from builder.pipeline.store import ENV_CACHE, default_cache_root

HE_BUILD = Path(sys.executable).parent / "he-build"
MOMENTS = {"first-stage": "dpkg-deb --fsys-tarfile", "unpack": "--unpack",
           "configure": "mkinitramfs"}
WAIT_S = 600.0
GRACE_S = 3.0
POLL_S = 0.1


@dataclass(frozen=True)
class Outcome:
    moment: str
    seen: int  # he-build's descendants at the kill
    surviving: tuple[str, ...]  # their command lines, of those still running after GRACE_S
    after_s: float  # when the moment came, from the start


def process_table() -> dict[int, tuple[int, str]]:
    """PID -> (parent PID, start time) of every process."""
    return {pid: found for pid in pids() if (found := _stat(pid)) is not None}


def _stat(pid: int) -> tuple[int, str] | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[19]


def descendants(root: int) -> dict[int, str]:
    """PID -> start time of every process below `root`."""
    table = process_table()
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, start) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = start
                frontier.append(pid)
    return found


def running(pid: int, start: str) -> bool:
    """The same process (PID and start time) still runs, and is not a zombie."""
    found = _stat(pid)
    if found is None or found[1] != start:
        return False
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def kill_at(moment: str, work: Path, debs: Path) -> Outcome:
    env = {**os.environ, ENV_CACHE: str(work / "cache"), ENV_DEB_CACHE: str(debs)}
    start = time.monotonic()
    build = subprocess.Popen([str(HE_BUILD), "appliance", "--recipe", "debian-test", "--out",
                              str(work / "out")], env=env, start_new_session=True,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        seen = _wait_for(build, MOMENTS[moment])
        after = time.monotonic() - start
        build.kill()
        build.wait()
        time.sleep(GRACE_S)
        alive = [pid for pid, started in seen.items() if running(pid, started)]
        surviving = tuple(command_line(pid) for pid in alive)
        for pid in alive:
            os.kill(pid, signal.SIGKILL)
        return Outcome(moment, len(seen), surviving, after)
    finally:
        if build.poll() is None:
            os.killpg(build.pid, signal.SIGKILL)
            build.wait()


def _wait_for(build: subprocess.Popen[bytes], marker: str) -> dict[int, str]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if build.poll() is not None:
            raise SystemExit(f"he-build ended ({build.returncode}) before '{marker}' ran: "
                             "is the rootfs stage reaching debootstrap?")
        seen = descendants(build.pid)
        if any(marker in command_line(pid) for pid in seen):
            return seen
        time.sleep(POLL_S)
    raise SystemExit(f"'{marker}' did not run within {WAIT_S:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.kill_debootstrap", description=__doc__)
    parser.add_argument("--moments", default=",".join(MOMENTS),
                        help=f"comma-separated, of {', '.join(MOMENTS)}")
    args = parser.parse_args()
    moments = [m for m in args.moments.split(",") if m]
    unknown = [m for m in moments if m not in MOMENTS]
    if unknown:
        parser.error(f"unknown moment: {', '.join(unknown)}")
    if os.geteuid() != 0:
        raise SystemExit("bench.kill_debootstrap: debootstrap needs root")
    debs = Path(os.environ.get(ENV_DEB_CACHE) or default_cache_root(os.environ) / "debs")
    debs.mkdir(parents=True, exist_ok=True)
    failed = 0
    for moment in moments:
        work = Path(tempfile.mkdtemp(prefix="kill-debootstrap-", dir="/var/tmp"))
        try:
            outcome = kill_at(moment, work, debs)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        failed += bool(outcome.surviving)
        print(f"{moment:12s}: killed at {outcome.after_s:5.1f} s with {outcome.seen} processes "
              f"below he-build; still running {GRACE_S:.0f} s later: {len(outcome.surviving)}")
        for line in outcome.surviving:
            print(f"    {line[:120]}")
    print(f"moments: {len(moments)}, with survivors: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    run_bench(main)
