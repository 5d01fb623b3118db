"""he-launch's inputs and domain lifecycle on libvirt's test driver (and one real libvirtd start).

The test driver runs no guest, so its channel never opens: every launch here ends in the boot
timeout (exit 21), which is what exercises the failure cleanup; `--keep` leaves the defined
domain and its files to inspect. Booting for real is the vm tier's job.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pycdlib
import pytest
import yaml
from lxml import etree

from builder.cli.he_launch import main
from builder.errors import IntegrityError
from builder.launch.hostnet import RESOLV_CONFS, read_dns_servers
from builder.launch.image import prepare_disk
from builder.repro import sha256_file
from builder.virt.domain import DomainSpec, render_domain_xml
from builder.virt.hypervisor import Hypervisor
from tests.fixtures.appliance import DemoAppliance, demo_appliance
from tests.integration.test_domain_hypervisor import tiny_domain

pytestmark = pytest.mark.integration
__all__ = ["demo_appliance"]

TEST_URI = "test:///default"
NAME = "he-engine-drv"
SITE_MAC = "00:16:3e:11:22:33"
INVENTORY = f"""
sites:
  drv:
    fqdn: engine.drv.example.com
    vcpus: 1
    memory_mib: 1024
    root_password: file:root-password
    admin_password: file:admin-password
    network: {{mode: dhcp, mac: "{SITE_MAC}"}}
"""


def launch(appliance: Path, storage: Path, *extra: str, seed: tuple[str, ...] = ("--no-seed",),
           nic: tuple[str, ...] = ("--no-network",)) -> int:
    return main(["--appliance", str(appliance), *seed, "--site", "drv", *nic, "--uri", TEST_URI,
                 "--storage", str(storage), "--boot-timeout", "1", *extra])


@pytest.fixture
def driver() -> Iterator[Hypervisor]:
    """The test driver's state lives while a connection is open: this one spans the test."""
    with Hypervisor(TEST_URI) as hv:
        yield hv
        handle = hv.lookup(NAME)
        if handle is not None:
            handle.remove()


def kept_domain(hv: Hypervisor) -> etree._Element:
    handle = hv.require(NAME)
    try:
        return etree.fromstring(handle.xml())
    finally:
        handle.remove()


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    folder = tmp_path / "inventory"
    folder.mkdir()
    for name in ("root-password", "admin-password"):
        (folder / name).write_text("Secret-pass-4-tests\n")
        (folder / name).chmod(0o600)
    (folder / "inventory.yaml").write_text(INVENTORY)
    return folder / "inventory.yaml"


def iso_document(iso: Path, name: str) -> Any:
    image = pycdlib.PyCdlib()
    image.open(str(iso))
    try:
        buffer = io.BytesIO()
        image.get_file_from_iso_fp(buffer, rr_path=f"/{name}")
        return yaml.safe_load(buffer.getvalue())
    finally:
        image.close()


def backing_file(overlay: Path) -> Path:
    done = subprocess.run(["qemu-img", "info", "--output=json", "-U", str(overlay)],
                          capture_output=True, text=True, check=True)
    return Path(json.loads(done.stdout)["backing-filename"])


