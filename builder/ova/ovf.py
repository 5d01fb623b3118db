"""OVF documents for the appliance, written with lxml: oVirt's flavour (what hosted-engine
reads: unqualified Section/Disk/Item under ovf:Envelope) and standard OVF 1.x (virt-v2v)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lxml import etree

from builder.model import ApplianceMeta, Firmware

# oVirt writes (and hosted-engine reads) the envelope namespace with a trailing slash; DMTF's
# OVF 1.x namespace, the one virt-v2v and other importers match exactly, has none.
OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1/"
DMTF_OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1"
RASD_NS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD_NS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
# VMware's extension namespace: virt-v2v (and VMware, VirtualBox) read the firmware from
# VirtualHardwareSection/vmw:Config[@vmw:key="firmware"]/@vmw:value, "bios" or "efi".
VMW_NS = "http://www.vmware.com/schema/ovf"
NSMAP = {"ovf": OVF_NS, "rasd": RASD_NS, "vssd": VSSD_NS, "xsi": XSI_NS}
DMTF_NSMAP = {**NSMAP, "ovf": DMTF_OVF_NS, "vmw": VMW_NS}
QCOW2_FORMAT_URI = "http://en.wikipedia.org/wiki/Qcow2"
GIB = 1 << 30
RESOURCE_CPU = 3
RESOURCE_MEMORY = 4
RESOURCE_IDE_CONTROLLER = 5
RESOURCE_DISK = 17
# oVirt's BiosType (the engine's OVF writer, Content/BiosType): 1 I440FX_SEA_BIOS,
# 2 Q35_SEA_BIOS, 3 Q35_OVMF, 4 Q35_SECURE_BOOT; 0 means the cluster's default.
BIOS_TYPES: dict[Firmware, int] = {"bios": 2, "uefi": 3}
UEFI_BIOS_TYPES = frozenset({3, 4})
VMW_FIRMWARE: dict[Firmware, str] = {"bios": "bios", "uefi": "efi"}

OvfFlavour = Literal["ovirt", "ovf"]


@dataclass(frozen=True)
class DiskFacts:
    """What the OVF says about the one disk."""

    href: str
    file_id: str
    disk_id: str
    image_id: str
    file_size: int
    virtual_size: int
    actual_size: int


def _q(ns: str | None, tag: str) -> str:
    return f"{{{ns}}}{tag}" if ns else tag


def _sub(parent: etree._Element, tag: str, text: str | None = None,
         **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, tag, attrib=attrs)
    if text is not None:
        element.text = text
    return element


def _gib(size: int) -> str:
    return str(max(1, -(-size // GIB)))


def render_ovf(meta: ApplianceMeta, vm_id: str, disk: DiskFacts, flavour: OvfFlavour,
               created: str) -> bytes:
    """The OVF bytes (UTF-8, declaration, pretty-printed, deterministic)."""
    envelope_ns = DMTF_OVF_NS if flavour == "ovf" else OVF_NS
    ns = envelope_ns if flavour == "ovf" else None
    root = etree.Element(_q(envelope_ns, "Envelope"),
                         nsmap=DMTF_NSMAP if flavour == "ovf" else NSMAP)
    root.set(_q(envelope_ns, "version"), "1.0" if flavour == "ovf" else "0.9")
    references = _sub(root, _q(ns, "References"))
    _sub(references, _q(ns, "File"), **{
        _q(envelope_ns, "href"): disk.href, _q(envelope_ns, "id"): disk.file_id,
        _q(envelope_ns, "size"): str(disk.file_size), _q(envelope_ns, "description"): meta.name,
    })
    if flavour == "ovirt":
        _add_ovirt_sections(root, meta, vm_id, disk, created)
    else:
        _add_standard_sections(root, meta, vm_id, disk)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8",
                                pretty_print=True))


def _add_ovirt_sections(root: etree._Element, meta: ApplianceMeta, vm_id: str,
                        disk: DiskFacts, created: str) -> None:
    section = _sub(root, "Section", **{_q(XSI_NS, "type"): "ovf:DiskSection_Type"})
    _sub(section, "Info", "List of Virtual Disks")
    _sub(section, "Disk", **{_q(OVF_NS, k): v for k, v in {
        "diskId": disk.disk_id, "size": _gib(disk.virtual_size),
        "actual_size": _gib(disk.actual_size), "vm_snapshot_id": vm_id, "parentRef": "",
        "fileRef": disk.href, "format": QCOW2_FORMAT_URI, "volume-format": "COW",
        "volume-type": "Sparse", "disk-interface": "VirtIO", "boot": "true",
        "disk-alias": f"{meta.name}-disk", "wipe-after-delete": "false",
        "pass-discard": "false",
    }.items()})
    content = _sub(root, "Content", **{_q(OVF_NS, "id"): "out",
                                        _q(XSI_NS, "type"): "ovf:VirtualSystem_Type"})
    _sub(content, "Name", meta.name)
    _sub(content, "Description", meta.description)
    _sub(content, "CreationDate", created)
    _sub(content, "TemplateId", vm_id)
    _sub(content, "IsStateless", "false")
    _sub(content, "VmType", "1")
    _sub(content, "BiosType", str(BIOS_TYPES[meta.firmware]))
    os_section = _sub(content, "Section", **{_q(OVF_NS, "id"): vm_id, _q(OVF_NS, "required"):
                                              "false", _q(XSI_NS, "type"):
                                              "ovf:OperatingSystemSection_Type"})
    _sub(os_section, "Info", "Guest Operating System")
    _sub(os_section, "Description", "other_linux")
    hardware = _sub(content, "Section",
                    **{_q(XSI_NS, "type"): "ovf:VirtualHardwareSection_Type"})
    _sub(hardware, "Info", f"{meta.vcpus} CPU, {meta.memory_mib} Memory")
    system = _sub(hardware, "System")
    _sub(system, _q(VSSD_NS, "VirtualSystemType"), "ENGINE 4.1.0.0")
    _cpu_item(hardware, None, meta.vcpus)
    _memory_item(hardware, None, meta.memory_mib)
    item = _sub(hardware, "Item")
    _rasd(item, {"Caption": f"{meta.name}-disk", "InstanceId": disk.disk_id,
                 "ResourceType": str(RESOURCE_DISK), "HostResource": disk.href,
                 "Parent": "00000000-0000-0000-0000-000000000000",
                 "Template": "00000000-0000-0000-0000-000000000000",
                 "StorageId": "00000000-0000-0000-0000-000000000000",
                 "StoragePoolId": "00000000-0000-0000-0000-000000000000",
                 "CreationDate": created, "LastModified": created})


def _add_standard_sections(root: etree._Element, meta: ApplianceMeta, vm_id: str,
                           disk: DiskFacts) -> None:
    section = _sub(root, _q(DMTF_OVF_NS, "DiskSection"))
    _sub(section, _q(DMTF_OVF_NS, "Info"), "Virtual disk information")
    _sub(section, _q(DMTF_OVF_NS, "Disk"), **{_q(DMTF_OVF_NS, k): v for k, v in {
        "diskId": disk.disk_id, "fileRef": disk.file_id, "capacity": str(disk.virtual_size),
        "capacityAllocationUnits": "byte", "populatedSize": str(disk.actual_size),
        "format": QCOW2_FORMAT_URI,
    }.items()})
    system = _sub(root, _q(DMTF_OVF_NS, "VirtualSystem"), **{_q(DMTF_OVF_NS, "id"): meta.name})
    _sub(system, _q(DMTF_OVF_NS, "Info"), meta.description)
    _sub(system, _q(DMTF_OVF_NS, "Name"), meta.name)
    os_section = _sub(system, _q(DMTF_OVF_NS, "OperatingSystemSection"),
                      **{_q(DMTF_OVF_NS, "id"): "96"})
    _sub(os_section, _q(DMTF_OVF_NS, "Info"), "Guest Operating System")
    hardware = _sub(system, _q(DMTF_OVF_NS, "VirtualHardwareSection"))
    _sub(hardware, _q(DMTF_OVF_NS, "Info"), f"{meta.vcpus} CPU, {meta.memory_mib} MiB memory")
    _cpu_item(hardware, DMTF_OVF_NS, meta.vcpus)
    _memory_item(hardware, DMTF_OVF_NS, meta.memory_mib)
    # Importers map a disk to a bus through its parent controller (5: IDE, 6: SCSI).
    controller = _sub(hardware, _q(DMTF_OVF_NS, "Item"))
    _rasd(controller, {"Address": "0", "ElementName": "ideController0", "InstanceID": "3",
                       "ResourceType": str(RESOURCE_IDE_CONTROLLER)})
    item = _sub(hardware, _q(DMTF_OVF_NS, "Item"))
    _rasd(item, {"AddressOnParent": "0", "ElementName": "disk0",
                 "HostResource": f"ovf:/disk/{disk.disk_id}", "InstanceID": "4", "Parent": "3",
                 "ResourceType": str(RESOURCE_DISK)})
    _sub(hardware, _q(VMW_NS, "Config"), **{_q(DMTF_OVF_NS, "required"): "false",
                                            _q(VMW_NS, "key"): "firmware",
                                            _q(VMW_NS, "value"): VMW_FIRMWARE[meta.firmware]})
    del vm_id


def _rasd(item: etree._Element, values: dict[str, str]) -> None:
    """RASD children in the given order: DMTF's schema wants them alphabetical (sorted by the
    callers of the standard layout), oVirt's dialect has its own order."""
    for name, value in values.items():
        _sub(item, _q(RASD_NS, name), value)


