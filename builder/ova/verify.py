"""Check an OVA before use (manifest, OVF, disk header) and extract its disk sparsely."""

from __future__ import annotations

import hashlib
import os
import re
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from lxml import etree

from builder.atomic import staged_file
from builder.errors import IntegrityError
from builder.ova.ovf import DMTF_NSMAP, DMTF_OVF_NS, GIB, NSMAP, OVF_NS
from builder.repro import sha256_stream

MANIFEST_RE = re.compile(r"^SHA256\((?P<name>[^)]+)\)= (?P<digest>[0-9a-f]{64})$")
QCOW2_MAGIC = b"QFI\xfb"
CHUNK = 4 << 20


@dataclass(frozen=True)
class OvaInfo:
    """What the launcher needs from a verified OVA."""

    path: Path
    layout: str
    ovf_member: str
    disk_member: str
    disk_format: str
    disk_size: int
    virtual_size: int
    memory_mib: int
    vcpus: int
    name: str
    disk_sha256: str


@dataclass(frozen=True)
class _OvfFacts:
    layout: str
    href: str
    virtual_size: int
    memory_mib: int
    vcpus: int
    name: str


def verify_ova(path: Path, *, hash_disk: bool = True) -> OvaInfo:
    """Every member matches the manifest, the OVF parses and agrees with the disk; else
    IntegrityError naming the first problem.

    `hash_disk=False` leaves out only the disk member's digest, for a caller that reads the
    disk right after with `extract_disk`, which checks the same digest on the way: one read
    of the (large) disk instead of two.
    """
    try:
        with tarfile.open(path, "r:") as tar:
            members = _regular_members(tar)
            manifest = _read_manifest(tar, members)
            ovf_name = _find_ovf(members)
            _check_hashes(tar, members, manifest if hash_disk else
                          {ovf_name: manifest[ovf_name]})
            facts = _parse_ovf(_read_member(tar, members[ovf_name]), ovf_name)
            disk_name = _disk_member(ovf_name, facts.href, members)
            if not hash_disk:
                _check_hashes(tar, members, {name: digest for name, digest in manifest.items()
                                             if name not in (ovf_name, disk_name)})
            disk_format = _check_disk_header(tar, members[disk_name], facts.virtual_size)
    except (tarfile.TarError, OSError) as exc:
        raise IntegrityError(f"{path} is not a readable OVA (tar): {exc}") from exc
    return OvaInfo(path, facts.layout, ovf_name, disk_name, disk_format,
                   members[disk_name].size, facts.virtual_size, facts.memory_mib,
                   facts.vcpus, facts.name, manifest[disk_name])


def check_disk_digest(path: Path, info: OvaInfo) -> None:
    """The disk member's SHA-256 against the manifest's: what `verify_ova(hash_disk=False)`
    left out, for a caller that does not extract the disk."""
    try:
        with tarfile.open(path, "r:") as tar:
            _check_hashes(tar, _regular_members(tar), {info.disk_member: info.disk_sha256})
    except (tarfile.TarError, OSError) as exc:
        raise IntegrityError(f"{path} is not a readable OVA (tar): {exc}") from exc


def _regular_members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    found: dict[str, tarfile.TarInfo] = {}
    for member in tar.getmembers():
        pure = PurePosixPath(member.name)
        if pure.is_absolute() or ".." in pure.parts:
            raise IntegrityError(f"unsafe member name in OVA: {member.name}")
        if member.isdir():
            continue
        if not member.isfile():
            raise IntegrityError(f"OVA member is not a regular file: {member.name}")
        if member.name in found:
            raise IntegrityError(f"OVA member appears twice: {member.name}")
        found[member.name] = member
    return found


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    if handle is None:
        raise IntegrityError(f"cannot read OVA member {member.name}")
    with handle:
        return handle.read()


def _read_manifest(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]) -> dict[str, str]:
    names = [n for n in members if n.endswith(".mf")]
    if len(names) != 1:
        raise IntegrityError(f"OVA must hold exactly one .mf manifest, found {len(names)}")
    entries: dict[str, str] = {}
    for line in _read_member(tar, members[names[0]]).decode("utf-8", "replace").splitlines():
        match = MANIFEST_RE.match(line.strip())
        if match is None:
            raise IntegrityError(f"malformed manifest line: {line[:80]!r}")
        entries[match["name"]] = match["digest"]
    unlisted = sorted(set(members) - set(entries) - {names[0]})
    if unlisted:
        raise IntegrityError(f"OVA members missing from the manifest: {', '.join(unlisted)}")
    return entries


def _check_hashes(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo],
                  manifest: dict[str, str]) -> None:
    for name, expected in manifest.items():
        if name not in members:
            raise IntegrityError(f"manifest lists {name}, which the OVA does not hold")
        handle = tar.extractfile(members[name])
        assert handle is not None
        with handle:
            actual = sha256_stream(handle, chunk=CHUNK)
        if actual != expected:
            raise IntegrityError(f"checksum mismatch for {name}: the OVA was modified")


def _find_ovf(members: dict[str, tarfile.TarInfo]) -> str:
    names = [n for n in members if n.endswith(".ovf")]
    if len(names) != 1:
        raise IntegrityError(f"OVA must hold exactly one .ovf, found {len(names)}")
    return names[0]


