"""The engine VM's disk: verify the appliance, unpack its disk once (sparse), boot a qcow2 overlay.

The appliance comes as an OVA (gzip or plain tar), as the qcow2 RPM's image with our metadata
JSON beside it, as either RPM, or as the directory an RPM installs them in."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.atomic import staged_dir, write_atomic
from builder.errors import BuilderError, CommandError, InputError, IntegrityError, StorageError
from builder.launch.storage import StorageModes, create_private_file, private_file
from builder.ova import OvaInfo, unpack_ova
from builder.ova.ovf import GIB
from builder.ova.verify import RoomCheck
from builder.pipeline.store import StageCache, stamp_used
from builder.sparse import read_sparse
from builder.virt.qemu_img import create_image, image_info

STAMP = "unpacked.json"
VERIFIED = "verified"
APPLIANCE_DIR = Path("/usr/share/ovirt-engine-appliance")
IMAGE_SUFFIXES = (".ova", ".qcow2")
DISK_FILE = "disk.qcow2"
ZEROS = memoryview(bytes(4 << 20))
# A prune (--unused-for 0) can take an image between its lookup and its overlay (unpack it
# again), or an RPM's OVA between its lookup and its reading (take it out again).
PREPARE_ATTEMPTS = 2


@dataclass(frozen=True)
class ApplianceInfo:
    """What the launcher needs from a verified appliance, however it was packaged."""

    source: Path
    kind: str  # "ova" or "qcow2"
    name: str
    memory_mib: int
    vcpus: int
    firmware: str  # "bios" or "uefi": what the appliance boots with unless told otherwise
    disk_format: str
    disk_size: int
    virtual_size: int
    disk_sha256: str

    @classmethod
    def from_ova(cls, info: OvaInfo) -> ApplianceInfo:
        return cls(info.path, "ova", info.name, info.memory_mib, info.vcpus, info.firmware,
                   info.disk_format, info.disk_size, info.virtual_size, info.disk_sha256)


@dataclass(frozen=True)
class PreparedDisk:
    """The verified appliance: its facts, the pristine unpacked image, the overlay to boot."""

    appliance: Path
    info: ApplianceInfo
    base: Path
    base_format: str
    overlay: Path
    reused: bool
    verified_before: bool


def locate_appliance(
    appliance: Path, rpm_cache: Path, modes: StorageModes | None = None,
) -> Path:
    """The appliance file to use: the file itself, the newest one in a directory (an installed
    RPM's /usr/share/ovirt-engine-appliance/), or the one inside an appliance RPM.

    An RPM's image is extracted once under `rpm_cache` (keyed by the RPM file's identity), so a
    rerun reuses both it and the disk unpacked from it.
    """
    if appliance.is_dir():
        return _newest_image(appliance)
    if not appliance.is_file():
        raise InputError(f"appliance not found: {appliance}",
                         hint=f"install the appliance RPM (image under {APPLIANCE_DIR}/) "
                              "or pass the OVA, qcow2 or RPM file")
    if appliance.suffix != ".rpm":
        return appliance
    (modes or StorageModes()).private_dir(rpm_cache)  # only we read what is taken out
    target = rpm_cache / file_identity(appliance, with_ctime=False)
    if target.is_dir():
        found = _images_in(target)
        if found:
            stamp_used(target)  # what `he-launch --prune-images` reads as its last use
            return found[0]
        # Emptied by hand: taken out again. (Never removed otherwise: another launch of the
        # same RPM may be reading it.)
        shutil.rmtree(target, ignore_errors=True)
    # The RPM tools are only needed for this input: keep them off every other launch's start.
    from builder.rpm import extract_appliance_from_rpm  # noqa: PLC0415

    # Another launch of the same RPM may publish it first: then its copy stays (replace=False).
    with staged_dir(target, replace=False) as stage:
        extract_appliance_from_rpm(appliance, stage)
        for extracted in stage.iterdir():
            private_file(extracted)
    return _images_in(target)[0]


def prepare_appliance_disk(
    appliance: Path, rpm_cache: Path, images: Path, overlay: Path,
    modes: StorageModes | None = None,
) -> PreparedDisk:
    """`locate_appliance`, then `prepare_disk` on what it found. An OVA taken out of an RPM
    that a prune removed before this launch read it (`--unused-for 0`, between the two) is
    taken out again; once read, it is needed no more."""
    for _ in range(PREPARE_ATTEMPTS):
        found = locate_appliance(appliance, rpm_cache, modes)
        try:
            return prepare_disk(found, images, overlay, modes)
        except (OSError, BuilderError):
            if not _pruned_extract(found, rpm_cache):
                raise
    raise StorageError(f"the appliance this launch took out of {appliance} was removed from "
                       f"{rpm_cache} before it could be read, {PREPARE_ATTEMPTS} times",
                       hint="a prune with --unused-for 0 is running: run the launch after it")


def _pruned_extract(found: Path, rpm_cache: Path) -> bool:
    """Whether `found`, an RPM's OVA under `rpm_cache`, is gone."""
    return found.is_relative_to(rpm_cache) and not found.exists()


