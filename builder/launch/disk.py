"""The engine VM's disk: verify the OVA, unpack its disk once (sparse), boot a qcow2 overlay."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from builder.atomic import staged_dir, write_atomic
from builder.errors import InputError, StorageError
from builder.ova import OvaInfo, extract_disk, verify_ova
from builder.rpm import extract_ova_from_rpm
from builder.run import require_tool, run

STAMP = "unpacked.json"
GIB = 1 << 30


@dataclass(frozen=True)
class PreparedDisk:
    """The verified appliance: its OVF facts, the pristine unpacked image, the overlay to boot."""

    ova: Path
    info: OvaInfo
    base: Path
    base_format: str
    overlay: Path
    reused: bool


def locate_ova(appliance: Path, rpm_cache: Path) -> Path:
    """The OVA to use: the file itself, or the one inside an appliance RPM.

    An RPM's OVA is extracted once under `rpm_cache` (keyed like the unpacked disk), so a
    rerun reuses both it and the disk unpacked from it.
    """
    if not appliance.is_file():
        raise InputError(f"appliance not found: {appliance}")
    if appliance.suffix != ".rpm":
        return appliance
    target = rpm_cache / unpack_key(appliance)
    found = sorted(target.glob("*.ova")) if target.is_dir() else []
    if found:
        return found[0]
    shutil.rmtree(target, ignore_errors=True)
    with staged_dir(target) as stage:
        extract_ova_from_rpm(appliance, stage)
    return sorted(target.glob("*.ova"))[0]


def unpack_key(source: Path) -> str:
    """Names what is unpacked from `source` after its path, size and mtime: a new file, anew."""
    st = source.stat()
    ident = f"{source.resolve()}\x1f{st.st_size}\x1f{st.st_mtime_ns}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def prepare_disk(ova: Path, images: Path, overlay: Path) -> PreparedDisk:
    """Verify `ova`, unpack its disk under `images` unless done before, create `overlay` on it."""
    info = verify_ova(ova)
    target = images / unpack_key(ova)
    base, reused = _reuse_unpacked(target, info)
    if base is None:
        check_free_space(images, needed=ova.stat().st_size + _virtual_size(info))
        base = _unpack(ova, info, target)
    else:
        check_free_space(images, needed=_virtual_size(info))
    fmt = _disk_format(info)
    create_overlay(base, fmt, overlay)
    return PreparedDisk(ova=ova, info=info, base=base, base_format=fmt, overlay=overlay,
                        reused=reused)


def _virtual_size(info: OvaInfo) -> int:
    """Room for the overlay: in the worst case the guest writes its whole virtual disk."""
    return info.virtual_size


def _disk_format(info: OvaInfo) -> str:
    return "raw" if info.disk_format.lower() == "raw" else "qcow2"


def _reuse_unpacked(target: Path, info: OvaInfo) -> tuple[Path | None, bool]:
    """The image unpacked from this very OVA before, when its stamp is intact."""
    stamp = target / STAMP
    try:
        recorded = json.loads(stamp.read_text())
        image = target / str(recorded["image"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, False
    if image.is_file() and image.stat().st_size == recorded.get("size") == info.disk_size:
        return image, True
    return None, False


def _unpack(ova: Path, info: OvaInfo, target: Path) -> Path:
    """Extract the disk sparsely into `target`; the stamp is written last."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True, exist_ok=True)
    image = extract_disk(ova, info, target / f"disk.{_disk_format(info)}")
    record = {"ova": str(ova), "image": image.name, "size": image.stat().st_size}
    write_atomic(target / STAMP, json.dumps(record, sort_keys=True).encode())
    return image


def create_overlay(base: Path, base_format: str, overlay: Path) -> None:
    """A fresh qcow2 overlay backed by `base` (which the guest then never writes)."""
    qemu_img = require_tool("qemu-img", package="qemu-utils")
    overlay.unlink(missing_ok=True)
    run([qemu_img, "create", "-q", "-f", "qcow2", "-F", base_format, "-b", str(base.resolve()),
         str(overlay)])


def check_free_space(directory: Path, *, needed: int) -> None:
    """Refuse early when `directory`'s file system cannot hold `needed` bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    usage = shutil.disk_usage(directory)
    if usage.free < needed:
        raise StorageError(
            f"not enough free space in {directory}: {usage.free / GIB:.1f} GiB free, "
            f"{needed / GIB:.1f} GiB needed",
            hint="free some space or pass another --storage",
        )


def check_traversable(directory: Path) -> None:
    """qemu runs as its own user: every parent of the storage directory must let it pass."""
    for parent in [directory, *directory.parents]:
        if parent.exists() and not parent.stat().st_mode & 0o001:
            raise StorageError(
                f"{parent} is not searchable by other users, so qemu cannot reach the disks",
                hint=f"chmod o+x {parent}, or pass another --storage",
            )
