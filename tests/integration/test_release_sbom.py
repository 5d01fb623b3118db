"""The SBOM read from real disk images with libguestfs (TCG here), validated against the
SPDX 2.3 schema and compared with what libguestfs' own inspection (virt-inspector) lists.

No CentOS image can be had here: the rpm path reads a stand-in image whose rpmdb was
written by the host's rpm (sqlite, as on EL9) with a real package in it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from lxml import etree
from packageurl import PackageURL

from builder.release.sbom import ImageFacts, read_image_inventory, write_sbom
from tests.fixtures.release import EPOCH, KeyFiles
from tests.unit.test_release_sbom import validate_spdx

pytestmark = pytest.mark.integration

CENTOS_OS_RELEASE = ('NAME="CentOS Stream"\nVERSION_ID="9"\nID="centos"\n'
                     'PRETTY_NAME="CentOS Stream 9"\n')


def guestfs_env() -> dict[str, str]:
    return {**os.environ, "LIBGUESTFS_BACKEND": "direct",
            "LIBGUESTFS_BACKEND_SETTINGS": os.environ.get("LIBGUESTFS_BACKEND_SETTINGS",
                                                          "force_tcg")}


def inspector_applications(disk: Path) -> set[tuple[str, str, str]]:
    """(name, arch, full version) of every application libguestfs' inspection lists."""
    xml = subprocess.run(["virt-inspector", "--no-icon", "--format=raw", "-a", str(disk)],
                         capture_output=True, check=True, env=guestfs_env()).stdout
    apps = set()
    for app in etree.fromstring(xml).iter("application"):
        def text(tag: str, node: etree._Element = app) -> str:
            return node.findtext(tag) or ""
        epoch = f"{text('epoch')}:" if text("epoch") not in ("", "0") else ""
        release = f"-{text('release')}" if text("release") else ""
        apps.add((text("name"), text("arch"), f"{epoch}{text('version')}{release}"))
    return apps


@pytest.fixture(scope="module")
def debian_sbom(debian_test_disk: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    image = ImageFacts.of_file(debian_test_disk, name="ovirt-engine-appliance",
                               version="4.5-1")
    inventory = read_image_inventory(debian_test_disk, disk_format="raw", env=guestfs_env())
    return write_sbom(tmp_path_factory.mktemp("sbom") / "sbom.spdx.json", image, inventory,
                      created=EPOCH)


def test_the_debian_image_sbom_is_valid_spdx(debian_sbom: Path, debian_test_disk: Path) -> None:
    document = json.loads(debian_sbom.read_text())
    validate_spdx(document)
    image = document["packages"][0]
    digest = subprocess.run(["sha256sum", str(debian_test_disk)], capture_output=True,
                            text=True, check=True).stdout.split()[0]
    assert image["checksums"][0]["checksumValue"] == digest
    assert document["documentNamespace"].endswith(f"-sha256-{digest}")
    assert document["creationInfo"]["created"] == "2023-11-14T22:13:20Z"
    system = document["packages"][1]
    assert (system["name"], system["versionInfo"]) == ("debian", "12")


def test_every_package_libguestfs_inspection_lists_is_in_the_sbom(
        debian_sbom: Path, debian_test_disk: Path) -> None:
    document = json.loads(debian_sbom.read_text())
    ours = set()
    for package in document["packages"][2:]:
        purl = PackageURL.from_string(package["externalRefs"][0]["referenceLocator"])
        assert (purl.type, purl.namespace, purl.qualifiers["distro"]) == ("deb", "debian",
                                                                          "debian-12")
        assert purl.name == package["name"] and purl.version == package["versionInfo"]
        ours.add((package["name"], purl.qualifiers["arch"], package["versionInfo"]))
    assert len(ours) > 100  # a whole Debian system, not a handful
    assert ours == inspector_applications(debian_test_disk)
    names = {name for name, _, _ in ours}
    assert {"cloud-init", "systemd", "linux-image-cloud-amd64"} <= names


def test_an_rpm_image_is_read_through_its_rpmdb(release_key: KeyFiles, small_rpm: Path,
                                                tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "usr").mkdir()
    (root / "etc" / "fstab").write_text("# one filesystem\n")
    (root / "etc" / "os-release").write_text(CENTOS_OS_RELEASE)
    rpm = ["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm"]
    subprocess.run([*rpm, "--initdb"], check=True)
    subprocess.run([*rpm, "-i", "--justdb", "--nodeps", "--noscripts", str(small_rpm)],
                   check=True)
    subprocess.run([*rpm, "--import", str(release_key.public)], check=True)  # a gpg-pubkey
    assert (root / "var/lib/rpm/rpmdb.sqlite").is_file()
    disk = tmp_path / "disk.raw"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(root), str(disk), "64M"],
                   check=True)
    inventory = read_image_inventory(disk, disk_format="raw", env=guestfs_env())
    assert inventory.system.distro == "centos-9"
    assert [(p.name, p.version, p.arch, p.manager) for p in inventory.packages] == [
        ("he-hello", "1.0-1", "noarch", "rpm")]
    image = ImageFacts.of_file(disk, name="stand-in", version="1")
    sbom = write_sbom(tmp_path / "sbom.spdx.json", image, inventory, created=EPOCH)
    document = json.loads(sbom.read_text())
    validate_spdx(document)
    assert document["packages"][2]["externalRefs"][0]["referenceLocator"] == (
        "pkg:rpm/centos/he-hello@1.0-1?arch=noarch&distro=centos-9")
