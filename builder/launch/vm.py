"""The engine VM's domain spec: overlay disk, seed CD-ROM, report channel, console log, NIC."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from builder.repro import stable_uuid
from builder.seed.protocol import CHANNEL_NAME
from builder.virt.domain import (
    ChannelDevice,
    DiskDevice,
    DomainSpec,
    Firmware,
    NicDevice,
    VirtType,
)

SEED_TARGET = "sda"
DISK_TARGET = "vda"


@dataclass(frozen=True)
class NicChoice:
    """Where the NIC goes: a libvirt network, a bridge, or nowhere (no NIC)."""

    network: str | None = None
    bridge: str | None = None

    @property
    def wanted(self) -> bool:
        return self.network is not None or self.bridge is not None


def seed_cdrom(iso: Path | None) -> DiskDevice:
    """The seed drive; `iso=None` is the same drive with its medium ejected."""
    # On virtio-scsi: q35 has no IDE, and cloud kernels (e.g. Debian's) lack AHCI. Optional:
    # the seed copy is deleted after the launch, and a start without it must not fail.
    return DiskDevice(path=iso, target=SEED_TARGET, format="raw", device="cdrom", bus="scsi",
                      readonly=True, optional=True)


def build_engine_spec(
    *, name: str, virt_type: VirtType, memory_mib: int, vcpus: int, overlay: Path,
    seed: Path | None, nic: NicChoice, mac: str | None, console_log: Path,
    firmware: Firmware = "bios", nvram: Path | None = None,
) -> DomainSpec:
    """The domain for one launch; the channel socket is placed by libvirt and read back live.

    The overlay passes the guest's discards down: what the guest's scrub frees and trims
    leaves the image file (docs/launch.md).
    """
    disks: list[DiskDevice] = [DiskDevice(path=overlay, target=DISK_TARGET, format="qcow2",
                                          discard=True)]
    if seed is not None:
        disks.append(seed_cdrom(seed))
    nics: tuple[NicDevice, ...] = ()
    if nic.wanted:
        if mac is None:
            raise ValueError("a NIC needs a MAC")
        nics = (NicDevice(mac=mac, network=nic.network, bridge=nic.bridge),)
    return DomainSpec(
        name=name, uuid=stable_uuid("he-launch", name), virt_type=virt_type,
        memory_mib=memory_mib, vcpus=vcpus, disks=tuple(disks),
        channels=(ChannelDevice(name=CHANNEL_NAME),), nics=nics, serial_log=console_log,
        description="hosted-engine VM started by he-launch", firmware=firmware, nvram=nvram,
    )
