"""The libvirt adapter against libvirt's in-process test driver and the real libvirtd."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import libvirt
import pytest
from lxml import etree

from builder.launch.vm import seed_cdrom
from builder.virt.domain import DomainSpec, Firmware, VirtType, render_domain_xml
from builder.virt.errors import DomainNotFoundError, VmStartError
from builder.virt.hypervisor import Hypervisor

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
TEST_URI = "test:///default"


@pytest.mark.parametrize("golden", sorted(GOLDEN.glob("domain-*.xml")), ids=lambda p: p.stem)
def test_every_golden_domain_defines_on_the_test_driver(golden: Path) -> None:
    with Hypervisor(TEST_URI) as hv:
        handle = hv.define(golden.read_bytes())
        try:
            live = etree.fromstring(handle.xml())
            sent = etree.fromstring(golden.read_bytes())
            assert live.findtext("name") == sent.findtext("name")
            assert live.get("type") == sent.get("type")
            assert len(live.findall("devices/disk")) == len(sent.findall("devices/disk"))
            assert hv.lookup(handle.name) is not None
        finally:
            handle.remove()
        assert hv.lookup(handle.name) is None


def test_a_persistent_domain_starts_and_is_removed_without_a_trace() -> None:
    xml = (GOLDEN / "domain-engine-seed-network.xml").read_bytes()
    with Hypervisor(TEST_URI) as hv:
        handle = hv.create(xml, persistent=True)
        assert handle.is_active() and handle.is_persistent()
        handle.remove()
        assert hv.lookup("he-engine-dc1") is None


def test_a_transient_domain_vanishes_when_destroyed() -> None:
    xml = (GOLDEN / "domain-engine-no-nic-no-seed.xml").read_bytes()
    with Hypervisor(TEST_URI) as hv:
        handle = hv.create(xml)
        assert not handle.is_persistent()
        assert not handle.wait_for_shutdown(0.3)
        handle.destroy()
        assert handle.wait_for_shutdown(5)
        assert hv.lookup("he-engine-lab") is None


def test_libvirt_failures_become_typed_errors() -> None:
    broken = render_domain_xml(DomainSpec(name="he-dup", uuid=uuid.uuid4(), virt_type="qemu",
                                          memory_mib=64, vcpus=1))
    with Hypervisor(TEST_URI) as hv:
        first = hv.create(broken)
        try:
            with pytest.raises(VmStartError) as caught:
                hv.create(broken)
            assert caught.value.exit_code == 20
            assert "he-dup" in caught.value.message
        finally:
            first.destroy()
        with pytest.raises(DomainNotFoundError):
            hv.require("no-such-domain")


def tiny_domain(name: str) -> Callable[[VirtType], bytes]:
    def xml(virt_type: VirtType) -> bytes:
        return render_domain_xml(DomainSpec(name=name, uuid=uuid.uuid4(), virt_type=virt_type,
                                            memory_mib=32, vcpus=1))
    return xml


def test_the_test_driver_offers_no_kvm() -> None:
    with Hypervisor(TEST_URI) as hv:
        started = hv.start_domain(tiny_domain("he-auto-test"), "auto")
        try:
            assert started.virt_type == "qemu" and started.why
            assert etree.fromstring(started.handle.xml()).get("type") == "qemu"
        finally:
            started.handle.remove()


def test_auto_keeps_what_really_starts_on_libvirtd(libvirt_uri: str) -> None:
    """kvm only when a KVM domain starts here (nested hosts expose a /dev/kvm that fails);
    whatever is chosen is running, with the reason said."""
    name = f"he-auto-check-{uuid.uuid4().hex[:6]}"
    with Hypervisor(libvirt_uri) as hv:
        started = hv.start_domain(tiny_domain(name), "auto")
        try:
            assert started.handle.is_active(), started.why
            assert etree.fromstring(started.handle.xml()).get("type") == started.virt_type
            offered, _ = hv.kvm_offered()
            if offered and started.virt_type == "qemu":
                assert started.why.startswith("KVM does not work here: ")
        finally:
            started.handle.remove()
        assert hv.lookup(name) is None


def test_a_named_virt_type_is_used_as_asked(libvirt_uri: str) -> None:
    name = f"he-asked-{uuid.uuid4().hex[:6]}"
    with Hypervisor(libvirt_uri) as hv:
        started = hv.start_domain(tiny_domain(name), "qemu")
        try:
            assert (started.virt_type, started.why) == ("qemu", "asked for")
            assert etree.fromstring(started.handle.xml()).get("type") == "qemu"
        finally:
            started.handle.remove()


@pytest.mark.parametrize("persistent", [False, True], ids=["transient", "persistent"])
def test_eject_leaves_no_medium_in_the_live_or_defined_domain(
    libvirt_uri: str, launch_storage: Path, persistent: bool,
) -> None:
    """On the real libvirtd: a small guest with nothing to boot, and a CD-ROM to eject."""
    medium = launch_storage / f"medium-{persistent}.iso"
    medium.write_bytes(bytes(64 * 2048))
    cdrom = seed_cdrom(medium)
    spec = DomainSpec(name=f"he-eject-{uuid.uuid4().hex[:6]}", uuid=uuid.uuid4(),
                      virt_type="qemu", memory_mib=32, vcpus=1, disks=(cdrom,))
    with Hypervisor(libvirt_uri) as hv:
        handle = hv.create(render_domain_xml(spec), persistent=persistent)
        try:
            assert handle.disk_sources("sda") == [str(medium)] * (2 if persistent else 1)
            ejection = handle.eject(cdrom)
            print(f"eject of {spec.name}: {ejection}")  # counted by the 20-run check
            assert handle.disk_sources("sda") == []
            live = etree.fromstring(handle.xml())
            # The drive stays, unless its removal was the last resort (see DomainHandle.eject).
            drives = live.findall("devices/disk[@device='cdrom']")
            assert len(drives) == (0 if ejection.drive_removed else 1)
        finally:
            handle.remove()
        assert hv.lookup(spec.name) is None


@pytest.mark.parametrize("persistent", [False, True], ids=["transient", "persistent"])
def test_the_eject_s_last_resort_removes_the_drive_on_the_real_libvirtd(
    libvirt_uri: str, launch_storage: Path, persistent: bool,
) -> None:
    """When libvirt cannot open the tray (see DomainHandle.eject), the drive goes instead: a
    virtio-scsi CD-ROM unplugs from a running guest, from the live and the defined domain."""
    medium = launch_storage / f"unplug-{persistent}.iso"
    medium.write_bytes(bytes(64 * 2048))
    cdrom = seed_cdrom(medium)
    spec = DomainSpec(name=f"he-unplug-{uuid.uuid4().hex[:6]}", uuid=uuid.uuid4(),
                      virt_type="qemu", memory_mib=32, vcpus=1, disks=(cdrom,))
    with Hypervisor(libvirt_uri) as hv:
        handle = hv.create(render_domain_xml(spec), persistent=persistent)
        try:
            handle.detach_disk(cdrom, live=True, config=persistent)
            assert handle.medium_sources("sda") == ([], [])
            documents = [handle.xml()]
            if persistent:
                documents.append(handle.domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
            for document in documents:
                assert etree.fromstring(document).find("devices/disk") is None
            assert handle.is_active()
        finally:
            handle.remove()


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_removing_a_persistent_domain_takes_its_uefi_variables_with_it(
    libvirt_uri: str, launch_storage: Path, firmware: Firmware,
) -> None:
    """The real libvirtd: a UEFI guest's variables file (made from the template at its start)
    goes with its definition; a BIOS guest, which has none, is undefined all the same."""
    nvram = launch_storage / f"nvram-{firmware}.fd"
    spec = DomainSpec(name=f"he-undefine-{uuid.uuid4().hex[:6]}", uuid=uuid.uuid4(),
                      virt_type="qemu", memory_mib=64, vcpus=1, firmware=firmware,
                      nvram=nvram if firmware == "uefi" else None)
    with Hypervisor(libvirt_uri) as hv:
        handle = hv.create(render_domain_xml(spec), persistent=True)
        try:
            assert nvram.exists() == (firmware == "uefi")
        finally:
            handle.remove()
        assert hv.lookup(spec.name) is None
    assert not nvram.exists()
