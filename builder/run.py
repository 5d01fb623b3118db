"""The one way to run an external command: argv lists, redacted logging, typed failures.

A command dies with the process that ran it, even when that process is killed (kill -9, the
OOM killer): util-linux's `setpriv --pdeathsig KILL` has the kernel send it SIGKILL then. A
`qemu-img convert` compressing a disk would otherwise run on for minutes, writing into a
partial directory that the next build sweeps. A command that starts commands of its own
(debootstrap: dpkg, the maintainer scripts; rpmbuild: its build scripts) runs
`with_descendants`, so they die with it."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from builder.errors import CommandError, MissingPrerequisiteError

log = logging.getLogger(__name__)

REDACTED = "***"
STDERR_TAIL_CHARS = 2000


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every non-empty secret in `text`, longest first so overlaps vanish whole."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def require_tool(name: str, *, package: str | None = None) -> str:
    """Return the absolute path of `name` on PATH, or fail with the package that provides it."""
    found = shutil.which(name)
    if found is None:
        hint = f"install the Debian package {package}" if package else None
        raise MissingPrerequisiteError(f"required tool not found: {name}", hint=hint)
    return found


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    secrets: Iterable[str] = (),
    stdin: bytes | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
) -> Completed:
    """Run `argv` (never through a shell), capture its output, raise CommandError on failure.

    `env` is merged over this process's environment; `secrets` are masked in the log line
    and in the error's stderr tail.
    """
    args = tuple(os.fspath(a) for a in argv)
    hidden = tuple(secrets)
    log.debug("run: %s", redact(" ".join(args), hidden))
    full_env = {**os.environ, **env} if env is not None else None
    try:
        proc = subprocess.run(
            tied_to_this_process(args, cwd=cwd, env=full_env),
            input=stdin,
            capture_output=True,
            cwd=cwd,
            env=full_env,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise MissingPrerequisiteError(f"required tool not found: {args[0]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandError(
            [redact(a, hidden) for a in args], -1, f"timed out after {timeout} s"
        ) from exc
    done = Completed(args, proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        tail = redact(proc.stderr.decode("utf-8", errors="replace")[-STDERR_TAIL_CHARS:], hidden)
        raise CommandError([redact(a, hidden) for a in args], proc.returncode, tail)
    return done


def tied_to_this_process(args: Sequence[str], *, cwd: Path | None = None,
                         env: Mapping[str, str] | None = None,
                         signal: str = "KILL") -> tuple[str, ...]:
    """`args` run through setpriv so that the command gets `signal` (a setpriv signal name)
    when the thread running it dies (it waits for the command, so only this process's end
    does that); `args` unchanged where setpriv is missing. FileNotFoundError for a command
    that is not there, as running it would raise (setpriv would only exit 127)."""
    setpriv = _setpriv()
    if setpriv is None:
        return tuple(args)
    return (setpriv, "--pdeathsig", signal, "--", _executable(args[0], cwd, env), *args[1:])


def with_descendants(args: Sequence[str], *, unshare: Sequence[str] = ()) -> tuple[str, ...]:
    """`args` as the first process of a PID namespace of its own (unshare(1), with the other
    `unshare` options given): when it dies, killed with the process that ran it or not, the
    kernel kills every process it started, and theirs. Needs root (CAP_SYS_ADMIN)."""
    return ("unshare", *unshare, "--pid", "--kill-child=SIGKILL", "--", *args)


def with_descendants_where_possible(args: Sequence[str]) -> tuple[str, ...]:
    """`with_descendants(args)` where this process can make a PID namespace: as root, or as
    another user in a user namespace that maps the user to itself (files keep their owner);
    `args` unchanged where it cannot (no unshare, or a container that forbids namespaces)."""
    options = _pid_namespace_options()
    return tuple(args) if options is None else with_descendants(args, unshare=options)


@functools.cache
def _pid_namespace_options() -> tuple[str, ...] | None:
    """unshare's options for a PID namespace of this user's, None when none can be made (tried
    once, with `true`)."""
    if shutil.which("unshare") is None:
        return None
    options = () if os.geteuid() == 0 else ("--map-current-user",)
    tried = subprocess.run(with_descendants(["true"], unshare=options), capture_output=True,
                           check=False)
    return options if tried.returncode == 0 else None


@functools.cache
def _setpriv() -> str | None:
    return shutil.which("setpriv")


def _executable(name: str, cwd: Path | None, env: Mapping[str, str] | None) -> str:
    """The file `name` runs, looked up as execvp does (PATH of `env`, else this process's)."""
    if "/" in name:
        path = Path(cwd, name) if cwd is not None else Path(name)
        found = name if os.access(path, os.X_OK) and not path.is_dir() else None
    else:
        found = shutil.which(name, path=(env if env is not None else os.environ).get("PATH"))
    if found is None:
        raise FileNotFoundError(name)
    return found


def tool_version(*argv: str) -> str:
    """The first line a tool prints for its version: a tool upgrade invalidates its stages."""
    done = run(argv, check=False)
    text = (done.stdout or done.stderr).decode("utf-8", errors="replace").strip()
    return text.splitlines()[0] if text else f"{argv[0]}: unknown"


def package_version(package: str) -> str:
    """The installed Debian version of `package` (for tools without --version)."""
    done = run(["dpkg-query", "-W", "-f=${Version}", package], check=False)
    return done.text.strip() or "unknown"