def _parse_ovf(data: bytes, name: str) -> _OvfFacts:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise IntegrityError(f"{name} is not well-formed XML: {exc}") from exc
    if root.tag not in (f"{{{OVF_NS}}}Envelope", f"{{{DMTF_OVF_NS}}}Envelope"):
        raise IntegrityError(f"{name} is not an OVF envelope")
    try:
        if root.find("Section/Disk") is not None:
            return _ovirt_facts(root)
        return _standard_facts(root)
    except (IndexError, KeyError, ValueError) as exc:
        raise IntegrityError(f"{name} lacks a field the appliance needs: {exc}") from exc


def _one(root: etree._Element, xpath: str) -> str:
    """The one value `xpath` selects; `ovf:` is whichever envelope namespace the root uses."""
    nsmap = DMTF_NSMAP if root.tag == f"{{{DMTF_OVF_NS}}}Envelope" else NSMAP
    found = root.xpath(xpath, namespaces=nsmap)
    assert isinstance(found, list)
    if len(found) != 1:
        raise KeyError(xpath)
    return str(found[0]).strip()


QUANTITY = "rasd:VirtualQuantity/text()"
HW = ('Content[@xsi:type="ovf:VirtualSystem_Type"]'
      '/Section[@xsi:type="ovf:VirtualHardwareSection_Type"]')


def _ovirt_facts(root: etree._Element) -> _OvfFacts:
    cpu = f"/ovf:Envelope/{HW}/Item[rasd:ResourceType=3]"
    sockets = int(_one(root, f"{cpu}/rasd:num_of_sockets/text()"))
    per = int(_one(root, f"{cpu}/rasd:cpu_per_socket/text()"))
    return _OvfFacts(
        layout="ovirt",
        href=_one(root, "/ovf:Envelope/Section/Disk/@ovf:fileRef"),
        virtual_size=int(_one(root, "/ovf:Envelope/Section/Disk/@ovf:size")) * GIB,
        memory_mib=int(_one(root, f"/ovf:Envelope/{HW}/Item[rasd:ResourceType=4]"
                                  "/rasd:VirtualQuantity/text()")),
        vcpus=sockets * per,
        name=_one(root, "/ovf:Envelope/Content/Name/text()"),
    )


def _standard_facts(root: etree._Element) -> _OvfFacts:
    hw = "/ovf:Envelope/ovf:VirtualSystem/ovf:VirtualHardwareSection"
    file_ref = _one(root, "/ovf:Envelope/ovf:DiskSection/ovf:Disk/@ovf:fileRef")
    return _OvfFacts(
        layout="ovf",
        href=_one(root, f"/ovf:Envelope/ovf:References/ovf:File[@ovf:id='{file_ref}']/@ovf:href"),
        virtual_size=int(_one(root, "/ovf:Envelope/ovf:DiskSection/ovf:Disk/@ovf:capacity")),
        memory_mib=int(_one(root, f"{hw}/ovf:Item[rasd:ResourceType=4]/{QUANTITY}")),
        vcpus=int(_one(root, f"{hw}/ovf:Item[rasd:ResourceType=3]/{QUANTITY}")),
        name=_one(root, "/ovf:Envelope/ovf:VirtualSystem/ovf:Name/text()"),
    )


def _disk_member(ovf_name: str, href: str, members: dict[str, tarfile.TarInfo]) -> str:
    candidates = [f"images/{href}", href, str(PurePosixPath(ovf_name).parent / href)]
    for candidate in candidates:
        if candidate in members:
            return candidate
    raise IntegrityError(f"the OVF's disk {href} is not in the OVA")


def _check_disk_header(tar: tarfile.TarFile, member: tarfile.TarInfo, virtual: int) -> str:
    """The disk is qcow2 and its virtual size agrees with the OVF (oVirt rounds to GiB)."""
    handle = tar.extractfile(member)
    assert handle is not None
    with handle:
        header = handle.read(32)
    if header[:4] != QCOW2_MAGIC:
        raise IntegrityError(f"OVA disk {member.name} is not a qcow2 image")
    (size,) = struct.unpack(">Q", header[24:32])
    if not (size <= virtual < size + GIB if virtual % GIB == 0 else size == virtual):
        raise IntegrityError(
            f"OVF disk size {virtual} does not match the qcow2 virtual size {size}")
    return "qcow2"


def extract_disk(path: Path, info: OvaInfo, dest: Path) -> Path:
    """Write the OVA's disk to `dest` (holes for zero blocks), checking its SHA-256 on the way;
    `dest` appears only complete and verified."""
    with tarfile.open(path, "r:") as tar, staged_file(dest, mode=0o644) as temp:
        handle = tar.extractfile(info.disk_member)
        if handle is None:
            raise IntegrityError(f"{info.disk_member} is not in {path}")
        with handle:
            digest = _copy_sparse_stream(handle, temp, info.disk_size)
        if digest != info.disk_sha256:
            raise IntegrityError(f"checksum mismatch extracting {info.disk_member}")
    return dest


def _copy_sparse_stream(handle: IO[bytes], temp: Path, size: int) -> str:
    digest = hashlib.sha256()
    fd = os.open(temp, os.O_WRONLY | os.O_TRUNC)
    offset = 0
    try:
        while block := handle.read(CHUNK):
            digest.update(block)
            if block.count(0) != len(block):
                os.pwrite(fd, block, offset)
            offset += len(block)
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)
    return digest.hexdigest()
