"""Pack an appliance disk into an OVA: qcow2 conversion, OVF, manifest, reproducible tar.

Two layouts:
- `ovirt` (hosted-engine): a gzip-compressed tar, `master/vms/<vm>/<vm>.ovf`, then the disk
  `images/<image>/<volume>`, then the manifest `<name>.mf`. Written in one pass over the
  qcow2: the tar, the member digests, the compression and the OVA's own SHA-1/SHA-256. The
  manifest comes last because a stream cannot go back; hosted-engine and the Ansible role
  never read it, our verifier reads it wherever it is.
- `ovf` (standard OVF 1.1, virt-v2v): a plain tar, `<name>.ovf`, `<name>.mf`, the disk, in
  the order DMTF's spec requires (DSP0243, distribution as a single file); the manifest is
  reserved before the disk and filled in afterwards, so the OVA's own digests take one more
  read of the finished file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from builder.atomic import staged_file
from builder.console import Console
from builder.errors import InputError
from builder.model import ApplianceMeta, BuiltDisk
from builder.ova.digests import FileDigests, file_digests, store_digests
from builder.ova.gzipstream import GzipWriter, Method
from builder.ova.ovf import DiskFacts, render_ovf
from builder.ova.tarball import GzipSink, PlainSink, Progress, TarStream
from builder.repro import stable_uuid
from builder.virt.qemu_img import convert_image, image_info

Compression = Literal["none", "zlib", "zstd"]
OvaLayout = Literal["ovirt", "ovf"]
MANIFEST_LINE = "SHA256({name})= {digest}\n"
HEX_DIGEST_LEN = 64


@dataclass(frozen=True)
class PackedOva:
    path: Path
    layout: OvaLayout
    ovf_member: str
    disk_member: str
    disk_sha256: str
    digests: FileDigests


@dataclass(frozen=True)
class OvaNames:
    """Member names inside the tar, and the ids they are made of (uuid5 of the appliance)."""

    vm_id: str
    image_id: str
    volume_id: str
    ovf: str
    manifest: str
    disk: str
    href: str


def names_for(meta: ApplianceMeta, layout: OvaLayout) -> OvaNames:
    ident = (meta.name, meta.version, meta.release)
    vm_id = str(stable_uuid("ova-vm", *ident))
    image_id = str(stable_uuid("ova-image", *ident))
    volume_id = str(stable_uuid("ova-volume", *ident))
    if layout == "ovirt":
        href = f"{image_id}/{volume_id}"
        return OvaNames(vm_id, image_id, volume_id, f"master/vms/{vm_id}/{vm_id}.ovf",
                        f"{meta.name}.mf", f"images/{href}", href)
    disk = f"{meta.name}-disk1.qcow2"
    return OvaNames(vm_id, image_id, volume_id, f"{meta.name}.ovf", f"{meta.name}.mf",
                    disk, disk)


def convert_disk(source: BuiltDisk, dest: Path, compression: Compression) -> None:
    """The disk as the qcow2 an OVA or the qcow2 RPM carries."""
    convert_image(source.path, source.format, dest, "qcow2", compression=compression)


def image_facts(path: Path) -> tuple[str, int, int]:
    """(format, virtual size, allocated bytes) as qemu-img sees the file."""
    info = image_info(path)
    if info is None:
        raise InputError(f"not a disk image qemu-img can read: {path}")
    return info.format, info.virtual_size, info.actual_size


def disk_method(compression: Compression) -> Method:
    """How the gzip stream carries the qcow2: compressed clusters as they are (only the
    metadata between them is deflated), an uncompressed qcow2 deflated whole."""
    return "deflate" if compression == "none" else "auto"


def pack_ova(disk: BuiltDisk, dest: Path, *, layout: OvaLayout, compression: Compression,
             console: Console, mtime: int, work_dir: Path) -> PackedOva:
    """Convert `disk`, write the OVF and the tar; `dest` appears only when complete, with its
    digests kept beside it (`builder.ova.digests`)."""
    check_source(disk)
    qcow2 = work_dir / f".{dest.name}.qcow2"
    console.note(f"converting {disk.path.name} to qcow2 ({compression})")
    try:
        convert_disk(disk, qcow2, compression)
        packed = write_ova(disk.meta, qcow2, dest, layout=layout, console=console,
                           mtime=mtime, method=disk_method(compression))
    finally:
        qcow2.unlink(missing_ok=True)
    store_digests(dest, packed.digests)
    return packed


def check_source(disk: BuiltDisk) -> None:
    if not disk.path.is_file():
        raise InputError(f"disk image not found: {disk.path}")
    found, _, _ = image_facts(disk.path)
    if found != disk.format:
        raise InputError(f"{disk.path} is {found}, not the {disk.format} image it should be")


def write_ova(meta: ApplianceMeta, qcow2: Path, dest: Path, *, layout: OvaLayout,
              console: Console, mtime: int, method: Method = "auto") -> PackedOva:
    """The OVA of `qcow2` at `dest` (temp + rename); `method` is how a gzip OVA carries it."""
    names = names_for(meta, layout)
    _, virtual, _ = image_facts(qcow2)
    # The qcow2's length, not the blocks the file system gave it (qemu-img's actual-size):
    # those differ from one file system, or one run, to the next, and the OVF must not.
    size = qcow2.stat().st_size
    facts = DiskFacts(href=names.href, file_id=names.volume_id if layout == "ovirt" else
                      "file1", disk_id=names.volume_id, image_id=names.image_id,
                      file_size=size, virtual_size=virtual, actual_size=size)
    created = datetime.fromtimestamp(mtime, UTC).strftime("%Y/%m/%d %H:%M:%S")
    ovf = render_ovf(meta, names.vm_id, facts, layout, created)

    def progress(done: int, total: int) -> None:
        console.progress("ova", done, total)

    with staged_file(dest, mode=0o644) as temp:
        fd = os.open(temp, os.O_WRONLY)
        try:
            if layout == "ovirt":
                disk_sha, digests = _write_gzip(fd, mtime, names, ovf=ovf, qcow2=qcow2,
                                                method=method, progress=progress)
            else:
                disk_sha = _write_plain(fd, mtime, names, ovf=ovf, qcow2=qcow2,
                                        progress=progress)
            os.fsync(fd)
        finally:
            os.close(fd)
        if layout != "ovirt":
            digests = file_digests(temp)
    return PackedOva(dest, layout, names.ovf, names.disk, disk_sha, digests)


def _write_gzip(fd: int, mtime: int, names: OvaNames, *, ovf: bytes, qcow2: Path,
                method: Method, progress: Progress) -> tuple[str, FileDigests]:
    """OVF, disk, manifest into one gzip member; the writer hashes what it writes."""
    with GzipWriter(fd) as writer:
        tar = TarStream(GzipSink(writer), mtime)
        ovf_sha = tar.add_bytes(names.ovf, ovf)
        disk_sha = tar.add_file(names.disk, qcow2, method=method, progress=progress)
        tar.add_bytes(names.manifest, render_manifest([(names.ovf, ovf_sha),
                                                       (names.disk, disk_sha)]))
        tar.close()
        stream = writer.close()
    return disk_sha, FileDigests(stream.size, stream.sha1, stream.sha256)


def _write_plain(fd: int, mtime: int, names: OvaNames, *, ovf: bytes, qcow2: Path,
                 progress: Progress) -> str:
    """OVF first, then the manifest (reserved, filled once the disk is hashed), then the disk."""
    sink = PlainSink(fd)
    tar = TarStream(sink, mtime)
    ovf_sha = tar.add_bytes(names.ovf, ovf)
    lines = [(names.ovf, ovf_sha), (names.disk, "0" * HEX_DIGEST_LEN)]
    manifest_at = tar.reserve(names.manifest, len(render_manifest(lines)))
    disk_sha = tar.add_file(names.disk, qcow2, progress=progress)
    sink.patch(manifest_at, render_manifest([(names.ovf, ovf_sha), (names.disk, disk_sha)]))
    tar.close()
    sink.finish()
    return disk_sha


def render_manifest(entries: list[tuple[str, str]]) -> bytes:
    return "".join(MANIFEST_LINE.format(name=n, digest=d) for n, d in entries).encode()
