"""The seed eject's retries, against an in-memory stand-in for a libvirt domain.

A guest that closes the tray between libvirt's forced open and the medium's removal cannot be
produced on demand here (the real race is timing-dependent: the 20-run check under CPU load is
tests/integration/test_domain_hypervisor.py), so a stand-in domain whose running guest closes
the tray refuses with qemu's own message, as libvirt did 23 times in a row in that check; a
paused guest cannot. The tests look at the stand-in's XML and state afterwards (what a real
domain would say).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import libvirt
import pytest
from lxml import etree

from builder.launch.vm import seed_cdrom
from builder.virt.domain import DomainSpec, render_domain_xml
from builder.virt.errors import VirtError
from builder.virt.hypervisor import DomainHandle, Ejection

SEED = Path("/var/tmp/he-launch/dc1/seed.iso")
TRAY_NOT_OPEN = "internal error: unable to execute QEMU command 'blockdev-remove-medium': " \
                "Tray of device 'scsi0-0-0-0' is not open"


def refusal(message: str) -> libvirt.libvirtError:
    """libvirt's error as a failed call leaves it: libvirtError takes its message from the
    thread's last libvirt error, so a stale one (an earlier test's failed connection in the
    same worker) is cleared first, as libvirt itself replaces it on every failure."""
    libvirt.virResetLastError()
    return libvirt.libvirtError(message)


@dataclass
class RacingDomain:
    """A persistent domain whose running guest closes the tray `refusals` times."""

    refusals: int
    live: bytes = b""
    defined: bytes = b""
    attempts: list[int] = field(default_factory=list)
    running: bool = True
    pauses: int = 0

    def __post_init__(self) -> None:
        spec = DomainSpec(name="he-engine-dc1", uuid=uuid.UUID(int=1), virt_type="qemu",
                          memory_mib=64, vcpus=1, disks=(seed_cdrom(SEED),))
        self.live = self.defined = render_domain_xml(spec)

    def name(self) -> str:
        return "he-engine-dc1"

    def isActive(self) -> int:  # libvirt's method names, as the adapter calls them
        return 1

    def isPersistent(self) -> int:
        return 1

    def XMLDesc(self, flags: int = 0) -> str:
        document = self.defined if flags & libvirt.VIR_DOMAIN_XML_INACTIVE else self.live
        return document.decode()

    def state(self) -> list[int]:
        running = libvirt.VIR_DOMAIN_RUNNING if self.running else libvirt.VIR_DOMAIN_PAUSED
        return [running, 1]

    def suspend(self) -> int:
        self.running = False
        self.pauses += 1
        return 0

    def resume(self) -> int:
        self.running = True
        return 0

    def updateDeviceFlags(self, xml: str, flags: int) -> int:
        self.attempts.append(flags)
        if self.running and self.refusals > 0:
            self.refusals -= 1
            raise refusal(TRAY_NOT_OPEN)
        self._apply(flags, "devices/disk[@device='cdrom']/source")
        return 0

    def detachDeviceFlags(self, xml: str, flags: int) -> int:
        self._apply(flags, "devices/disk[@device='cdrom']")
        return 0

    def _apply(self, flags: int, path: str) -> None:
        if flags & libvirt.VIR_DOMAIN_AFFECT_LIVE:
            self.live = _without(self.live, path)
        if flags & libvirt.VIR_DOMAIN_AFFECT_CONFIG:
            self.defined = _without(self.defined, path)


def _without(document: bytes, path: str) -> bytes:
    root = etree.fromstring(document)
    for element in root.iterfind(path):
        element.getparent().remove(element)  # type: ignore[union-attr]
    return etree.tostring(root)


def _without_medium(document: bytes) -> bytes:
    return _without(document, "devices/disk[@device='cdrom']/source")


def cdrom_drives(document: bytes) -> int:
    return len(etree.fromstring(document).findall("devices/disk[@device='cdrom']"))


def test_a_refused_eject_is_repeated_with_the_guest_paused_then_resumed() -> None:
    domain = RacingDomain(refusals=1000)  # a guest that would close the tray every time
    handle = DomainHandle(domain)
    assert handle.medium_sources("sda") == ([str(SEED)], [str(SEED)])
    assert handle.eject(seed_cdrom(SEED), timeout=30) == Ejection(2, drive_removed=False)
    assert handle.medium_sources("sda") == ([], [])
    assert cdrom_drives(domain.live) == cdrom_drives(domain.defined) == 1  # the drive stays
    assert domain.running and domain.pauses == 1  # paused for the change only


def test_a_guest_that_lets_the_tray_be_is_never_paused() -> None:
    domain = RacingDomain(refusals=0)
    assert DomainHandle(domain).eject(seed_cdrom(SEED)) == Ejection(1, drive_removed=False)
    assert domain.pauses == 0


def test_a_medium_already_gone_counts_as_ejected() -> None:
    domain = RacingDomain(refusals=0)
    handle = DomainHandle(domain)
    domain.live = domain.defined = _without_medium(domain.live)
    assert handle.eject(seed_cdrom(SEED)) == Ejection(0, drive_removed=False)


def test_only_the_side_that_still_names_the_medium_is_changed() -> None:
    domain = RacingDomain(refusals=0)
    domain.live = _without_medium(domain.live)  # e.g. an earlier attempt took effect live
    assert DomainHandle(domain).eject(seed_cdrom(SEED)) == Ejection(1, drive_removed=False)
    assert domain.attempts == [libvirt.VIR_DOMAIN_AFFECT_CONFIG
                               | libvirt.VIR_DOMAIN_DEVICE_MODIFY_FORCE]
    assert DomainHandle(domain).medium_sources("sda") == ([], [])


class StaleTrayDomain(RacingDomain):
    """libvirt's record of the tray went stale: every eject is refused, paused or not (as
    measured on this machine under CPU load), while removing the drive works."""

    def updateDeviceFlags(self, xml: str, flags: int) -> int:
        raise refusal(TRAY_NOT_OPEN)


def test_a_drive_whose_medium_never_goes_is_removed_with_it() -> None:
    domain = StaleTrayDomain(refusals=0)
    handle = DomainHandle(domain)
    assert handle.eject(seed_cdrom(SEED), timeout=30) == Ejection(3, drive_removed=True)
    assert handle.medium_sources("sda") == ([], [])
    assert cdrom_drives(domain.live) == cdrom_drives(domain.defined) == 0
    assert domain.running


class StuckDomain(StaleTrayDomain):
    """Nothing works: neither the eject nor the drive's removal."""

    def detachDeviceFlags(self, xml: str, flags: int) -> int:
        raise refusal("internal error: unable to execute QEMU command 'device_del'")


class FakeClock:
    """The adapter's clock: sleeping moves it on at once, so the attempts made before the
    deadline are the schedule's, not the machine's (a slow minute changes nothing)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_medium_that_never_goes_is_one_error_naming_the_attempts_and_why(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr("builder.virt.hypervisor.time", clock)
    domain = StuckDomain(refusals=0)
    handle = DomainHandle(domain)
    with pytest.raises(VirtError) as info:
        handle.eject(seed_cdrom(SEED), timeout=1.5)
    # Pauses of 0.2, 0.4 and 0.8 s, then what is left of the 1.5 s: four attempts, given up at
    # the deadline and not before.
    assert clock.sleeps == pytest.approx([0.2, 0.4, 0.8, 0.1])
    assert clock.now == pytest.approx(1001.5)
    message = info.value.message
    assert message == (f"he-engine-dc1: the medium {SEED} is still in sda (libvirt says its "
                       "tray is unknown) after 4 eject attempts in 1.5 s: cannot remove disk "
                       "sda of he-engine-dc1: internal error: unable to execute QEMU command "
                       "'device_del'")
    assert info.value.hint == "virsh change-media he-engine-dc1 sda --eject --force"
    assert domain.running  # resumed after every paused attempt
