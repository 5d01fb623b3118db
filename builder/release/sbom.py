"""The appliance's SBOM: every package installed in the disk image, read from the image's own
package database in one libguestfs launch (no boot), written as SPDX 2.3 JSON."""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packageurl import PackageURL

from builder import __version__
from builder.atomic import write_atomic
from builder.errors import InputError, IntegrityError
from builder.repro import sha256_file
from builder.run import require_tool, run
from builder.virt.guestfs import Guest, open_guest

SPDX_VERSION = "SPDX-2.3"
DOCUMENT_ID = "SPDXRef-DOCUMENT"
IMAGE_ID = "SPDXRef-Image"
OS_ID = "SPDXRef-OperatingSystem"
NOASSERTION = "NOASSERTION"
DPKG_STATUS = "/var/lib/dpkg/status"
OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")
# Where rpm keeps its database: Fedora 36+ / EL10, then EL9 and older (often a link to the first).
RPMDB_DIRS = ("/usr/lib/sysimage/rpm", "/var/lib/rpm")
RPM_FIELDS = ("NAME", "EPOCH", "VERSION", "RELEASE", "ARCH", "VENDOR", "URL", "LICENSE",
              "SOURCERPM", "SUMMARY")
RPM_QUERYFORMAT = "\t".join(f"%|{f}?{{%{{{f}}}}}:{{}}|" for f in RPM_FIELDS) + "\n"
# Packages that are not software: rpm keeps imported OpenPGP keys as packages.
RPM_PSEUDO_PACKAGES = frozenset({"gpg-pubkey"})
SPDX_ID_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")
NAMESPACE_UNSAFE = re.compile(r"[^A-Za-z0-9._~-]+")
DEFAULT_NAMESPACE_BASE = "https://he-builder.invalid/spdx"


@dataclass(frozen=True)
class OsRelease:
    """The guest's /etc/os-release, as far as the SBOM needs it."""

    id: str
    version_id: str
    name: str
    pretty_name: str

    @property
    def distro(self) -> str:
        """The PURL `distro` qualifier, e.g. debian-12 or centos-9."""
        return f"{self.id}-{self.version_id}" if self.version_id else self.id


@dataclass(frozen=True, order=True)
class InstalledPackage:
    """One installed binary package, as its package manager records it."""

    name: str
    version: str  # deb: [epoch:]upstream[-revision]; rpm: version-release (epoch apart)
    arch: str
    manager: str  # "deb" or "rpm"
    epoch: str | None = None
    source: str | None = None
    vendor: str | None = None
    homepage: str | None = None
    summary: str | None = None


@dataclass(frozen=True)
class ImageInventory:
    system: OsRelease
    packages: tuple[InstalledPackage, ...]


@dataclass(frozen=True)
class ImageFacts:
    """The image the SBOM describes: what it is called and its digest (the file's SHA-256)."""

    name: str
    version: str
    file_name: str
    sha256: str

    @classmethod
    def of_file(cls, path: Path, *, name: str, version: str) -> ImageFacts:
        if not path.is_file():
            raise InputError(f"image not found: {path}")
        return cls(name, version, path.name, sha256_file(path))


# --- reading the image -------------------------------------------------------------------


def parse_os_release(text: str) -> OsRelease:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            values[key] = value.strip().strip("\"'")
    if "ID" not in values:
        raise IntegrityError("the guest's os-release has no ID")
    name = values.get("NAME", values["ID"])
    return OsRelease(values["ID"], values.get("VERSION_ID", ""), name,
                     values.get("PRETTY_NAME", name))


def parse_dpkg_status(text: str) -> list[InstalledPackage]:
    """Installed packages from dpkg's status file (RFC 822-style paragraphs); packages only
    configured-away, half-installed or removed are left out."""
    packages = []
    for paragraph in re.split(r"\n\s*\n", text):
        fields = _control_fields(paragraph)
        status = fields.get("Status", "").split()
        if len(status) != 3 or status[2] != "installed" or "Package" not in fields:
            continue
        source = fields.get("Source", fields["Package"]).split(" ")[0]
        packages.append(InstalledPackage(
            name=fields["Package"], version=fields.get("Version", ""),
            arch=fields.get("Architecture", ""), manager="deb", source=source,
            homepage=fields.get("Homepage"),
            summary=fields.get("Description", "").split("\n")[0] or None))
    return packages


