"""The libvirt domain XML object model: frozen specs in, serialized XML (lxml) out."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lxml import etree

VirtType = Literal["kvm", "qemu"]
# auto: kvm when it works, else qemu (TCG); see Hypervisor.start_domain.
VirtChoice = Literal["auto", "kvm", "qemu"]
DiskFormat = Literal["raw", "qcow2"]
DiskKind = Literal["disk", "cdrom"]
DiskBus = Literal["virtio", "sata", "scsi", "ide"]
LifecycleAction = Literal["destroy", "restart", "preserve", "rename-restart"]
Firmware = Literal["bios", "uefi"]
# UEFI without secure boot (oVirt's role boots the engine with `loader.secure=no`): libvirt
# picks the matching OVMF build from the host's firmware descriptors (/usr/share/qemu/firmware),
# so the same XML works with Debian's `ovmf` and with EL's `edk2-ovmf`.
UEFI_FEATURES_OFF = ("enrolled-keys", "secure-boot")


@dataclass(frozen=True)
class DiskDevice:
    """A disk or CD-ROM; a CD-ROM without `path` is an empty (ejected) drive."""

    path: Path | None
    target: str
    format: DiskFormat = "qcow2"
    device: DiskKind = "disk"
    bus: DiskBus = "virtio"
    readonly: bool = False
    # Pass the guest's discards (fstrim) down, and turn written zeros into unmapped clusters:
    # what the guest frees (e.g. a scrubbed secret) leaves the image file.
    discard: bool = False
    # A missing medium is dropped at start instead of failing it (a removable seed CD-ROM).
    optional: bool = False


@dataclass(frozen=True)
class ChannelDevice:
    """A virtio-serial port; `socket=None` lets libvirt place the unix socket itself."""

    name: str
    socket: Path | None = None


@dataclass(frozen=True)
class NicDevice:
    """A NIC on a libvirt network or on a host bridge (exactly one of them)."""

    mac: str
    network: str | None = None
    bridge: str | None = None
    model: str = "virtio"

    def __post_init__(self) -> None:
        if (self.network is None) == (self.bridge is None):
            raise ValueError("a NIC needs exactly one of network= or bridge=")


@dataclass(frozen=True)
class DirectBoot:
    """Boot a kernel and initrd given on the host instead of the disk's boot loader."""

    kernel: Path
    initrd: Path | None = None
    cmdline: str = ""


@dataclass(frozen=True)
class DomainSpec:
    """Everything the domain XML says; rendering it is a pure function."""

    name: str
    uuid: uuid.UUID
    virt_type: VirtType
    memory_mib: int
    vcpus: int
    disks: tuple[DiskDevice, ...] = ()
    channels: tuple[ChannelDevice, ...] = ()
    nics: tuple[NicDevice, ...] = ()
    serial_log: Path | None = None
    direct_boot: DirectBoot | None = None
    firmware: Firmware = "bios"
    nvram: Path | None = None  # UEFI variables file (created from the template when missing)
    on_poweroff: LifecycleAction = "destroy"
    on_reboot: LifecycleAction = "restart"
    on_crash: LifecycleAction = "destroy"
    machine: str = "q35"
    description: str = field(default="")


def render_domain_xml(spec: DomainSpec) -> bytes:
    """The domain's XML document, graphics-free: a serial console is the only console."""
    root = etree.Element("domain", type=spec.virt_type)
    _text(root, "name", spec.name)
    _text(root, "uuid", str(spec.uuid))
    if spec.description:
        _text(root, "description", spec.description)
    _text(root, "memory", str(spec.memory_mib), unit="MiB")
    _text(root, "vcpu", str(spec.vcpus), placement="static")
    root.append(_os_element(spec))
    features = etree.SubElement(root, "features")
    etree.SubElement(features, "acpi")
    etree.SubElement(features, "apic")
    root.append(_cpu_element(spec.virt_type))
    etree.SubElement(root, "clock", offset="utc")
    _text(root, "on_poweroff", spec.on_poweroff)
    _text(root, "on_reboot", spec.on_reboot)
    _text(root, "on_crash", spec.on_crash)
    root.append(_devices_element(spec))
    return etree.tostring(root, pretty_print=True, encoding="utf-8")


