"""The contract every disk-building backend (kickstart, customize, debian-test) meets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from builder.console import Console

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


@dataclass(frozen=True)
class BuildContext:
    """Per-build state: where to stage, where the stage cache lives, whom to tell."""

    work_dir: Path
    cache_dir: Path
    console: Console
    env: Mapping[str, str]


class DiskBackend(Protocol):
    """Builds one appliance disk; `cache_key` hashes every input, never the output."""

    name: str

    def cache_key(self) -> str: ...

    def build_disk(self, ctx: BuildContext) -> BuiltDisk: ...
