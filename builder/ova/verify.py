"""Check an OVA before use (manifest, the OVF read the way hosted-engine reads it, the disk's
header) and unpack its disk: gzip-compressed and plain OVAs alike, in one pass over the file.

A gzip stream cannot be read out of order, so everything is done while the members go by: each
member is hashed, the OVF parsed, the disk written out when asked, and the digests compared with
the manifest wherever it sits (our oVirt layout puts it last)."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import re
import struct
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from lxml import etree

from builder.atomic import staged_file
from builder.errors import IntegrityError, StorageError
from builder.ova.ovf import (
    DMTF_NSMAP,
    DMTF_OVF_NS,
    GIB,
    NSMAP,
    OVF_NS,
    RASD_NS,
    UEFI_BIOS_TYPES,
    VMW_FIRMWARE,
)

MANIFEST_RE = re.compile(r"^SHA256\((?P<name>[^)]+)\)= (?P<digest>[0-9a-f]{64})$")
QCOW2_MAGIC = b"QFI\xfb"
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 4 << 20
HEAD = 32
SMALL_MEMBER_MAX = 16 << 20  # the OVF and the manifest are read into memory
# Room check before the disk is written: (disk member size, virtual size from the OVF).
RoomCheck = Callable[[int, int], None]


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
    firmware: str = "bios"
    compression: str = "none"


@dataclass(frozen=True)
class _OvfFacts:
    layout: str
    disk_member: str
    virtual_size: int
    memory_mib: int
    vcpus: int
    name: str
    firmware: str


@dataclass
class _Scan:
    """What one pass over the members found."""

    compression: str = "none"
    sizes: dict[str, int] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    heads: dict[str, bytes] = field(default_factory=dict)
    ovfs: list[tuple[str, bytes]] = field(default_factory=list)
    manifests: list[tuple[str, bytes]] = field(default_factory=list)
    facts: _OvfFacts | None = None
    disk_written: bool = False
    damaged_end: str | None = None


def verify_ova(path: Path, *, hash_disk: bool = True) -> OvaInfo:
    """Every member matches the manifest, the OVF parses and agrees with the disk; else
    IntegrityError naming the first problem.

    `hash_disk=False` leaves out only the disk member's digest, for a caller that reads the
    disk right after with `extract_disk`, which checks the same digest on the way.
    """
    scan = _read(path, hash_disk=hash_disk)
    return _conclude(path, scan, skip_digest_of_disk=not hash_disk)


def unpack_ova(path: Path, dest: Path, *, room: RoomCheck | None = None) -> OvaInfo:
    """Verify the whole OVA and write its disk to `dest` (zero blocks left as holes), in one
    pass; `dest` appears only when everything matched. `room` is called before the disk is
    written, with its size and virtual size (to refuse early when space is short)."""
    with staged_file(dest, mode=0o644) as temp:
        scan = _read(path, hash_disk=True, disk_dest=temp, room=room)
        info = _conclude(path, scan, skip_digest_of_disk=False)
        if not scan.disk_written:
            # The OVF came after the disk (not our layouts): a second pass takes the disk out.
            _extract(path, info, temp)
    return info


def extract_disk(path: Path, info: OvaInfo, dest: Path) -> Path:
    """Write the OVA's disk to `dest` (holes for zero blocks), checking its SHA-256 on the way;
    `dest` appears only complete and verified."""
    with staged_file(dest, mode=0o644) as temp:
        _extract(path, info, temp)
    return dest


@dataclass
class _Archive:
    """An open OVA: its members in order, and how to check what follows the last one."""

    tar: tarfile.TarFile
    compression: str
    rest: gzip.GzipFile | None = None

    def check_end(self) -> str | None:
        """The gzip trailer (CRC-32, length) is read and checked once the tar is done; a
        problem there is reported after the members' own digests, which say more."""
        if self.rest is None:
            return None
        try:
            while self.rest.read(CHUNK):
                pass
        except (OSError, EOFError, zlib.error) as exc:
            return str(exc)
        return None


class _OneReadAtATime:
    """GzipFile for tarfile, one decompressed chunk per read: a plain read(n) goes on reading
    past the last member's data into the trailer and raises there, losing that data."""

    def __init__(self, stream: gzip.GzipFile) -> None:
        self.stream = stream

    def read(self, size: int, /) -> bytes:
        return self.stream.read1(size)

    def write(self, data: bytes, /) -> object:
        raise io.UnsupportedOperation("an OVA is only read here")

    def tell(self) -> int:
        return self.stream.tell()

    def seek(self, pos: int, /) -> object:
        raise io.UnsupportedOperation("a gzip OVA is read in order")

    def close(self) -> object:
        return None  # the GzipFile is closed by its own context