def _text(parent: etree._Element, tag: str, text: str, **attrs: str) -> etree._Element:
    child = etree.SubElement(parent, tag, attrib=attrs)
    child.text = text
    return child


def _os_element(spec: DomainSpec) -> etree._Element:
    os_el = etree.Element("os")
    _text(os_el, "type", "hvm", arch="x86_64", machine=spec.machine)
    if spec.firmware == "uefi":
        os_el.set("firmware", "efi")
        firmware = etree.SubElement(os_el, "firmware")
        for name in UEFI_FEATURES_OFF:
            etree.SubElement(firmware, "feature", enabled="no", name=name)
        if spec.nvram is not None:
            _text(os_el, "nvram", str(spec.nvram))
    boot = spec.direct_boot
    if boot is None:
        etree.SubElement(os_el, "boot", dev="hd")
        return os_el
    _text(os_el, "kernel", str(boot.kernel))
    if boot.initrd is not None:
        _text(os_el, "initrd", str(boot.initrd))
    if boot.cmdline:
        _text(os_el, "cmdline", boot.cmdline)
    return os_el


def _cpu_element(virt_type: VirtType) -> etree._Element:
    # The engine's EL9 userland needs x86-64-v2: pass the host CPU under KVM, and under TCG
    # ask for everything the emulator offers (its default qemu64 model lacks SSE4.2/POPCNT).
    mode = "host-passthrough" if virt_type == "kvm" else "maximum"
    return etree.Element("cpu", mode=mode)


def _devices_element(spec: DomainSpec) -> etree._Element:
    devices = etree.Element("devices")
    for disk in spec.disks:
        devices.append(_disk_element(disk))
    if any(disk.bus == "scsi" for disk in spec.disks):
        # virtio-scsi, not libvirt's default LSI model: every guest kernel with virtio has it.
        etree.SubElement(devices, "controller", type="scsi", index="0", model="virtio-scsi")
    for nic in spec.nics:
        devices.append(_nic_element(nic))
    for channel in spec.channels:
        devices.append(_channel_element(channel))
    _append_console(devices, spec.serial_log)
    rng = etree.SubElement(devices, "rng", model="virtio")
    # Early boot under TCG stalls on entropy without a virtio RNG.
    _text(rng, "backend", "/dev/urandom", model="random")
    etree.SubElement(devices, "memballoon", model="virtio")
    return devices


def _disk_element(disk: DiskDevice) -> etree._Element:
    el = etree.Element("disk", type="file", device=disk.device)
    driver = etree.SubElement(el, "driver", name="qemu", type=disk.format)
    if disk.discard:
        driver.set("discard", "unmap")
        driver.set("detect_zeroes", "unmap")
    if disk.path is not None:
        source = etree.SubElement(el, "source", file=str(disk.path))
        if disk.optional:
            source.set("startupPolicy", "optional")
    etree.SubElement(el, "target", dev=disk.target, bus=disk.bus)
    if disk.readonly or disk.device == "cdrom":
        etree.SubElement(el, "readonly")
    return el


def _nic_element(nic: NicDevice) -> etree._Element:
    if nic.network is not None:
        el = etree.Element("interface", type="network")
        etree.SubElement(el, "source", network=nic.network)
    else:
        el = etree.Element("interface", type="bridge")
        etree.SubElement(el, "source", bridge=str(nic.bridge))
    etree.SubElement(el, "mac", address=nic.mac)
    etree.SubElement(el, "model", type=nic.model)
    return el


def _channel_element(channel: ChannelDevice) -> etree._Element:
    el = etree.Element("channel", type="unix")
    if channel.socket is not None:
        etree.SubElement(el, "source", mode="bind", path=str(channel.socket))
    etree.SubElement(el, "target", type="virtio", name=channel.name)
    return el


def _append_console(devices: etree._Element, log: Path | None) -> None:
    """A serial port (written to `log` when given) and the console on top of it."""
    kind = "file" if log is not None else "pty"
    serial = etree.SubElement(devices, "serial", type=kind)
    if log is not None:
        etree.SubElement(serial, "source", path=str(log))
    etree.SubElement(serial, "target", port="0")
    console = etree.SubElement(devices, "console", type=kind)
    if log is not None:
        etree.SubElement(console, "source", path=str(log))
    etree.SubElement(console, "target", type="serial", port="0")