def _images_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in IMAGE_SUFFIXES and p.is_file())


def _newest_image(directory: Path) -> Path:
    found = sorted(_images_in(directory), key=lambda p: (p.stat().st_mtime_ns, p.name))
    if not found:
        raise InputError(f"no appliance OVA or qcow2 in {directory}",
                         hint="install the ovirt-engine-appliance RPM, or pass an OVA or RPM")
    return found[-1]


def file_identity(source: Path, *, with_ctime: bool = True) -> str:
    """Names `source` as it is now: path, device, inode, size, mtime and ctime.

    Any write to the file changes its ctime (even when the mtime is set back), so a modified
    file gets a new identity and is verified again. An RPM goes without it: reading one
    (rpm2archive hard-links it) changes its ctime, and the image taken out of it is verified.
    """
    st = source.stat()
    parts = [source.resolve(), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
    if with_ctime:
        parts.append(st.st_ctime_ns)
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:24]


def prepare_disk(
    appliance: Path, images: Path, overlay: Path, modes: StorageModes | None = None,
) -> PreparedDisk:
    """Verify `appliance`, unpack its disk under `images` unless done before, create `overlay`.

    The appliance is read once: verified while its disk is unpacked. An image unpacked before
    is reused only while this very file (same identity) is the one recorded as verified; any
    other file, or a changed image, is verified and unpacked again in one pass. Modes and
    owners follow `modes` (docs/launch.md), on what is created and on what is reused.
    Once the overlay exists its image is claimed (`StageCache.claim`): if a prune took the
    image before that, it is unpacked again.
    """
    modes = modes or StorageModes()
    for _ in range(PREPARE_ATTEMPTS):
        disk = _prepare_once(appliance, images, overlay, modes)
        if disk is not None and image_cache(images).claim(disk.base.parent, disk.base):
            return disk
        overlay.unlink(missing_ok=True)
    raise StorageError(f"the image under {images} this launch unpacked was removed before its "
                       f"overlay could hold it, {PREPARE_ATTEMPTS} times",
                       hint="a prune with --unused-for 0 is running: run the launch after it")


def _prepare_once(
    appliance: Path, images: Path, overlay: Path, modes: StorageModes,
) -> PreparedDisk | None:
    """`prepare_disk` once; None when the image went before the overlay could be made."""
    modes.passage_dir(images)
    modes.private_dir(images / VERIFIED)  # qemu never reads the records: nobody but us may
    record = images / VERIFIED / f"{file_identity(appliance)}.json"
    info = _load_info(record, appliance)
    verified_before = info is not None
    entry = image_cache(images).lookup(images.name, image_key(info)) if info is not None else None
    if info is not None and entry is not None and (base := _reuse_unpacked(entry, info)):
        reused = True
        modes.passage_dir(base.parent)
        modes.shared_readonly(base)
        # In the worst case the guest writes its whole virtual disk into the overlay.
        check_free_space(images, needed=info.virtual_size)
    else:
        reused = False
        info, base = _unpack(appliance, images, modes)
    if not verified_before:
        _record_info(record, info)
    if not _overlay_onto(base, info.disk_format, overlay):
        return None
    modes.qemu_disk(overlay)
    return PreparedDisk(appliance=appliance, info=info, base=base, base_format=info.disk_format,
                        overlay=overlay, reused=reused, verified_before=verified_before)


def image_cache(images: Path) -> StageCache:
    """The unpacked images: entries `images/<key>` of the pipeline's store (rooted at the
    storage directory, `images` a stage of it), made and found by the same protocol."""
    return StageCache(images.parent)


def image_key(info: ApplianceInfo) -> str:
    """An unpacked image's key: its content (the first 16 hex digits of its SHA-256), so
    two appliance files holding the same disk share one."""
    return info.disk_sha256[:16]


def _record_info(record: Path, info: ApplianceInfo) -> None:
    """Remember that this very file (same identity) passed: reading a 60 GB OVA costs minutes,
    its stat microseconds."""
    fields = {**dataclasses.asdict(info), "source": str(info.source.absolute())}
    write_atomic(record, json.dumps(fields, sort_keys=True).encode(), mode=0o600)


def _load_info(record: Path, appliance: Path) -> ApplianceInfo | None:
    try:
        fields: dict[str, Any] = json.loads(record.read_text())
        return ApplianceInfo(**{**fields, "source": appliance})
    except (OSError, ValueError, TypeError):
        return None


def _reuse_unpacked(target: Path, info: ApplianceInfo) -> Path | None:
    """The image unpacked from this disk before, when it is unchanged since (stamp vs stat)."""
    try:
        recorded = json.loads((target / STAMP).read_text())
        image = target / str(recorded["image"])
        st = image.stat()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    same = (recorded.get("sha256") == info.disk_sha256 and st.st_size == info.disk_size
            and recorded.get("stat") == _stat_record(image))
    return image if same else None


