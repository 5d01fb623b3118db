"""The engine VM's disk: verify the OVA, unpack its disk once (sparse), boot a qcow2 overlay."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.atomic import staged_dir, write_atomic
from builder.errors import InputError, StorageError
from builder.launch.storage import StorageModes, create_private_file, private_file
from builder.ova import OvaInfo, check_disk_digest, extract_disk, verify_ova
from builder.ova.ovf import GIB
from builder.run import require_tool, run

STAMP = "unpacked.json"
VERIFIED = "verified"
APPLIANCE_DIR = Path("/usr/share/ovirt-engine-appliance")


@dataclass(frozen=True)
class PreparedDisk:
    """The verified appliance: its OVF facts, the pristine unpacked image, the overlay to boot."""

    ova: Path
    info: OvaInfo
    base: Path
    base_format: str
    overlay: Path
    reused: bool
    verified_before: bool


def locate_ova(appliance: Path, rpm_cache: Path, modes: StorageModes | None = None) -> Path:
    """The OVA to use: the file itself, the newest one in a directory (the installed RPM's
    /usr/share/ovirt-engine-appliance/), or the one inside an appliance RPM.

    An RPM's OVA is extracted once under `rpm_cache` (keyed by the RPM file's identity), so a
    rerun reuses both it and the disk unpacked from it.
    """
    if appliance.is_dir():
        return _newest_ova(appliance)
    if not appliance.is_file():
        raise InputError(f"appliance not found: {appliance}",
                         hint=f"install the appliance RPM (OVA under {APPLIANCE_DIR}/) "
                              "or pass the OVA or RPM file")
    if appliance.suffix != ".rpm":
        return appliance
    (modes or StorageModes()).private_dir(rpm_cache)  # only we read the OVAs taken out
    target = rpm_cache / file_identity(appliance, with_ctime=False)
    found = sorted(target.glob("*.ova")) if target.is_dir() else []
    if found:
        return found[0]
    # The RPM tools are only needed for this input: keep them off every other launch's start.
    from builder.rpm import extract_ova_from_rpm  # noqa: PLC0415

    shutil.rmtree(target, ignore_errors=True)
    with staged_dir(target) as stage:
        private_file(extract_ova_from_rpm(appliance, stage))
    return sorted(target.glob("*.ova"))[0]


def _newest_ova(directory: Path) -> Path:
    found = sorted(directory.glob("*.ova"), key=lambda p: (p.stat().st_mtime_ns, p.name))
    if not found:
        raise InputError(f"no appliance OVA in {directory}",
                         hint="install the ovirt-engine-appliance RPM, or pass an OVA or RPM")
    return found[-1]


def file_identity(source: Path, *, with_ctime: bool = True) -> str:
    """Names `source` as it is now: path, device, inode, size, mtime and ctime.

    Any write to the file changes its ctime (even when the mtime is set back), so a modified
    file gets a new identity and is verified again. An RPM goes without it: reading one
    (rpm2archive hard-links it) changes its ctime, and the OVA taken out of it is verified.
    """
    st = source.stat()
    parts = [source.resolve(), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
    if with_ctime:
        parts.append(st.st_ctime_ns)
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:24]


def prepare_disk(
    ova: Path, images: Path, overlay: Path, modes: StorageModes | None = None,
) -> PreparedDisk:
    """Verify `ova`, unpack its disk under `images` unless done before, create `overlay` on it.

    The disk member is read once: hashed while it is unpacked, or, when an image unpacked
    before is reused, hashed on its own (a tampered OVA is refused either way). Only then is
    the file recorded as verified. Modes and owners follow `modes` (docs/launch.md), on what
    is created and on what is reused.
    """
    modes = modes or StorageModes()
    modes.passage_dir(images)
    modes.private_dir(images / VERIFIED)  # qemu never reads the records: nobody but us may
    record = images / VERIFIED / f"{file_identity(ova)}.json"
    cached = _load_info(record, ova)
    verified_before = cached is not None
    info = cached if cached is not None else verify_ova(ova, hash_disk=False)
    target = images / info.disk_sha256[:16]
    base = _reuse_unpacked(target, info)
    reused = base is not None
    if base is None:
        check_free_space(images, needed=info.disk_size + info.virtual_size)
        base = _unpack(ova, info, target, modes)
    else:
        modes.passage_dir(target)
        modes.shared_readonly(base)
        if not verified_before:
            check_disk_digest(ova, info)
        # In the worst case the guest writes its whole virtual disk into the overlay.
        check_free_space(images, needed=info.virtual_size)
    if not verified_before:
        _record_info(record, info)
    fmt = _disk_format(info)
    create_overlay(base, fmt, overlay)
    modes.qemu_disk(overlay)
    return PreparedDisk(ova=ova, info=info, base=base, base_format=fmt, overlay=overlay,
                        reused=reused, verified_before=verified_before)


def _record_info(record: Path, info: OvaInfo) -> None:
    """Remember that this very file (same identity) passed: reading a 60 GB OVA costs minutes,
    its stat microseconds."""
    fields = {**dataclasses.asdict(info), "path": str(info.path)}
    write_atomic(record, json.dumps(fields, sort_keys=True).encode(), mode=0o600)


def _load_info(record: Path, ova: Path) -> OvaInfo | None:
    try:
        fields: dict[str, Any] = json.loads(record.read_text())
        return OvaInfo(**{**fields, "path": ova})
    except (OSError, ValueError, TypeError):
        return None


def _disk_format(info: OvaInfo) -> str:
    return "raw" if info.disk_format.lower() == "raw" else "qcow2"


def _reuse_unpacked(target: Path, info: OvaInfo) -> Path | None:
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


def _unpack(ova: Path, info: OvaInfo, target: Path, modes: StorageModes) -> Path:
    """Extract the disk sparsely into `target` (read-only afterwards); the stamp comes last."""
    shutil.rmtree(target, ignore_errors=True)
    modes.passage_dir(target)
    try:
        image = extract_disk(ova, info, target / f"disk.{_disk_format(info)}")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # e.g. the disk's digest did not match
        raise
    # The pristine base: only ever opened read-only, as a backing file.
    modes.shared_readonly(image)
    record = {"ova": str(ova), "image": image.name, "stat": _stat_record(image),
              "sha256": info.disk_sha256}
    write_atomic(target / STAMP, json.dumps(record, sort_keys=True).encode(), mode=0o600)
    return image


def create_overlay(base: Path, base_format: str, overlay: Path) -> None:
    """A fresh qcow2 overlay backed by `base` (which the guest then never writes).

    The file is created 0600 first: qemu-img keeps the mode of a file it writes over, so the
    overlay (which will hold secrets) is never readable by others, whatever the umask.
    """
    qemu_img = require_tool("qemu-img", package="qemu-utils")
    overlay.unlink(missing_ok=True)
    create_private_file(overlay)
    try:
        run([qemu_img, "create", "-q", "-f", "qcow2", "-F", base_format, "-b",
             str(base.resolve()), str(overlay)])
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