@contextlib.contextmanager
def _open_members(path: Path) -> Iterator[_Archive]:
    """The tar inside `path`, gzip or not. A gzip stream is read in order only (r|)."""
    try:
        with path.open("rb") as raw:
            compressed = raw.read(len(GZIP_MAGIC)) == GZIP_MAGIC
            raw.seek(0)
            if not compressed:
                with tarfile.open(fileobj=raw, mode="r:") as tar:
                    yield _Archive(tar, "none")
                return
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped, \
                    tarfile.open(fileobj=_OneReadAtATime(unzipped), mode="r|",
                                 bufsize=CHUNK) as tar:
                yield _Archive(tar, "gzip", unzipped)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise IntegrityError(f"{path} is not a readable OVA: {exc}") from exc


def _read(path: Path, *, hash_disk: bool, disk_dest: Path | None = None,
          room: RoomCheck | None = None) -> _Scan:
    scan = _Scan()
    with _open_members(path) as archive:
        scan.compression = archive.compression
        for member in archive.tar:
            if _admit(member, scan):
                _take(archive.tar, member, scan, hash_disk=hash_disk, disk_dest=disk_dest,
                      room=room)
        scan.damaged_end = archive.check_end()
    return scan


def _admit(member: tarfile.TarInfo, scan: _Scan) -> bool:
    """Refuse names that escape, links and duplicates; skip directories."""
    pure = PurePosixPath(member.name)
    if pure.is_absolute() or ".." in pure.parts:
        raise IntegrityError(f"unsafe member name in OVA: {member.name}")
    if member.isdir():
        return False
    if not member.isfile():
        raise IntegrityError(f"OVA member is not a regular file: {member.name}")
    if member.name in scan.sizes:
        raise IntegrityError(f"OVA member appears twice: {member.name}")
    scan.sizes[member.name] = member.size
    return True


def _take(tar: tarfile.TarFile, member: tarfile.TarInfo, scan: _Scan, *, hash_disk: bool,
          disk_dest: Path | None, room: RoomCheck | None) -> None:
    name = member.name
    handle = tar.extractfile(member)
    assert handle is not None  # a regular file
    with handle:
        if name.endswith((".ovf", ".mf")):
            data = _read_small(handle, member)
            if name.endswith(".mf"):
                scan.manifests.append((name, data))
                return
            scan.digests[name] = hashlib.sha256(data).hexdigest()
            scan.ovfs.append((name, data))
            if len(scan.ovfs) == 1:
                scan.facts = _parse_ovf(data, name)
            return
        is_disk = scan.facts is not None and name == scan.facts.disk_member
        if is_disk and disk_dest is not None:
            assert scan.facts is not None
            if room is not None:
                room(member.size, scan.facts.virtual_size)
            scan.digests[name], scan.heads[name] = _copy_out(handle, disk_dest, member.size)
            scan.disk_written = True
        elif is_disk and not hash_disk:
            scan.heads[name] = handle.read(HEAD)
        else:
            scan.digests[name], scan.heads[name] = _hash(handle)


def _read_small(handle: IO[bytes], member: tarfile.TarInfo) -> bytes:
    if member.size > SMALL_MEMBER_MAX:
        raise IntegrityError(f"OVA member {member.name} is too large for an OVF or manifest")
    return handle.read()


def _hash(handle: IO[bytes]) -> tuple[str, bytes]:
    digest = hashlib.sha256()
    head = b""
    while block := handle.read(CHUNK):
        if not head:
            head = block[:HEAD]
        digest.update(block)
    return digest.hexdigest(), head


def _copy_out(handle: IO[bytes], dest: Path, size: int) -> tuple[str, bytes]:
    """The member into `dest`, all-zero blocks left as holes; its SHA-256 and first bytes."""
    digest = hashlib.sha256()
    head = b""
    fd = os.open(dest, os.O_WRONLY | os.O_TRUNC)
    offset = 0
    try:
        while block := handle.read(CHUNK):
            if not head:
                head = block[:HEAD]
            digest.update(block)
            if block.count(0) != len(block):
                _write_at(fd, block, offset, dest)
            offset += len(block)
        _finish(fd, size, dest)
    finally:
        os.close(fd)
    return digest.hexdigest(), head