def test_an_existing_domain_is_refused_then_replaced_and_cleaned_up(
    demo_appliance: DemoAppliance, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    with Hypervisor(TEST_URI) as hv:
        old = hv.define(render_domain_xml(DomainSpec(
            name=NAME, uuid=uuid.uuid4(), virt_type="qemu", memory_mib=64, vcpus=1)))
        try:
            assert launch(demo_appliance.ova, tmp_path) == 2
            assert "already exists" in capsys.readouterr().err
            assert hv.lookup(NAME) is not None

            assert launch(demo_appliance.ova, tmp_path, "--replace", "--json") == 21
            captured = capsys.readouterr()
            assert "replacing the existing domain" in captured.err
            assert f"removed the domain {NAME}" in captured.err
            assert hv.lookup(NAME) is None
        finally:
            old.remove()
    # The failure's JSON says how far the launch got and where its logs are.
    failure = json.loads(captured.out)
    assert failure["exit_code"] == 21 and failure["ok"] is False
    assert "boot timeout" in failure["error"]
    assert failure["site"] == "drv" and failure["domain"] == NAME
    assert failure["virt_type"] == "qemu" and failure["virt_reason"]
    assert {"prepare", "start", "boot"} <= set(failure["durations"])
    assert failure["console_log"] == str(tmp_path / "drv" / "console.log")
    assert failure["transcript"] == str(tmp_path / "drv" / "engine-setup.log")
    assert failure["firmware"] == "bios"
    # The overlay (it may hold the seed's secrets) went with the domain; the logs stay, 0600.
    assert f"removed {tmp_path / 'drv' / 'engine-overlay.qcow2'}" in captured.err
    assert sorted(p.name for p in (tmp_path / "drv").iterdir()) == ["console.log"]
    assert (tmp_path / "drv" / "console.log").stat().st_mode & 0o777 == 0o600


def test_keep_leaves_the_failed_domain_for_inspection(
    demo_appliance: DemoAppliance, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    driver: Hypervisor,
) -> None:
    assert launch(demo_appliance.ova, tmp_path, "--keep") == 21
    err = capsys.readouterr().err
    assert "kept the domain" in err and "removed" not in err
    kept = driver.lookup(NAME)
    assert kept is not None and kept.is_persistent()
    assert (tmp_path / "drv" / "engine-overlay.qcow2").exists()  # what the domain boots


def test_uefi_asked_for_boots_ovmf_with_its_variables_in_the_site_directory(
    demo_appliance: DemoAppliance, tmp_path: Path, driver: Hypervisor,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert launch(demo_appliance.ova, tmp_path, "--keep", "--firmware", "uefi") == 21
    assert "firmware: uefi (--firmware)" in capsys.readouterr().err
    os_el = kept_domain(driver).find("os")
    assert os_el is not None and os_el.get("firmware") == "efi"
    assert os_el.findtext("nvram") == str(tmp_path / "drv" / "nvram.fd")


def test_the_appliance_s_firmware_is_the_default(
    demo_appliance: DemoAppliance, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert launch(demo_appliance.ova, tmp_path) == 21
    assert "firmware: bios (the appliance's OVF)" in capsys.readouterr().err


def test_a_mac_other_than_the_seed_s_is_refused_before_any_disk_work(
    demo_appliance: DemoAppliance, tmp_path: Path, inventory: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    storage = tmp_path / "storage"
    assert launch(demo_appliance.ova, storage, "--mac", "00:16:3e:00:00:99",
                  seed=("--inventory", str(inventory))) == 2
    err = capsys.readouterr().err
    assert (f"--mac 00:16:3e:00:00:99 is not the MAC the seed configures ({SITE_MAC})"
            in err)
    assert sorted(p.name for p in (storage / "drv").iterdir()) == []  # seed copies removed
    assert not (storage / "images").exists()


def test_storage_on_the_test_driver_is_private_whatever_the_umask(
    demo_appliance: DemoAppliance, tmp_path: Path, inventory: Path, driver: Hypervisor,
) -> None:
    """The test driver runs no qemu of its own user: every directory is 0700, file 0600."""
    storage = tmp_path / "storage"
    previous = os.umask(0)
    try:
        assert launch(demo_appliance.rpm, storage, "--keep",
                      seed=("--inventory", str(inventory))) == 21
    finally:
        os.umask(previous)
    kept_domain(driver)
    # The rendered seed's public files (he-build seed's layout) sit in its 0700 directory.
    public = {"meta-data", "manifest.json"}
    loose = [f"{p} {p.stat().st_mode & 0o777:o}" for p in [storage, *storage.rglob("*")]
             if p.stat().st_mode & 0o077 and p.name not in public]
    assert loose == []
    assert (storage / "drv" / "seed").stat().st_mode & 0o777 == 0o700
    base = next((storage / "images").glob("*/disk.qcow2"))
    assert base.stat().st_mode & 0o777 == 0o400


def test_the_domain_has_the_disk_overlay_seed_channel_console_and_site_mac(
    demo_appliance: DemoAppliance, tmp_path: Path, inventory: Path, driver: Hypervisor,
) -> None:
    storage = tmp_path / "storage"
    assert launch(demo_appliance.ova, storage, "--keep", seed=("--inventory", str(inventory)),
                  nic=("--bridge", "he-nobr0")) == 21
    root = kept_domain(driver)
    workdir = storage / "drv"
    # memory and vCPUs come from the OVF, not from the inventory's numbers
    assert root.findtext("memory") == str(1024 * 1024) and root.findtext("vcpu") == "2"
    assert root.get("type") == "qemu" and root.find("devices/graphics") is None
    overlay = Path(str(root.xpath("string(devices/disk[@device='disk']/source/@file)")))
    assert overlay == workdir / "engine-overlay.qcow2"
    cdrom = root.find("devices/disk[@device='cdrom']")
    assert cdrom is not None and cdrom.find("readonly") is not None
    seed = Path(str(cdrom.xpath("string(source/@file)")))
    assert seed == workdir / "seed.iso" and seed.stat().st_mode & 0o777 == 0o600
    assert iso_document(seed, "user-data")["fqdn"] == "engine.drv.example.com"
    assert root.xpath("devices/channel[@type='unix']/target/@name") == [
        "org.ovirt.hosted-engine-setup.0"]
    assert root.xpath("devices/serial[@type='file']/source/@path") == [
        str(workdir / "console.log")]
    assert root.xpath("devices/interface[@type='bridge']/mac/@address") == [SITE_MAC]
    # The overlay is backed by the pristine image, which still matches the OVA's manifest.
    base = backing_file(overlay)
    assert base.parent.parent == storage / "images"
    assert sha256_file(base) == json.loads((base.parent / "unpacked.json").read_text())["sha256"]


def test_memory_and_vcpus_can_be_overridden(
    demo_appliance: DemoAppliance, tmp_path: Path, driver: Hypervisor,
) -> None:
    assert launch(demo_appliance.ova, tmp_path, "--keep", "--memory", "1536", "--vcpus",
                  "1") == 21
    root = kept_domain(driver)
    assert root.findtext("memory") == str(1536 * 1024) and root.findtext("vcpu") == "1"


def test_network_from_host_renders_a_static_seed_in_the_hosts_subnet(
    demo_appliance: DemoAppliance, tmp_path: Path, inventory: Path, driver: Hypervisor,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On the loopback: the only interface whose address is the same on every machine."""
    assert launch(demo_appliance.ova, tmp_path, "--keep", "--network-from-host", "lo",
                  "--address", "127.0.0.10", seed=("--inventory", str(inventory))) == 21
    kept_domain(driver)
    assert "host network of lo: 127.0.0.1/8, gateway none" in capsys.readouterr().err
    config = iso_document(tmp_path / "drv" / "seed.iso", "network-config")
    text = json.dumps(config)
    assert "127.0.0.10/8" in text and "gateway4" not in text and "via" not in text
    for server in read_dns_servers(RESOLV_CONFS):
        assert str(server) in text


@pytest.mark.parametrize("kind", ["ova", "rpm", "installed-dir", "installed-ova"])
def test_every_appliance_input_reaches_the_same_unpacked_image(
    demo_appliance: DemoAppliance, tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str],
) -> None:
    storage = tmp_path / "storage"
    appliance = {"ova": demo_appliance.ova, "rpm": demo_appliance.rpm}.get(kind)
    if appliance is None:  # what the installed appliance RPM leaves on a host
        root = tmp_path / "root"
        subprocess.run(["rpm", "--root", str(root), "--dbpath", "/rpmdb", "--nodeps",
                        "--noscripts", "--nosignature", "-i", str(demo_appliance.rpm)],
                       check=True, capture_output=True)
        appliance = root / "usr/share/ovirt-engine-appliance"
        if kind == "installed-ova":
            appliance = next(appliance.glob("*.ova"))
    assert launch(appliance, storage) == 21
    assert launch(appliance, storage) == 21
    err = capsys.readouterr().err
    assert err.count("(unpacked; manifest verified)") == 1, err
    assert err.count("(reused; verified before, unchanged)") == 1, err
    images = [p for p in (storage / "images").iterdir() if p.name != "verified"]
    assert len(images) == 1
    assert (images[0] / "disk.qcow2").stat().st_mode & 0o222 == 0  # kept read-only


def test_a_vm_that_cannot_start_is_exit_20_with_one_line(
    demo_appliance: DemoAppliance, launch_storage: Path, libvirt_uri: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On the real libvirtd: a network that does not exist stops qemu from starting."""
    code = main(["--appliance", str(demo_appliance.ova), "--no-seed", "--site", "nostart",
                 "--network", "he-no-such-network", "--uri", libvirt_uri, "--storage",
                 str(launch_storage), "--virt-type", "qemu", "--json"])
    captured = capsys.readouterr()
    assert code == 20, captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("he-launch: error")]
    assert len(errors) == 1 and "the VM did not start" in errors[0]
    assert "he-no-such-network" in errors[0]
    assert json.loads(captured.out)["exit_code"] == 20
    with Hypervisor(libvirt_uri) as hv:
        assert hv.lookup("he-engine-nostart") is None
    shutil.rmtree(launch_storage / "nostart", ignore_errors=True)


def flip_byte(path: Path, offset: int) -> None:
    """Change one byte in place and set the mtime back, as a careful tamperer would."""
    st = path.stat()
    with path.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_verification_is_skipped_only_for_the_unchanged_file(
    demo_appliance: DemoAppliance, tmp_path: Path,
) -> None:
    ova = tmp_path / "appliance.ova"
    shutil.copyfile(demo_appliance.ova, ova)
    images, overlay = tmp_path / "images", tmp_path / "overlay.qcow2"
    first = prepare_disk(ova, images, overlay)
    again = prepare_disk(ova, images, overlay)
    assert (first.verified_before, first.reused) == (False, False)
    assert (again.verified_before, again.reused) == (True, True)
    assert again.info == first.info and again.base == first.base
    flip_byte(ova, ova.stat().st_size // 2)
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        prepare_disk(ova, images, overlay)


def test_a_tampered_disk_on_first_use_leaves_no_image_and_no_record(
    demo_appliance: DemoAppliance, tmp_path: Path,
) -> None:
    ova = tmp_path / "appliance.ova"
    shutil.copyfile(demo_appliance.ova, ova)
    flip_byte(ova, ova.stat().st_size // 2)
    images = tmp_path / "images"
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        prepare_disk(ova, images, tmp_path / "overlay.qcow2")
    assert sorted(p.name for p in images.iterdir()) == ["verified"]
    assert list((images / "verified").iterdir()) == []
    assert not (tmp_path / "overlay.qcow2").exists()


def test_a_written_base_image_is_unpacked_again(
    demo_appliance: DemoAppliance, tmp_path: Path,
) -> None:
    images, overlay = tmp_path / "images", tmp_path / "overlay.qcow2"
    base = prepare_disk(demo_appliance.ova, images, overlay).base
    base.chmod(0o644)
    with base.open("r+b") as handle:  # a plain write: its mtime changes
        handle.seek(1 << 20)
        handle.write(b"\xff")
    again = prepare_disk(demo_appliance.ova, images, overlay)
    assert again.verified_before and not again.reused
    assert sha256_file(again.base) == again.info.disk_sha256
    assert backing_file(overlay) == again.base.resolve()


def test_auto_picks_what_really_starts_here_and_says_why(
    demo_appliance: DemoAppliance, launch_storage: Path, libvirt_uri: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On the real libvirtd. Here KVM is offered but broken (nested virtualisation is off), so
    this takes the fallback; on a host where KVM works it checks that kvm is kept."""
    with Hypervisor(libvirt_uri) as hv:
        started = hv.start_domain(tiny_domain(f"he-auto-{uuid.uuid4().hex[:6]}"), "auto")
        expected = started.virt_type
        started.handle.remove()
    code = main(["--appliance", str(demo_appliance.ova), "--no-seed", "--site", "autovirt",
                 "--no-network", "--uri", libvirt_uri, "--storage", str(launch_storage),
                 "--virt-type", "auto", "--boot-timeout", "1", "--json"])
    captured = capsys.readouterr()
    assert code == 21, captured.err
    failure = json.loads(captured.out)
    assert failure["virt_type"] == expected
    assert f"virtualization: {expected} ({failure['virt_reason']})" in captured.err
    if expected == "qemu":
        assert "KVM does not work here" in failure["virt_reason"] or "/dev/kvm" in \
            failure["virt_reason"]
    with Hypervisor(libvirt_uri) as hv:
        assert hv.lookup("he-engine-autovirt") is None
    shutil.rmtree(launch_storage / "autovirt", ignore_errors=True)


def test_the_unpacked_image_is_reused_after_a_real_start(
    demo_appliance: DemoAppliance, launch_storage: Path, libvirt_uri: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On the real libvirtd, which chowns a backing file to qemu's user for a boot and back."""
    args = ["--appliance", str(demo_appliance.ova), "--no-seed", "--site", "reuse",
            "--no-network", "--uri", libvirt_uri, "--storage", str(launch_storage),
            "--virt-type", "qemu", "--boot-timeout", "1"]
    assert main(args) == 21
    assert main(args) == 21
    last = capsys.readouterr().err.split("==> verifying the appliance")[-1]
    assert "(reused; verified before, unchanged)" in last
    shutil.rmtree(launch_storage / "reuse", ignore_errors=True)
