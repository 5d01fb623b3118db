"""Golden domain XML: the rendered documents, reviewed like code and checked by libvirt's schema.

Regenerate after an intended change (tests/golden/README.md):
`.venv/bin/python -m pytest tests/integration/test_domain_xml.py --regen-golden`.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from lxml import etree

from builder.launch.vm import NicChoice, build_engine_spec
from builder.virt.domain import (
    ChannelDevice,
    DirectBoot,
    DiskDevice,
    DomainSpec,
    NicDevice,
    render_domain_xml,
)
from tests.fixtures.golden import GOLDEN_DIR, GoldenFiles

pytestmark = pytest.mark.integration

WORK = Path("/var/tmp/he-launch/dc1")


def engine_with_seed_and_network() -> DomainSpec:
    return build_engine_spec(
        name="he-engine-dc1", virt_type="qemu", memory_mib=4096, vcpus=2,
        overlay=WORK / "engine-overlay.qcow2", seed=WORK / "seed.iso",
        nic=NicChoice(network="he-test-isolated"), mac="00:16:3e:12:34:56",
        console_log=WORK / "console.log")


def engine_on_bridge_kvm() -> DomainSpec:
    return build_engine_spec(
        name="he-engine-dc2", virt_type="kvm", memory_mib=16384, vcpus=4,
        overlay=WORK / "engine-overlay.qcow2", seed=WORK / "seed.iso",
        nic=NicChoice(bridge="ovirtmgmt"), mac="00:16:3e:ab:cd:ef",
        console_log=WORK / "console.log")


def engine_without_nic_or_seed() -> DomainSpec:
    return build_engine_spec(
        name="he-engine-lab", virt_type="qemu", memory_mib=1024, vcpus=1,
        overlay=WORK / "engine-overlay.qcow2", seed=None, nic=NicChoice(), mac=None,
        console_log=WORK / "console.log")


def engine_uefi() -> DomainSpec:
    return build_engine_spec(
        name="he-engine-dc3", virt_type="kvm", memory_mib=16384, vcpus=4,
        overlay=WORK / "engine-overlay.qcow2", seed=WORK / "seed.iso",
        nic=NicChoice(network="he-test-isolated"), mac="00:16:3e:00:00:03",
        console_log=WORK / "console.log", firmware="uefi", nvram=WORK / "nvram.fd")


def installer_direct_boot() -> DomainSpec:
    return DomainSpec(
        name="he-installer", uuid=uuid.UUID("8c9d7b1e-2f4a-5c3d-9e8f-0a1b2c3d4e5f"),
        virt_type="qemu", memory_mib=2048, vcpus=2,
        disks=(DiskDevice(Path("/var/tmp/build/disk.raw"), "vda", format="raw"),
               DiskDevice(Path("/var/tmp/build/ks.iso"), "sda", format="raw", device="cdrom",
                          bus="scsi", readonly=True)),
        channels=(ChannelDevice("org.example.installer.0", Path("/var/tmp/build/inst.sock")),),
        nics=(NicDevice("00:16:3e:00:00:01", network="he-test-isolated"),),
        serial_log=None,
        direct_boot=DirectBoot(Path("/var/tmp/build/vmlinuz"), Path("/var/tmp/build/initrd.img"),
                               "console=ttyS0 inst.ks=cdrom:/ks.cfg"),
        on_reboot="destroy")


VARIANTS = {
    "engine-seed-network": engine_with_seed_and_network,
    "engine-bridge-kvm": engine_on_bridge_kvm,
    "engine-no-nic-no-seed": engine_without_nic_or_seed,
    "engine-uefi": engine_uefi,
    "installer-direct-boot": installer_direct_boot,
}


def golden_name(variant: str) -> str:
    return f"domain-{variant}.xml"


def golden_names() -> set[str]:
    """Every golden file this module checks (tests/unit/test_golden_files.py uses it)."""
    return {golden_name(variant) for variant in VARIANTS}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_domain_xml_matches_golden_file(golden: GoldenFiles, variant: str) -> None:
    golden.check(golden_name(variant), render_domain_xml(VARIANTS[variant]()))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_golden_domain_xml_is_valid_for_libvirt(variant: str) -> None:
    golden = GOLDEN_DIR / golden_name(variant)
    done = subprocess.run(["virt-xml-validate", str(golden), "domain"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_engine_domain_has_no_graphics_and_reports_over_the_hosted_engine_channel() -> None:
    root = etree.fromstring(render_domain_xml(engine_with_seed_and_network()))
    assert root.find("devices/graphics") is None
    assert root.find("devices/video") is None
    assert root.xpath("devices/channel[@type='unix']/target/@name") == [
        "org.ovirt.hosted-engine-setup.0"]
    assert root.xpath("devices/serial[@type='file']/source/@path") == [str(WORK / "console.log")]
    cdrom = root.find("devices/disk[@device='cdrom']")
    assert cdrom is not None and cdrom.find("readonly") is not None
    assert root.xpath("devices/interface/mac/@address") == ["00:16:3e:12:34:56"]


def test_a_value_with_markup_stays_text() -> None:
    spec = build_engine_spec(
        name="he-engine-x", virt_type="qemu", memory_mib=1024, vcpus=1,
        overlay=Path("/tmp/a'b\"<c>&.qcow2"), seed=None, nic=NicChoice(), mac=None,
        console_log=Path("/tmp/log"))
    root = etree.fromstring(render_domain_xml(spec))
    assert root.xpath("devices/disk/source/@file") == ["/tmp/a'b\"<c>&.qcow2"]


def test_a_nic_needs_exactly_one_attachment() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        NicDevice("00:16:3e:00:00:01")
    with pytest.raises(ValueError, match="exactly one"):
        NicDevice("00:16:3e:00:00:01", network="a", bridge="b")


def test_uefi_boots_ovmf_without_secure_boot_and_keeps_its_variables_beside_the_disk() -> None:
    """Like oVirt's role (`--boot uefi,loader.secure=no`): libvirt picks the OVMF build from
    the host's firmware descriptors, with secure boot and enrolled keys off."""
    root = etree.fromstring(render_domain_xml(engine_uefi()))
    os_el = root.find("os")
    assert os_el is not None and os_el.get("firmware") == "efi"
    features = {f.get("name"): f.get("enabled") for f in os_el.iterfind("firmware/feature")}
    assert features == {"secure-boot": "no", "enrolled-keys": "no"}
    assert os_el.findtext("nvram") == str(WORK / "nvram.fd")
    assert os_el.find("loader") is None  # autoselected: the same XML on Debian and EL hosts
    bios = etree.fromstring(render_domain_xml(engine_with_seed_and_network())).find("os")
    assert bios is not None and bios.get("firmware") is None and bios.find("nvram") is None


def test_the_overlay_passes_discards_and_the_seed_is_optional() -> None:
    root = etree.fromstring(render_domain_xml(engine_with_seed_and_network()))
    driver = root.find("devices/disk[@device='disk']/driver")
    assert driver is not None
    assert (driver.get("discard"), driver.get("detect_zeroes")) == ("unmap", "unmap")
    assert root.xpath("devices/disk[@device='cdrom']/source/@startupPolicy") == ["optional"]
