"""The exception tree: every user-facing failure is one of these, with its exit code."""

from __future__ import annotations

import errno
from collections.abc import Sequence
from enum import IntEnum

# An operating-system error about a path that could never name a usable file: the name given
# is at fault, not the storage.
PATH_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR, errno.ENOENT,
                         errno.EISDIR})


class ExitCode(IntEnum):
    """The exit codes of he-build and he-launch, defined here only: MEANINGS says what each
    one means, and the README's "Exit codes" table is checked against it by a test."""

    OK = 0
    INTERNAL = 1
    BAD_INPUT = 2
    COMMAND_FAILED = 3
    MISSING_PREREQUISITE = 4
    INTEGRITY = 5
    STORAGE = 6
    RELEASE_FAILED = 7
    VM_NOT_STARTED = 20
    BOOT_TIMEOUT = 21
    SETUP_TIMEOUT = 22
    CHANNEL_CLOSED = 23
    SECRET_ON_DISK = 24
    INTERRUPTED = 130


MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.INTERNAL: "internal error (a bug: rerun with `--debug` for the traceback)",
    ExitCode.BAD_INPUT: "bad input: a file, site, field or option (one line per problem)",
    ExitCode.COMMAND_FAILED: "an external command failed (its name, exit code and last stderr "
                             "line are printed)",
    ExitCode.MISSING_PREREQUISITE: "a required tool, library or service is missing",
    ExitCode.INTEGRITY: "an artifact failed verification (checksum, manifest, OVF)",
    ExitCode.STORAGE: "storage: not enough space, or a write (or a read) failed",
    ExitCode.RELEASE_FAILED: "he-build release: the boot smoke test or a gate failed (the stage "
                             "is named; nothing was published)",
    ExitCode.VM_NOT_STARTED: "he-launch: the VM did not start",
    ExitCode.BOOT_TIMEOUT: "he-launch: boot timeout, the guest never reported",
    ExitCode.SETUP_TIMEOUT: "he-launch: setup timeout, engine-setup's status never came (or the "
                            "health page never answered)",
    ExitCode.CHANNEL_CLOSED: "he-launch: the channel closed without a status (the VM stopped)",
    ExitCode.SECRET_ON_DISK: "he-launch: engine-setup succeeded, but the engine's disk still "
                             "holds a copy of its admin password (the VM keeps running)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C or SIGTERM); cleanup ran",
}


class BuilderError(Exception):
    """Base of all expected failures; the CLI prints `message` on one line."""

    exit_code: int = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class InputError(BuilderError):
    """Bad input from the user: a file, a site, a field, an option."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(
        self, message: str, *, problems: Sequence[str] = (), hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.problems = tuple(problems)


class CommandError(BuilderError):
    """An external command exited non-zero; carries argv (redacted), code and stderr tail."""

    exit_code = ExitCode.COMMAND_FAILED

    def __init__(self, argv: Sequence[str], returncode: int, stderr_tail: str) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        last = stderr_tail.strip().splitlines()[-1:] or [""]
        detail = f": {last[0]}" if last[0] else ""
        super().__init__(f"{self.argv[0]} exited with {returncode}{detail}")


class MissingPrerequisiteError(BuilderError):
    """A tool, library or service this step needs is not available."""

    exit_code = ExitCode.MISSING_PREREQUISITE


class IntegrityError(BuilderError):
    """An artifact failed verification (checksum, manifest, descriptor)."""

    exit_code = ExitCode.INTEGRITY


class StorageError(BuilderError):
    """Not enough space, or a write failed."""

    exit_code = ExitCode.STORAGE


class LaunchError(BuilderError):
    """Base of launcher failures that have their own exit codes."""


class VmNotStartedError(LaunchError):
    exit_code = ExitCode.VM_NOT_STARTED


class BootTimeoutError(LaunchError):
    exit_code = ExitCode.BOOT_TIMEOUT


class SetupTimeoutError(LaunchError):
    exit_code = ExitCode.SETUP_TIMEOUT


class ChannelClosedError(LaunchError):
    exit_code = ExitCode.CHANNEL_CLOSED


class SecretOnDiskError(LaunchError):
    """engine-setup succeeded, but the engine's disk still holds a copy of a seed secret."""

    exit_code = ExitCode.SECRET_ON_DISK


class InterruptedByUserError(BuilderError):
    exit_code = ExitCode.INTERRUPTED


def file_error(exc: OSError) -> BuilderError | None:
    """The error to report for an operating-system error on a named file that no step turned
    into its own message (a path too long, a read or write refused): bad input when the name
    itself is at fault, else storage. None when the error names no file (a bug, then)."""
    if exc.filename is None:
        return None
    message = f"cannot use {exc.filename}: {exc.strerror or exc}"
    if exc.errno in PATH_ERRNOS:
        return InputError(message)
    return StorageError(message)
