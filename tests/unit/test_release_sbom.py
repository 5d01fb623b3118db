"""SBOM pieces without an image: package database parsers, PURLs, SPDX rendering checked
against the official SPDX 2.3 JSON schema (as shipped by the lib4sbom package)."""

from __future__ import annotations

import json
import random
from importlib.resources import files
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from packageurl import PackageURL

from builder.errors import IntegrityError
from builder.release.sbom import (
    ImageFacts,
    ImageInventory,
    InstalledPackage,
    OsRelease,
    dump_json,
    package_url,
    parse_dpkg_status,
    parse_os_release,
    parse_rpm_query,
    render_spdx,
)

DPKG_STATUS = """\
Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
Homepage: https://www.gnu.org/software/libc/libc.html

Package: libc6
Status: install ok installed
Architecture: i386
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries

Package: removed-thing
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1
Description: time zone and daylight-saving time data

Package: perl-base
Status: hold ok installed
Architecture: amd64
Source: perl (5.36.0-7+deb12u1)
Version: 5.36.0-7+deb12u1
"""
DEBIAN = parse_os_release('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"'
                          '\nVERSION_ID="12"\nID=debian\n')
CENTOS = OsRelease("centos", "9", "CentOS Stream", "CentOS Stream 9")
IMAGE = ImageFacts("ovirt-engine-appliance", "4.5-1", "disk.raw", "ab" * 32)
EPOCH = 1700000000


def spdx_schema() -> dict[str, Any]:
    text = (files("lib4sbom") / "schemas" / "spdx" / "2.3-schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    # The SPDX project's schema for 2.3 (spdx-spec, support/2.3: schemas/spdx-schema.json).
    assert schema["$id"] == "http://spdx.org/rdf/terms/2.3" and schema["title"] == "SPDX 2.3"
    return schema


def validate_spdx(document: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(spdx_schema())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert errors == [], [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def test_dpkg_status_lists_installed_packages_only() -> None:
    packages = parse_dpkg_status(DPKG_STATUS)
    assert [(p.name, p.arch, p.version) for p in packages] == [
        ("libc6", "amd64", "2.36-9+deb12u4"), ("libc6", "i386", "2.36-9+deb12u4"),
        ("tzdata", "all", "2024a-0+deb12u1"), ("perl-base", "amd64", "5.36.0-7+deb12u1")]
    assert packages[0].source == "glibc" and packages[3].source == "perl"
    assert packages[2].source == "tzdata"
    assert packages[0].summary == "GNU C Library: Shared libraries"
    assert packages[0].homepage == "https://www.gnu.org/software/libc/libc.html"


def test_rpm_query_output() -> None:
    line = "\t".join(["bash", "", "5.1.8", "9.el9", "x86_64", "CentOS", "https://www.gnu.org/"
                      "software/bash", "GPLv3+", "bash-5.1.8-9.el9.src.rpm", "The GNU shell"])
    epoch = "\t".join(["shadow-utils", "2", "4.9", "8.el9", "x86_64", "", "", "BSD", "", "x"])
    key = "\t".join(["gpg-pubkey", "", "8483c65d", "5ccc5b19", "", "", "", "pubkey", "", "k"])
    bash, shadow = parse_rpm_query("\n".join([line, epoch, key]) + "\n")
    assert (bash.name, bash.version, bash.epoch, bash.source, bash.vendor) == (
        "bash", "5.1.8-9.el9", None, "bash", "CentOS")
    assert (shadow.epoch, shadow.source, shadow.vendor) == ("2", None, None)
    with pytest.raises(IntegrityError, match="rpm query line 1: 2 fields"):
        parse_rpm_query("only\ttwo\n")


def test_package_urls_parse_back() -> None:
    deb = InstalledPackage("libstdc++6", "1:12.2.0-14", "amd64", "deb")
    parsed = PackageURL.from_string(package_url(deb, DEBIAN))
    assert (parsed.type, parsed.namespace, parsed.name, parsed.version) == (
        "deb", "debian", "libstdc++6", "1:12.2.0-14")
    assert parsed.qualifiers == {"arch": "amd64", "distro": "debian-12"}
    rpm = InstalledPackage("shadow-utils", "4.9-8.el9", "x86_64", "rpm", epoch="2")
    assert package_url(rpm, CENTOS) == (
        "pkg:rpm/centos/shadow-utils@4.9-8.el9?arch=x86_64&distro=centos-9&epoch=2")


def inventory(packages: list[InstalledPackage], system: OsRelease = DEBIAN) -> ImageInventory:
    return ImageInventory(system, tuple(packages))


def test_the_document_validates_against_the_spdx_schema() -> None:
    packages = parse_dpkg_status(DPKG_STATUS)
    document = render_spdx(IMAGE, inventory(packages), created=EPOCH)
    validate_spdx(document)
    assert document["creationInfo"]["created"] == "2023-11-14T22:13:20Z"
    assert document["documentNamespace"].endswith(
        f"/ovirt-engine-appliance-4.5-1-sha256-{'ab' * 32}")
    image = document["packages"][0]
    assert image["checksums"] == [{"algorithm": "SHA256", "checksumValue": "ab" * 32}]
    ids = [p["SPDXID"] for p in document["packages"]]
    assert len(ids) == len(set(ids)) == len(packages) + 2  # libc6 twice (two arches)
    described = [r for r in document["relationships"] if r["relationshipType"] == "DESCRIBES"]
    assert described == [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                          "relatedSpdxElement": "SPDXRef-Image"}]
    contained = {r["relatedSpdxElement"] for r in document["relationships"]
                 if r["relationshipType"] == "CONTAINS"}
    assert contained == set(ids[1:])


def test_rpm_packages_validate_too() -> None:
    rpm = InstalledPackage("shadow-utils", "4.9-8.el9", "x86_64", "rpm", epoch="2",
                           vendor="CentOS", homepage="not a url")
    document = render_spdx(IMAGE, inventory([rpm], CENTOS), created=EPOCH)
    validate_spdx(document)
    entry = document["packages"][2]
    assert entry["versionInfo"] == "2:4.9-8.el9"
    assert entry["supplier"] == "Organization: CentOS"
    assert "homepage" not in entry  # SPDX wants a URL there, or nothing


def test_the_same_packages_in_any_order_give_the_same_bytes() -> None:
    packages = parse_dpkg_status(DPKG_STATUS)
    shuffled = packages[:]
    random.Random(7).shuffle(shuffled)
    first = dump_json(render_spdx(IMAGE, inventory(packages), created=EPOCH))
    second = dump_json(render_spdx(IMAGE, inventory(shuffled), created=EPOCH))
    assert first == second
    other_image = ImageFacts(IMAGE.name, IMAGE.version, IMAGE.file_name, "cd" * 32)
    third = render_spdx(other_image, inventory(packages), created=EPOCH)
    assert third["documentNamespace"] != json.loads(first)["documentNamespace"]


def test_a_schema_violation_would_be_caught() -> None:
    # The schema check above is worthless if it accepts anything.
    document = render_spdx(IMAGE, inventory(parse_dpkg_status(DPKG_STATUS)), created=EPOCH)
    document["packages"][0]["checksums"][0]["algorithm"] = "CRC32"
    with pytest.raises(AssertionError):
        validate_spdx(document)
