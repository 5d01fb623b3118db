"""The golden files, read by what reads them for real: a regenerate that writes something a
consumer refuses, or reads differently, fails here (the files are read from tests/golden/, not
rendered again). Domain XMLs are validated in tests/integration/test_domain_xml.py.

Consumers: Debian's cloud-init 22.4, nmcli and sshd (unpacked as test_seed_cloudinit.py does),
dash and bash, otopi's reading of the answer file, DMTF's OVF schema through xmllint,
hosted-engine-setup's reading of an OVA (test_ova_pack.py's helper) and virt-v2v's, rpmbuild
and rpm, hosted-engine's and the Ansible role's reading of the discovery file, he-launch's
reading of the metadata JSON, and ksvalidator.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from builder.inventory.models import Site
from builder.model import Firmware
from builder.ova.pack import names_for
from builder.release.gates import check_kickstart, check_ovf_schema
from builder.rpm.metadata import (
    ImageKind,
    parse_metadata,
    read_like_hosted_engine,
    read_like_the_role,
    rpm_layout,
)
from builder.rpm.rpmbuild import STORED_PAYLOAD, rpm_defines
from builder.seed.answers import ParsedValue, build_answers, check_answers
from builder.seed.runner import RUNNER_PATH
from tests.fixtures.golden import GOLDEN_DIR
from tests.fixtures.golden_inputs import (
    APPLIANCE,
    DISK_VIRTUAL_SIZE,
    FIRMWARES,
    PACKAGES,
    REPO,
    RPM_IMAGE_BYTES,
    SITES,
    SOURCE_DATE_EPOCH,
    appliance,
    example_sites,
    site_secrets,
)
from tests.integration import test_seed_cloudinit
from tests.integration.test_ova_pack import hosted_engine_reads, virt_v2v_source
from tests.integration.test_seed_cloudinit import CloudInit

pytestmark = pytest.mark.integration
# The unpacked cloud-init, nmcli and sshd of test_seed_cloudinit.py, as fixtures here too.
cloud_init = test_seed_cloudinit.cloud_init
nmcli = test_seed_cloudinit.nmcli
sshd = test_seed_cloudinit.sshd

GIB = 1 << 30
KINDS: tuple[ImageKind, ...] = ("ova", "qcow2")
Nmcli = Callable[..., subprocess.CompletedProcess[str]]


def golden(name: str) -> Path:
    path = GOLDEN_DIR / name
    assert path.is_file(), f"no golden file tests/golden/{name}"
    return path


def site_of(name: str) -> Site:
    return example_sites()[name]


# --- seed ---------------------------------------------------------------------------------


@pytest.mark.parametrize("site", SITES)
def test_cloud_init_accepts_the_golden_user_data(cloud_init: CloudInit, site: str) -> None:
    result = cloud_init("schema", "--config-file", str(golden(f"seed/{site}/user-data")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


def test_cloud_init_renders_the_golden_network_config(cloud_init: CloudInit,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cloud_init("devel", "net-convert", "--network-data",
                        str(golden("seed/dc2/network-config")), "--kind", "yaml",
                        "--directory", str(out), "--distro", "centos",
                        "--output-kind", "network-manager")
    assert result.returncode == 0, result.stdout + result.stderr
    rendered = "\n".join(p.read_text() for p in out.rglob("*") if p.is_file())
    for expected in ("address1=198.51.100.10/24", "gateway=198.51.100.1",
                     "address1=2001:db8:2::10/64", "gateway=2001:db8:2::1",
                     "mac-address=00:16:3E:00:02:10", "dns=198.51.100.53;"):
        assert expected in rendered, rendered


def keyfile_settings(text: str) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return {name: dict(parser[name]) for name in parser.sections() if parser[name]}


def as_networkmanager_writes_it(settings: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """NetworkManager's own spelling of the same profile: the gateway joined to the first
    address, default values left out."""
    normal = {name: dict(values) for name, values in settings.items()}
    for family in ("ipv4", "ipv6"):
        if "gateway" in normal[family]:
            gateway = normal[family].pop("gateway")
            normal[family]["address1"] += f",{gateway}"
    if normal["connection"].get("autoconnect") == "true":
        del normal["connection"]["autoconnect"]
    return normal


@pytest.mark.parametrize("site", SITES)
def test_networkmanager_keeps_every_setting_of_the_golden_keyfile(nmcli: Nmcli,
                                                                  site: str) -> None:
    """nmcli drops a value it cannot use (e.g. an IPv4 DNS server under [ipv6]) without
    failing: its normalized profile must hold every setting of the golden file."""
    keyfile = golden(f"seed/{site}/guest/hosted-engine.nmconnection").read_text()
    # A no-op modification: nmcli parses, verifies and normalizes the profile, then prints it.
    result = nmcli("--offline", "connection", "modify", "connection.id", "hosted-engine",
                   stdin=keyfile)
    assert result.returncode == 0, result.stderr
    assert keyfile_settings(result.stdout) == as_networkmanager_writes_it(
        keyfile_settings(keyfile))
    assert keyfile_settings(keyfile)["ethernet"]["mac-address"] == \
        site_of(site).mac.upper()


def test_sshd_applies_the_golden_root_login_drop_in(sshd: Path, tmp_path: Path) -> None:
    applied = test_seed_cloudinit.sshd_applies(sshd, tmp_path, {
        "00-he-root-login.conf": golden("seed/dc1/guest/00-he-root-login.conf").read_text(),
        "01-permitrootlogin.conf": "PermitRootLogin yes\n",  # Anaconda's
    })
    assert applied["permitrootlogin"] == "without-password"  # sshd -T's prohibit-password
    assert applied["passwordauthentication"] == "no"


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_the_golden_runner_parses_in_the_guest_shells(shell: str) -> None:
    """cloud-init runs it as `/bin/sh RUNNER`: bash on EL9, dash on Debian."""
    runner = golden("seed/he-run-engine-setup")
    done = subprocess.run([shell, "-n", str(runner)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    user_data = yaml.safe_load(golden("seed/dc1/user-data").read_text())
    assert user_data["runcmd"] == [["/bin/sh", RUNNER_PATH]]


def expected_environment(site: str) -> dict[str, ParsedValue]:
    sections = build_answers(site_of(site), site_secrets(site).admin_password)
    return {answer.key: list(answer.value) if isinstance(answer.value, tuple) else answer.value
            for answers in sections.values() for answer in answers}


@pytest.mark.parametrize("site", SITES)
def test_engine_setup_reads_the_golden_answers_as_the_inventory_says(site: str) -> None:
    read = check_answers(golden(f"seed/{site}/heanswers.conf").read_text(encoding="utf-8"))
    assert read.environment == expected_environment(site)
    assert read.environment["OVESETUP_CONFIG/adminPassword"] == \
        site_secrets(site).admin_password


@pytest.mark.parametrize("site", SITES)
def test_the_golden_manifest_describes_the_golden_files(site: str) -> None:
    manifest: dict[str, Any] = json.loads(golden(f"seed/{site}/manifest.json").read_text())
    assert manifest["site"] == site and manifest["mac"] == site_of(site).mac
    for name, entry in manifest["files"].items():
        if name == "seed.iso":
            continue
        data = golden(f"seed/{site}/{name}").read_bytes()
        assert (entry["sha256"], entry["size"]) == (hashlib.sha256(data).hexdigest(), len(data))
    meta_data = yaml.safe_load(golden(f"seed/{site}/meta-data").read_text())
    assert meta_data == {"instance-id": manifest["instance_id"], "local-hostname": "engine"}


def test_the_golden_index_names_the_golden_manifests() -> None:
    index = json.loads(golden("seed/generation.json").read_text())
    assert index["sites"] == {
        site: hashlib.sha256(golden(f"seed/{site}/manifest.json").read_bytes()).hexdigest()
        for site in SITES}


# --- OVF ----------------------------------------------------------------------------------


def ova_with_golden_ovf(tmp_path: Path, ovf: Path, firmware: Firmware) -> Path:
    """A gzip OVA in oVirt's layout: the golden OVF and an empty qcow2 of the disk's size
    (hosted-engine reads the disk member too); no manifest, which it does not read."""
    names = names_for(appliance(firmware), "ovirt")
    disk = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk),
                    str(DISK_VIRTUAL_SIZE)], check=True)
    ova = tmp_path / "golden.ova"
    with tarfile.open(ova, "w:gz") as tar:
        tar.add(ovf, arcname=names.ovf)
        tar.add(disk, arcname=names.disk)
    return ova


@pytest.mark.parametrize("firmware", FIRMWARES)
def test_hosted_engine_setup_reads_the_golden_ovirt_ovf(tmp_path: Path,
                                                        firmware: Firmware) -> None:
    ova = ova_with_golden_ovf(tmp_path, golden(f"ovf/ovirt-{firmware}.ovf"), firmware)
    facts = hosted_engine_reads(ova, tmp_path)
    assert facts["memory_mb"] == APPLIANCE.memory_mib and facts["unit"] == "MegaBytes"
    assert facts["vcpus"] == APPLIANCE.vcpus
    assert facts["size_gb"] == DISK_VIRTUAL_SIZE // GIB == 51
    assert facts["alias"] == f"{APPLIANCE.name}-disk"
    assert facts["bios_type"] == {"bios": "2", "uefi": "3"}[firmware]
    assert facts["virtual_size"] == DISK_VIRTUAL_SIZE


@pytest.mark.parametrize("firmware", FIRMWARES)
def test_the_golden_standard_ovf_validates_against_dmtf_schema(firmware: Firmware) -> None:
    result = check_ovf_schema(golden(f"ovf/standard-{firmware}.ovf"), REPO / "ovf" / "xsd")
    assert result.passed, result.detail


@pytest.mark.parametrize("firmware", FIRMWARES)
def test_virt_v2v_reads_the_golden_standard_ovf(tmp_path: Path, firmware: Firmware) -> None:
    names = names_for(appliance(firmware), "ovf")
    disk = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk),
                    str(DISK_VIRTUAL_SIZE)], check=True)
    ova = tmp_path / "golden.ova"
    with tarfile.open(ova, "w") as tar:
        tar.add(golden(f"ovf/standard-{firmware}.ovf"), arcname=names.ovf)
        tar.add(disk, arcname=names.disk)
    facts = virt_v2v_source(ova)
    assert facts["source name"] == APPLIANCE.name
    assert facts["memory"] == f"{APPLIANCE.memory_mib << 20} (bytes)"
    assert facts["nr vCPUs"] == str(APPLIANCE.vcpus)
    assert facts["firmware"] == firmware and facts["disks"] == "0 [ide]"


# --- RPM ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_hosted_engine_and_the_role_read_the_golden_discovery_file(kind: ImageKind) -> None:
    layout = rpm_layout(kind, APPLIANCE, PACKAGES)
    text = golden(f"rpm/{kind}/{layout.discovery_file}").read_text()
    sha1 = hashlib.sha1(RPM_IMAGE_BYTES).hexdigest()
    assert read_like_hosted_engine(text) == {
        "description": layout.summary, "version": f"{APPLIANCE.version}-{APPLIANCE.release}",
        "path": layout.image_path, "sha1sum": sha1}
    assert read_like_the_role(text, "path") == layout.image_path
    assert read_like_the_role(text, "sha1sum") == sha1


@pytest.mark.parametrize("kind", KINDS)
def test_he_launch_reads_the_golden_metadata(kind: ImageKind) -> None:
    layout = rpm_layout(kind, APPLIANCE, PACKAGES)
    path = golden(f"rpm/{kind}/{layout.metadata_file}")
    found = parse_metadata(path.read_bytes(), str(path))
    assert (found.format, found.image, found.package) == (kind, layout.image_file,
                                                          layout.package)
    assert (found.memory_mib, found.vcpus, found.firmware) == (
        APPLIANCE.memory_mib, APPLIANCE.vcpus, APPLIANCE.firmware)
    assert found.sha256 == hashlib.sha256(RPM_IMAGE_BYTES).hexdigest()


def rpm_query(rpm: Path, *args: str) -> list[str]:
    done = subprocess.run(["rpm", "-qp", *args, str(rpm)], capture_output=True, text=True,
                          check=True)
    return done.stdout.splitlines()


@pytest.mark.parametrize("kind", KINDS)
def test_rpmbuild_builds_the_golden_spec_from_the_golden_sources(tmp_path: Path,
                                                                 kind: ImageKind) -> None:
    layout = rpm_layout(kind, APPLIANCE, PACKAGES)
    top = tmp_path / "top"
    for sub in ("SOURCES", "SPECS", "RPMS", "BUILD", "BUILDROOT", "tmp"):
        (top / sub).mkdir(parents=True)
    (top / "SOURCES" / layout.image_file).write_bytes(RPM_IMAGE_BYTES)
    for name in (layout.metadata_file, layout.discovery_file, "README"):
        (top / "SOURCES" / name).write_bytes(golden(f"rpm/{kind}/{name}").read_bytes())
    spec = top / "SPECS" / f"{layout.package}.spec"
    spec.write_bytes(golden(f"rpm/{kind}/{layout.package}.spec").read_bytes())
    done = subprocess.run(["rpmbuild", "-bb", *rpm_defines(top, STORED_PAYLOAD,
                                                            SOURCE_DATE_EPOCH), str(spec)],
                          capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin", "SOURCE_DATE_EPOCH":
                               str(SOURCE_DATE_EPOCH), "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    rpm = top / "RPMS" / f"{layout.package}-{APPLIANCE.version}-{APPLIANCE.release}.noarch.rpm"
    assert sorted(rpm_query(rpm, "-l")) == sorted([
        "/etc/ovirt-hosted-engine", layout.discovery_path,
        "/usr/share/doc/" + layout.package, f"/usr/share/doc/{layout.package}/README",
        "/usr/share/ovirt-engine-appliance", layout.image_path,
        f"/usr/share/ovirt-engine-appliance/{layout.metadata_file}"])
    assert set(layout.provides) <= set(rpm_query(rpm, "--provides"))
    assert rpm_query(rpm, "--configfiles") == [layout.discovery_path]


# --- kickstart ----------------------------------------------------------------------------


def test_ksvalidator_passes_the_golden_kickstart() -> None:
    """The recipe's syntax (kickstart_version: RHEL9); -e makes a deprecation an error too."""
    result = check_kickstart(golden("kickstart/kickstart-centos9.ks"), "RHEL9")
    assert result.passed, result.detail
