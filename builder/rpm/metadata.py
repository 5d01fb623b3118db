"""The two small files the appliance RPM installs beside the image: hosted-engine's discovery
file, and our metadata JSON (what he-launch needs when the image is a bare qcow2).

The discovery file is read two ways, and both must find the same values:
- hosted-engine-setup globs /etc/ovirt-hosted-engine/*-appliance.conf and parses each file with
  `configparser.ConfigParser` (interpolation on: `%` must be written `%%`) under a made-up
  section, requiring `description`, `version`, `path` and `sha1sum`;
- the Ansible role takes `rpm -ql PACKAGE | grep '.conf$'`, then `grep path FILE | cut -f2 -d=`
  and `grep sha1sum FILE | cut -f2 -d=` (the first matching line wins).
"""

from __future__ import annotations

import configparser
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from builder.errors import InputError, IntegrityError
from builder.model import ApplianceMeta, PackageNames
from builder.ova.digests import FileDigests

INSTALL_DIR = "/usr/share/ovirt-engine-appliance"
DISCOVERY_DIR = "/etc/ovirt-hosted-engine"
METADATA_VERSION = 2
ImageKind = Literal["ova", "qcow2"]
KIND_LABEL: dict[ImageKind, str] = {"ova": "OVA", "qcow2": "qcow2"}
ROLE_KEYS = ("path", "sha1sum")


@dataclass(frozen=True)
class RpmLayout:
    """Names and paths of one appliance RPM (oVirt's conventions for each generation)."""

    kind: ImageKind
    package: str
    version: str
    release: str
    summary: str
    discovery_file: str
    provides: tuple[str, ...]
    image_file: str

    @property
    def image_path(self) -> str:
        return f"{INSTALL_DIR}/{self.image_file}"

    @property
    def metadata_file(self) -> str:
        return f"{self.package}.json"

    @property
    def discovery_path(self) -> str:
        return f"{DISCOVERY_DIR}/{self.discovery_file}"


def rpm_layout(kind: ImageKind, meta: ApplianceMeta, names: PackageNames) -> RpmLayout:
    """The OVA RPM: `name`, 10-appliance.conf, Provides: each of `provides` = V-R; the OVA
    keeps the name it is published under (<appliance>-V-R.ova).
    The qcow2 RPM (oVirt 4.5.7): `name-distro`, 10-appliance-<distro>.conf,
    Provides: `name` = V, the image named <package>-V-R.qcow2 as oVirt names it."""
    summary = f"{names.summary} ({KIND_LABEL[kind]})"
    version = f"{meta.version}-{meta.release}"
    if kind == "ova":
        return RpmLayout(kind, names.name, meta.version, meta.release, summary,
                         "10-appliance.conf", tuple(f"{p} = {version}" for p in names.provides),
                         f"{meta.name}-{version}.ova")
    return RpmLayout(kind, names.qcow2_name, meta.version, meta.release, summary,
                     f"10-appliance-{names.distro}.conf", (f"{names.name} = {meta.version}",),
                     f"{names.qcow2_name}-{version}.qcow2")


def render_discovery(layout: RpmLayout, sha1: str) -> bytes:
    """The discovery file, checked to read back the same through both of its readers."""
    values = {"description": layout.summary, "version": f"{layout.version}-{layout.release}",
              "path": layout.image_path, "sha1sum": sha1}
    text = "".join(f"{key}={value.replace('%', '%%')}\n" for key, value in values.items())
    if read_like_hosted_engine(text) != values:
        raise InputError(f"the discovery file would not read back as written: {values}")
    for key in ROLE_KEYS:
        if read_like_the_role(text, key) != values[key]:
            raise InputError(f"the Ansible role would read {key} wrongly from the discovery "
                             f"file (another line holds {key!r}): check rpm.summary and the "
                             f"appliance version")
    return text.encode()


def read_like_hosted_engine(text: str) -> dict[str, str]:
    """hosted-engine-setup's reading (boot_disk.py `_detect_appliances`)."""
    parser = configparser.ConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string("[appliance]\n" + text)
        return dict(parser.items("appliance"))
    except (configparser.Error, ValueError) as exc:
        raise InputError(f"hosted-engine-setup cannot parse the discovery file: {exc}") from exc


def read_like_the_role(text: str, key: str) -> str | None:
    """`grep KEY FILE | cut -f2 -d'='`, first line: what the Ansible role does."""
    for line in text.splitlines():
        if key in line:
            return line.split("=")[1] if "=" in line else line
    return None


@dataclass(frozen=True)
class ApplianceMetadata:
    """Our JSON beside the image: enough for he-launch to boot a bare qcow2."""

    format: ImageKind
    image: str
    package: str
    name: str
    version: str
    release: str
    memory_mib: int
    vcpus: int
    firmware: str
    size: int
    sha1: str
    sha256: str
    build_time: str
    metadata_version: int = METADATA_VERSION


def render_metadata(layout: RpmLayout, meta: ApplianceMeta, digests: FileDigests,
                    built_at: int) -> bytes:
    data = ApplianceMetadata(
        format=layout.kind, image=layout.image_file, package=layout.package, name=meta.name,
        version=meta.version, release=meta.release, memory_mib=meta.memory_mib,
        vcpus=meta.vcpus, firmware=meta.firmware, size=digests.size, sha1=digests.sha1,
        sha256=digests.sha256,
        build_time=datetime.fromtimestamp(built_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return (json.dumps(asdict(data), indent=2, sort_keys=True) + "\n").encode()


def parse_metadata(data: bytes, source: str) -> ApplianceMetadata:
    """The metadata JSON, checked for the fields and types he-launch relies on."""
    try:
        raw: dict[str, Any] = json.loads(data)
        found = ApplianceMetadata(**raw)
    except (ValueError, TypeError) as exc:
        raise IntegrityError(f"{source} is not appliance metadata: {exc}") from exc
    checks = [found.metadata_version == METADATA_VERSION, found.format in KIND_LABEL,
              found.firmware in ("bios", "uefi"), isinstance(found.memory_mib, int),
              isinstance(found.vcpus, int), "/" not in found.image]
    if not all(checks):
        raise IntegrityError(f"{source}: unsupported or malformed appliance metadata")
    return found