def _stat_record(image: Path) -> list[int]:
    """What changes when the image is written or replaced. Not the ctime: libvirt chowns a
    backing file to qemu's user for every boot and back afterwards."""
    st = image.stat()
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _unpack(
    appliance: Path, images: Path, modes: StorageModes,
) -> tuple[ApplianceInfo, Path]:
    """Verify `appliance` and write its disk into a scratch directory of the image cache,
    read-only, with its stamp; then make that the entry of its key (one rename). An entry of
    that key that is still sound (someone else unpacked the same disk) is kept; an unsound one
    is replaced. Nothing is left behind when verification fails."""
    cache = image_cache(images)
    with cache.scratch(images.name) as scratch:
        modes.passage_dir(scratch)  # qemu runs as its own user and opens the base through it
        disk = scratch / DISK_FILE
        if appliance.suffix == ".qcow2":
            info = _unpack_qcow2(appliance, disk, images)
        else:
            info = ApplianceInfo.from_ova(unpack_ova(appliance, disk, room=_room_in(images)))
        # The pristine base: only ever opened read-only, as a backing file.
        modes.shared_readonly(disk)
        stamp = {"source": str(appliance), "image": disk.name, "stat": _stat_record(disk),
                 "sha256": info.disk_sha256}
        write_atomic(scratch / STAMP, json.dumps(stamp, sort_keys=True).encode(), mode=0o600)
        key = image_key(info)
        sound = _reuse_unpacked(cache.entry(images.name, key), info)
        target = cache.adopt(images.name, key, scratch, replace=sound is None)
    return info, target / DISK_FILE


def _room_in(images: Path) -> RoomCheck:
    def room(size: int, virtual: int) -> None:
        check_free_space(images, needed=size + virtual)
    return room


def _unpack_qcow2(image: Path, dest: Path, images: Path) -> ApplianceInfo:
    """A bare qcow2 (the qcow2 RPM's): facts from its metadata JSON, its SHA-256 checked while
    it is copied, its header checked with qemu-img."""
    from builder.rpm.metadata import parse_metadata  # noqa: PLC0415

    source = _metadata_beside(image)
    meta = parse_metadata(source.read_bytes(), str(source))
    size = image.stat().st_size
    virtual = _qcow2_virtual_size(image)
    check_free_space(images, needed=size + virtual)
    digest = _copy_hashing(image, dest)
    if digest != meta.sha256 or size != meta.size:
        raise IntegrityError(f"checksum mismatch for {image}: it is not the image "
                             f"{source.name} describes")
    return ApplianceInfo(image, "qcow2", meta.name, meta.memory_mib, meta.vcpus, meta.firmware,
                         "qcow2", size, virtual, digest)


def _metadata_beside(image: Path) -> Path:
    """The JSON the RPM installs beside `image` (its "image" field names the file)."""
    for candidate in sorted(image.parent.glob("*.json")):
        try:
            if json.loads(candidate.read_text()).get("image") == image.name:
                return candidate
        except (OSError, ValueError, AttributeError):
            continue
    raise InputError(f"no appliance metadata beside {image}: memory, vCPUs and firmware are "
                     f"not known", hint="pass the appliance RPM, or the directory it installs")


def _qcow2_virtual_size(image: Path) -> int:
    info = image_info(image, fmt="qcow2")
    if info is None:
        raise IntegrityError(f"{image} is not a qcow2 image qemu-img can read")
    return info.virtual_size


def _copy_hashing(source: Path, dest: Path) -> str:
    """Copy keeping the holes, hashing on the way (holes as zeros)."""
    digest = hashlib.sha256()
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    position = 0
    try:
        for offset, block in read_sparse(source):
            _hash_zeros(digest, offset - position)
            os.pwrite(fd, block, offset)
            digest.update(block)
            position = offset + len(block)
        size = source.stat().st_size
        _hash_zeros(digest, size - position)
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError as exc:
        raise StorageError(f"cannot write {dest}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    return digest.hexdigest()


def _hash_zeros(digest: hashlib._Hash, count: int) -> None:
    while count > 0:
        step = min(count, len(ZEROS))
        digest.update(ZEROS[:step])
        count -= step


def _overlay_onto(base: Path, base_format: str, overlay: Path) -> bool:
    """`create_overlay`; False when it failed because `base` is gone (a prune took it)."""
    try:
        create_overlay(base, base_format, overlay)
    except CommandError:
        if base.exists():
            raise
        return False
    return True


def create_overlay(base: Path, base_format: str, overlay: Path) -> None:
    """A fresh qcow2 overlay backed by `base` (which the guest then never writes).

    The file is created 0600 first: qemu-img keeps the mode of a file it writes over, so the
    overlay (the engine's disk) is never readable by others, whatever the umask.
    """
    overlay.unlink(missing_ok=True)
    create_private_file(overlay)
    try:
        create_image(overlay, backing=base, backing_format=base_format)
    except BaseException:
        overlay.unlink(missing_ok=True)
        raise


def check_free_space(directory: Path, *, needed: int) -> None:
    """Refuse early when `directory`'s file system cannot hold `needed` bytes."""
    usage = shutil.disk_usage(directory)
    if usage.free < needed:
        raise StorageError(
            f"not enough free space in {directory}: {usage.free / GIB:.1f} GiB free, "
            f"{needed / GIB:.1f} GiB needed",
            hint="free some space or pass another --storage",
        )