def _cpu_item(hardware: etree._Element, ns: str | None, vcpus: int) -> None:
    item = _sub(hardware, _q(ns, "Item"))
    if ns is None:
        # No rasd:VirtualQuantity here: hosted-engine reads the memory as the FIRST
        # VirtualQuantity of the document, and the vCPUs as num_of_sockets x cpu_per_socket.
        _rasd(item, {"Caption": f"{vcpus} virtual cpu", "Description": "Number of virtual CPU",
                     "InstanceId": "1", "ResourceType": str(RESOURCE_CPU),
                     "num_of_sockets": str(vcpus), "cpu_per_socket": "1",
                     "threads_per_cpu": "1", "max_num_of_vcpus": str(vcpus * 4)})
    else:
        _rasd(item, {"ElementName": f"{vcpus} virtual CPU", "InstanceID": "1",
                     "ResourceType": str(RESOURCE_CPU), "VirtualQuantity": str(vcpus)})


def _memory_item(hardware: etree._Element, ns: str | None, memory_mib: int) -> None:
    item = _sub(hardware, _q(ns, "Item"))
    caption = f"{memory_mib} MB of memory"
    if ns is None:
        _rasd(item, {"Caption": caption, "Description": "Memory Size", "InstanceId": "2",
                     "ResourceType": str(RESOURCE_MEMORY), "AllocationUnits": "MegaBytes",
                     "VirtualQuantity": str(memory_mib)})
    else:
        _rasd(item, {"AllocationUnits": "byte * 2^20", "ElementName": caption,
                     "InstanceID": "2", "ResourceType": str(RESOURCE_MEMORY),
                     "VirtualQuantity": str(memory_mib)})
