"""Whether /dev/kvm can run an ordinary guest, from the device, the CPU flags and the modules
(read from files shaped like /proc/cpuinfo and /sys/module; the host's own are read last)."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.virt.kvm import cpu_flags, kvm_unusable

INTEL = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme de pse vmx ept\n\n"
AMD = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu svm npt\n\n"
NONE = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme hypervisor\n\n"


@pytest.fixture
def host(tmp_path: Path) -> Path:
    (tmp_path / "kvm").write_bytes(b"")
    (tmp_path / "modules" / "kvm").mkdir(parents=True)
    return tmp_path


def probe(host: Path, cpuinfo: str) -> str | None:
    (host / "cpuinfo").write_text(cpuinfo)
    return kvm_unusable(device=host / "kvm", cpuinfo=host / "cpuinfo",
                        modules=host / "modules")


@pytest.mark.parametrize("cpuinfo", [INTEL, AMD], ids=["vmx", "svm"])
def test_hardware_virtualization_lets_kvm_be_tried(host: Path, cpuinfo: str) -> None:
    assert probe(host, cpuinfo) is None


def test_no_hardware_virtualization_means_tcg(host: Path) -> None:
    assert probe(host, NONE) == ("/dev/kvm cannot run an ordinary guest: the CPU has no vmx or "
                                 "svm flag (no hardware virtualization)").replace(
                                     "/dev/kvm", str(host / "kvm"))


def test_kvm_pvm_is_named(host: Path) -> None:
    (host / "modules" / "kvm_pvm").mkdir()
    reason = probe(host, NONE)
    assert reason is not None and reason.endswith(
        "; it is served by kvm-pvm, which runs only PVM guests")


def test_a_missing_device_is_said_first(host: Path) -> None:
    (host / "kvm").unlink()
    assert probe(host, INTEL) == f"{host / 'kvm'} does not exist"


def test_unreadable_flags_let_kvm_be_tried(host: Path) -> None:
    assert kvm_unusable(device=host / "kvm", cpuinfo=host / "absent",
                        modules=host / "modules") is None
    assert cpu_flags(host / "absent") is None


def test_this_host_agrees_with_its_own_flags() -> None:
    flags = cpu_flags()
    assert flags is not None and "fpu" in flags
    reason = kvm_unusable()
    if not flags & {"vmx", "svm"} and Path("/dev/kvm").exists():
        assert reason is not None and "no vmx or svm flag" in reason