def _control_fields(paragraph: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in paragraph.splitlines():
        if line[:1] in (" ", "\t") and key is not None:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def parse_rpm_query(text: str) -> list[InstalledPackage]:
    """Packages from `rpm -qa --queryformat RPM_QUERYFORMAT`."""
    packages = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        values = line.split("\t")
        if len(values) != len(RPM_FIELDS):
            raise IntegrityError(f"rpm query line {number}: {len(values)} fields, expected "
                                 f"{len(RPM_FIELDS)}")
        row = dict(zip(RPM_FIELDS, values, strict=True))
        if row["NAME"] in RPM_PSEUDO_PACKAGES:
            continue
        packages.append(InstalledPackage(
            name=row["NAME"], version=f"{row['VERSION']}-{row['RELEASE']}", arch=row["ARCH"],
            manager="rpm", epoch=row["EPOCH"] or None,
            source=_srpm_name(row["SOURCERPM"]), vendor=row["VENDOR"] or None,
            homepage=row["URL"] or None, summary=row["SUMMARY"] or None))
    return packages


def _srpm_name(srpm: str) -> str | None:
    """`bash-5.1.8-9.el9.src.rpm` -> `bash`."""
    match = re.match(r"^(?P<name>.+)-[^-]+-[^-]+\.(?:no)?src\.rpm$", srpm)
    return match["name"] if match else None


def read_rpm_packages(guest: Guest, db_dir: str) -> list[InstalledPackage]:
    """The guest's rpmdb copied out and read by the host's rpm (4.18 reads sqlite, ndb and
    bdb): no guest binary runs, and a read-only image stays untouched."""
    require_tool("rpm", package="rpm")
    with tempfile.TemporaryDirectory(prefix="he-rpmdb-") as tmp:
        copied = 0
        for name in guest.list_dir(db_dir):
            path = f"{db_dir}/{name}"
            if name.startswith(("__db", ".")) or not guest.is_file(path):
                continue  # Berkeley DB environment files and locks are not data
            (Path(tmp) / name).write_bytes(guest.read(path))
            copied += 1
        if not copied:
            return []
        done = run(["rpm", "--dbpath", tmp, "-qa", "--queryformat", RPM_QUERYFORMAT])
    return parse_rpm_query(done.text)


def read_inventory(guest: Guest) -> ImageInventory:
    """The OS and every installed package (dpkg and/or rpm) of a mounted guest."""
    os_release = next((p for p in OS_RELEASE if guest.is_file(p)), None)
    if os_release is None:
        raise IntegrityError("the guest has no /etc/os-release: not an operating system image")
    packages: list[InstalledPackage] = []
    if guest.is_file(DPKG_STATUS):
        packages += parse_dpkg_status(guest.read(DPKG_STATUS).decode("utf-8", "replace"))
    db_dir = next((d for d in RPMDB_DIRS if guest.is_dir(d)), None)
    if db_dir is not None:
        packages += read_rpm_packages(guest, db_dir)
    if not packages:
        raise IntegrityError("no package database found in the image (dpkg or rpm)")
    return ImageInventory(parse_os_release(guest.read(os_release).decode("utf-8", "replace")),
                          tuple(sorted(set(packages))))


def read_image_inventory(disk: Path, *, disk_format: str, env: Mapping[str, str],
                         notify: Callable[[str], None] | None = None) -> ImageInventory:
    """One read-only libguestfs launch on `disk` (no boot)."""
    if not disk.is_file():
        raise InputError(f"disk image not found: {disk}")
    with open_guest(disk, disk_format=disk_format, env=env, readonly=True,
                    notify=notify) as guest:
        return read_inventory(guest)


# --- SPDX --------------------------------------------------------------------------------


def spdx_time(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def package_url(package: InstalledPackage, system: OsRelease) -> str:
    qualifiers = {"arch": package.arch, "distro": system.distro}
    if package.manager == "rpm" and package.epoch:
        qualifiers["epoch"] = package.epoch
    return str(PackageURL(type=package.manager, namespace=system.id, name=package.name,
                          version=package.version,
                          qualifiers={k: v for k, v in qualifiers.items() if v}))


def package_spdx_id(package: InstalledPackage) -> str:
    """Unique and stable: two packages may share a name (multiarch, kernels)."""
    identity = "\x1f".join((package.manager, package.name, package.epoch or "",
                            package.version, package.arch))
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:12]
    safe = SPDX_ID_UNSAFE.sub("-", package.name).strip("-") or "package"
    return f"SPDXRef-Package-{package.manager}-{safe}-{digest}"


def _supplier(package: InstalledPackage, system: OsRelease) -> str:
    """The immediate supplier: rpm's Vendor tag, else the distribution that shipped it."""
    return f"Organization: {package.vendor or system.name}"


def _no_licence_facts() -> dict[str, Any]:
    # Licences are not read (no copyright files are parsed): say so rather than guess.
    return {"filesAnalyzed": False, "licenseConcluded": NOASSERTION,
            "licenseDeclared": NOASSERTION, "copyrightText": NOASSERTION}


def render_package(package: InstalledPackage, system: OsRelease) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "SPDXID": package_spdx_id(package),
        "name": package.name,
        "versionInfo": (f"{package.epoch}:{package.version}" if package.epoch
                        else package.version),
        "supplier": _supplier(package, system),
        "downloadLocation": NOASSERTION,
        **_no_licence_facts(),
    }
    if package.homepage and package.homepage.startswith(("http://", "https://")):
        entry["homepage"] = package.homepage
    if package.source:
        entry["sourceInfo"] = f"built from the {package.manager} source package {package.source}"
    if package.summary:
        entry["summary"] = package.summary
    entry["externalRefs"] = [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": package_url(package, system)}]
    return entry


def render_image(image: ImageFacts) -> dict[str, Any]:
    return {
        "SPDXID": IMAGE_ID,
        "name": image.name,
        "versionInfo": image.version,
        "packageFileName": image.file_name,
        "checksums": [{"algorithm": "SHA256", "checksumValue": image.sha256}],
        "downloadLocation": NOASSERTION,
        "primaryPackagePurpose": "OTHER",
        "comment": "virtual machine disk image of the oVirt hosted-engine appliance",
        **_no_licence_facts(),
    }


def render_os(system: OsRelease) -> dict[str, Any]:
    return {
        "SPDXID": OS_ID,
        "name": system.id,
        "versionInfo": system.version_id or NOASSERTION,
        "supplier": f"Organization: {system.name}",
        "downloadLocation": NOASSERTION,
        "primaryPackagePurpose": "OPERATING_SYSTEM",
        "description": system.pretty_name,
        **_no_licence_facts(),
    }


def document_namespace(image: ImageFacts, base: str) -> str:
    """Unique per image: derived from the image's digest, so the same image gives the same
    namespace and a different image never does."""
    name = NAMESPACE_UNSAFE.sub("-", f"{image.name}-{image.version}")
    return f"{base.rstrip('/')}/{name}-sha256-{image.sha256}"


def render_spdx(image: ImageFacts, inventory: ImageInventory, *, created: int,
                namespace_base: str = DEFAULT_NAMESPACE_BASE) -> dict[str, Any]:
    """The SPDX 2.3 document (as data): the image DESCRIBED, its OS and each package
    CONTAINED in it, in a stable order."""
    packages = sorted(inventory.packages)
    relationships = [
        {"spdxElementId": DOCUMENT_ID, "relationshipType": "DESCRIBES",
         "relatedSpdxElement": IMAGE_ID},
        {"spdxElementId": IMAGE_ID, "relationshipType": "CONTAINS", "relatedSpdxElement": OS_ID},
        *({"spdxElementId": IMAGE_ID, "relationshipType": "CONTAINS",
           "relatedSpdxElement": package_spdx_id(p)} for p in packages),
    ]
    return {
        "spdxVersion": SPDX_VERSION,
        "dataLicense": "CC0-1.0",
        "SPDXID": DOCUMENT_ID,
        "name": f"{image.name}-{image.version}",
        "documentNamespace": document_namespace(image, namespace_base),
        "creationInfo": {"created": spdx_time(created),
                         "creators": [f"Tool: he-builder-{__version__}"]},
        "packages": [render_image(image), render_os(inventory.system),
                     *(render_package(p, inventory.system) for p in packages)],
        "relationships": relationships,
    }


def dump_json(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_sbom(dest: Path, image: ImageFacts, inventory: ImageInventory, *, created: int,
               namespace_base: str = DEFAULT_NAMESPACE_BASE) -> Path:
    write_atomic(dest, dump_json(render_spdx(image, inventory, created=created,
                                             namespace_base=namespace_base)))
    return dest
