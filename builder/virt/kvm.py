"""Whether this host's /dev/kvm can run an ordinary guest, read from the host alone.

A usable /dev/kvm is not enough: KVM runs an unmodified x86 guest only on a CPU with hardware
virtualization (the `vmx` or `svm` flag). Without it, a kernel may still serve /dev/kvm through
kvm-pvm, which runs only guests built for PVM: an ordinary appliance then starts, spins in its
boot loader and never comes up. Nested hosts without nested virtualization hide the flag too
(there qemu aborts at once). Both fall back to TCG before anything is started.
"""

from __future__ import annotations

import os
from pathlib import Path

KVM_DEVICE = Path("/dev/kvm")
CPUINFO = Path("/proc/cpuinfo")
SYS_MODULES = Path("/sys/module")
HARDWARE_FLAGS = frozenset({"vmx", "svm"})  # Intel VT-x, AMD-V


def kvm_unusable(*, device: Path = KVM_DEVICE, cpuinfo: Path = CPUINFO,
                 modules: Path = SYS_MODULES) -> str | None:
    """Why KVM cannot run an ordinary guest here, or None when it can be tried."""
    if not device.exists():
        return f"{device} does not exist"
    if not os.access(device, os.R_OK | os.W_OK):
        return f"{device} is not accessible"
    flags = cpu_flags(cpuinfo)
    if flags is not None and not flags & HARDWARE_FLAGS:
        why = f"{device} cannot run an ordinary guest: the CPU has no vmx or svm flag"
        if (modules / "kvm_pvm").exists():
            return f"{why}; it is served by kvm-pvm, which runs only PVM guests"
        return f"{why} (no hardware virtualization)"
    return None


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str] | None:
    """The first CPU's flags, None when they cannot be read (then KVM is simply tried)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return frozenset(value.split())
    return None
