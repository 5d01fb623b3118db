"""The shared vocabulary: what an appliance is, a disk a backend built, an artifact a stage made.

Every layer may import this module; it imports nothing of the project's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

DiskFormat = Literal["raw", "qcow2"]
# The firmware the appliance boots with by default: oVirt's OVF says it as BiosType, the RPM's
# metadata as `firmware`, and he-launch boots with it unless told otherwise.
Firmware = Literal["bios", "uefi"]


@dataclass(frozen=True)
class ApplianceMeta:
    """What the OVF and the RPM say about the appliance."""

    name: str
    version: str
    release: str
    memory_mib: int
    vcpus: int
    description: str
    firmware: Firmware = "bios"


@dataclass(frozen=True)
class PackageNames:
    """How the appliance RPMs are named and found (the recipe's `rpm:` section).

    The OVA RPM is `name` and ships /etc/ovirt-hosted-engine/10-appliance.conf; the qcow2 RPM
    (oVirt 4.5.7's generation) is `name-distro` and ships 10-appliance-<distro>.conf.
    """

    name: str = "ovirt-engine-appliance"
    distro: str = "centos9"
    provides: tuple[str, ...] = ("ovirt-engine-appliance-centos9",)
    summary: str = "The oVirt Engine Appliance image"
    license: str = "GPL-2.0-only"

    @property
    def qcow2_name(self) -> str:
        return f"{self.name}-{self.distro}"


@dataclass(frozen=True)
class BuiltDisk:
    """A finished disk image, and the hash of the inputs that produced it."""

    path: Path
    format: DiskFormat
    meta: ApplianceMeta
    cache_key: str


# What `he-build appliance --format` builds after the disk: oVirt's gzip OVA and its RPM, the
# qcow2 RPM of oVirt 4.5.7, or a standard OVA for virt-v2v.
ApplianceFormat = Literal["ovirt", "qcow2", "ovf"]
FORMATS: tuple[ApplianceFormat, ...] = ("ovirt", "qcow2", "ovf")


@dataclass(frozen=True)
class Artifact:
    """One file a stage made, described the same way for every stage."""

    name: str
    path: Path
    size: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "size": self.size,
                "sha256": self.sha256}