def _write_at(fd: int, block: bytes, offset: int, dest: Path) -> None:
    try:
        os.pwrite(fd, block, offset)
    except OSError as exc:  # a full disk is not a broken OVA
        raise StorageError(f"cannot write {dest}: {exc.strerror}") from exc


def _finish(fd: int, size: int, dest: Path) -> None:
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError as exc:
        raise StorageError(f"cannot write {dest}: {exc.strerror}") from exc


def _conclude(path: Path, scan: _Scan, *, skip_digest_of_disk: bool) -> OvaInfo:
    """Hold what the pass found against the manifest and the OVF."""
    if len(scan.ovfs) != 1:
        raise IntegrityError(f"OVA must hold exactly one .ovf, found {len(scan.ovfs)}")
    ovf_name = scan.ovfs[0][0]
    facts = scan.facts
    assert facts is not None
    if facts.layout == "ovirt" and not ovf_name.startswith("master"):
        raise IntegrityError(f"{ovf_name}: hosted-engine looks for the OVF as master*.ovf")
    manifest = _parse_manifest(scan)
    disk = facts.disk_member
    if disk not in scan.sizes:
        raise IntegrityError(f"the OVF's disk {disk} is not in the OVA")
    for name, expected in manifest.items():
        if name not in scan.sizes:
            raise IntegrityError(f"manifest lists {name}, which the OVA does not hold")
        if name == disk and skip_digest_of_disk:
            continue
        if scan.digests.get(name) != expected:
            raise IntegrityError(f"checksum mismatch for {name}: the OVA was modified")
    if scan.damaged_end is not None:
        raise IntegrityError(f"{path} is not a readable OVA: {scan.damaged_end}")
    disk_format = _check_disk_header(disk, scan.heads.get(disk, b""), facts.virtual_size)
    return OvaInfo(path, facts.layout, ovf_name, disk, disk_format, scan.sizes[disk],
                   facts.virtual_size, facts.memory_mib, facts.vcpus, facts.name,
                   manifest[disk], facts.firmware, scan.compression)


def _parse_manifest(scan: _Scan) -> dict[str, str]:
    if len(scan.manifests) != 1:
        raise IntegrityError(f"OVA must hold exactly one .mf manifest, found "
                             f"{len(scan.manifests)}")
    name, data = scan.manifests[0]
    entries: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        match = MANIFEST_RE.match(line.strip())
        if match is None:
            raise IntegrityError(f"malformed manifest line: {line[:80]!r}")
        entries[match["name"]] = match["digest"]
    unlisted = sorted(set(scan.sizes) - set(entries) - {name})
    if unlisted:
        raise IntegrityError(f"OVA members missing from the manifest: {', '.join(unlisted)}")
    return entries


def _extract(path: Path, info: OvaInfo, temp: Path) -> None:
    """One pass that writes only the disk member to `temp`, checking its digest."""
    found = False
    with _open_members(path) as archive:
        tar = archive.tar
        for member in tar:
            if member.name != info.disk_member or not member.isfile():
                continue
            handle = tar.extractfile(member)
            assert handle is not None
            with handle:
                digest, _ = _copy_out(handle, temp, member.size)
            if digest != info.disk_sha256:
                raise IntegrityError(f"checksum mismatch extracting {info.disk_member}")
            found = True
            break
    if not found:
        raise IntegrityError(f"{info.disk_member} is not in {path}")


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
            return _ovirt_facts(root, name)
        return _standard_facts(root, name)
    except (IndexError, KeyError, ValueError, AttributeError) as exc:
        raise IntegrityError(f"{name} lacks a field the appliance needs: {exc}") from exc


def _one(root: etree._Element, xpath: str, **variables: str) -> str:
    """The one value `xpath` selects (with `$name` variables); `ovf:` is whichever envelope
    namespace the root uses."""
    nsmap = DMTF_NSMAP if root.tag == f"{{{DMTF_OVF_NS}}}Envelope" else NSMAP
    found = etree.XPath(xpath, namespaces=nsmap)(root, **variables)
    assert isinstance(found, list)
    if len(found) != 1:
        raise KeyError(xpath)
    return str(found[0]).strip()


def _first_rasd(root: etree._Element, tag: str) -> str:
    """hosted-engine's read: the FIRST Content/Section/Item/rasd:<tag> in document order."""
    element = root.find(f"Content/Section/Item/{{{RASD_NS}}}{tag}")
    if element is None or element.text is None:
        raise KeyError(f"Content/Section/Item/rasd:{tag}")
    return element.text.strip()


HW = ('Content[@xsi:type="ovf:VirtualSystem_Type"]'
      '/Section[@xsi:type="ovf:VirtualHardwareSection_Type"]')


