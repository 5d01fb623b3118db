"""Typed errors of the libvirt adapter (libvirt's own exceptions never leave builder.virt)."""

from __future__ import annotations

from builder.errors import BuilderError, ExitCode, VmNotStartedError


class VirtError(BuilderError):
    """libvirt refused an operation."""

    exit_code = ExitCode.INTERNAL


class DomainNotFoundError(VirtError):
    exit_code = ExitCode.BAD_INPUT


class VmStartError(VirtError, VmNotStartedError):
    """libvirt refused or failed to start the domain."""

    exit_code = ExitCode.VM_NOT_STARTED