def _ovirt_facts(root: etree._Element, name: str) -> _OvfFacts:
    """Read as hosted-engine reads it (boot_disk.py), then held against the Items themselves:
    an OVF it would misread is refused here rather than deployed wrong."""
    disk = root.find("Section/Disk")
    assert disk is not None
    file_ref = str(disk.attrib[f"{{{OVF_NS}}}fileRef"])
    unit = _first_rasd(root, "AllocationUnits")
    if unit != "MegaBytes":
        raise IntegrityError(f"{name}: hosted-engine refuses memory in {unit!r} (MegaBytes)")
    memory = int(_first_rasd(root, "VirtualQuantity"))
    own = int(_one(root, f"/ovf:Envelope/{HW}/Item[rasd:ResourceType=4]"
                         "/rasd:VirtualQuantity/text()"))
    if memory != own:
        raise IntegrityError(f"{name}: hosted-engine would read {memory} MB of memory, the "
                             f"memory Item says {own} (another Item's VirtualQuantity comes "
                             f"first)")
    return _OvfFacts(
        layout="ovirt",
        disk_member=f"images/{file_ref}",
        virtual_size=int(disk.attrib[f"{{{OVF_NS}}}size"]) * GIB,
        memory_mib=memory,
        vcpus=int(_first_rasd(root, "num_of_sockets")) * int(_first_rasd(root, "cpu_per_socket")),
        name=_one(root, "/ovf:Envelope/Content/Name/text()"),
        firmware=_ovirt_firmware(root, name),
    )


def _ovirt_firmware(root: etree._Element, name: str) -> str:
    found = root.findtext("Content/BiosType")
    if found is None:
        return "bios"
    try:
        value = int(found)
    except ValueError as exc:
        raise IntegrityError(f"{name}: BiosType {found!r} is not a number") from exc
    if value not in range(5):
        raise IntegrityError(f"{name}: unknown BiosType {value} (oVirt knows 0 to 4)")
    return "uefi" if value in UEFI_BIOS_TYPES else "bios"


def _standard_facts(root: etree._Element, name: str) -> _OvfFacts:
    hw = "/ovf:Envelope/ovf:VirtualSystem/ovf:VirtualHardwareSection"
    quantity = "rasd:VirtualQuantity/text()"
    file_ref = _one(root, "/ovf:Envelope/ovf:DiskSection/ovf:Disk/@ovf:fileRef")
    # The OVA's own text goes in as an XPath variable, never into the expression.
    href = _one(root, "/ovf:Envelope/ovf:References/ovf:File[@ovf:id=$ref]/@ovf:href",
                ref=file_ref)
    return _OvfFacts(
        layout="ovf",
        disk_member=str(PurePosixPath(name).parent / href),
        virtual_size=int(_one(root, "/ovf:Envelope/ovf:DiskSection/ovf:Disk/@ovf:capacity")),
        memory_mib=int(_one(root, f"{hw}/ovf:Item[rasd:ResourceType=4]/{quantity}")),
        vcpus=int(_one(root, f"{hw}/ovf:Item[rasd:ResourceType=3]/{quantity}")),
        name=_one(root, "/ovf:Envelope/ovf:VirtualSystem/ovf:Name/text()"),
        firmware=_standard_firmware(root, hw, name),
    )


def _standard_firmware(root: etree._Element, hw: str, name: str) -> str:
    """virt-v2v's read: vmw:Config firmware "bios" (the default) or "efi"."""
    found = root.xpath(f'{hw}/vmw:Config[@vmw:key="firmware"]/@vmw:value', namespaces=DMTF_NSMAP)
    assert isinstance(found, list)
    value = str(found[0]) if found else "bios"
    for firmware, vmw in VMW_FIRMWARE.items():
        if value == vmw:
            return firmware
    raise IntegrityError(f"{name}: unknown firmware {value!r} (bios or efi)")


def _check_disk_header(name: str, head: bytes, virtual: int) -> str:
    """The disk is qcow2 and its virtual size agrees with the OVF (oVirt rounds to GiB)."""
    if head[:4] != QCOW2_MAGIC or len(head) < HEAD:
        raise IntegrityError(f"OVA disk {name} is not a qcow2 image")
    (size,) = struct.unpack(">Q", head[24:32])
    if not (size <= virtual < size + GIB if virtual % GIB == 0 else size == virtual):
        raise IntegrityError(
            f"OVF disk size {virtual} does not match the qcow2 virtual size {size}")
    return "qcow2"
