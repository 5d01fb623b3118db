"""A raw disk that boots from itself under BIOS and UEFI, built without loop devices or root
mounts, the same bytes for the same root tree and epoch:

    sector 0         MBR: GRUB's boot.img code + the partition table (sfdisk)
    sectors 1-2047   GRUB's core.img (BIOS)
    partition 1      EFI system partition, FAT16 (mkfs.fat -C + mtools, then copied in place)
    partition 2      the ext4 root (mke2fs -d at an offset), label `he-root`
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from builder.disk import bootloader, normalize
from builder.errors import CommandError, InputError
from builder.repro import stable_uuid
from builder.run import require_tool, run

FS_LABEL = "he-root"
SECTOR = 512
MIB = 1 << 20
FIRST_PARTITION_SECTOR = 2048
ESP_BYTES = 32 * MIB
GRUB_CFG_MODE = 0o644
KERNEL_CMDLINE = (
    f"root=LABEL={FS_LABEL} ro console=tty0 console=ttyS0,115200n8 net.ifnames=0"
)
# Room the filesystem needs beyond the files: journal, inode tables, and free space for the
# first boot (cloud-init, logs, the engine-setup run).
FS_OVERHEAD = 1.25
FS_SLACK_BYTES = 768 << 20
# Inodes below ext4's first regular inode are reserved (journal, resize...), except the root.
ROOT_INODE = 2
COPY_BLOCK = 1 << 16


@dataclass(frozen=True)
class DiskLayout:
    """Byte offsets and sizes of the two partitions."""

    size: int
    esp_start: int
    esp_bytes: int
    root_start: int

    @property
    def root_bytes(self) -> int:
        return self.size - self.root_start


def plan_layout(size_bytes: int) -> DiskLayout:
    esp_start = FIRST_PARTITION_SECTOR * SECTOR
    return DiskLayout(size_bytes, esp_start, ESP_BYTES, esp_start + ESP_BYTES)


def write_grub_config(root: Path) -> None:
    """/boot/grub/grub.cfg: boot the newest kernel in /boot at once, on serial and screen."""
    kernel, initrd = find_kernel(root)
    lines = [
        "serial --unit=0 --speed=115200",
        "terminal_input serial console",
        "terminal_output serial console",
        f"search --no-floppy --label {FS_LABEL} --set root",
        f"linux /boot/{kernel} {KERNEL_CMDLINE}",
        f"initrd /boot/{initrd}",
        "boot",
    ]
    target = root / "boot/grub/grub.cfg"
    normalize.make_directories(target.parent)
    target.unlink(missing_ok=True)
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    target.chmod(GRUB_CFG_MODE)


def find_kernel(root: Path) -> tuple[str, str]:
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise InputError(f"no kernel in {root / 'boot'}: the root has no linux-image package")
    version = kernels[-1].name.removeprefix("vmlinuz-")
    if not (root / "boot" / f"initrd.img-{version}").is_file():
        raise InputError(f"no initrd for kernel {version} in {root / 'boot'}")
    return f"vmlinuz-{version}", f"initrd.img-{version}"


def assemble_disk(root: Path, disk: Path, size_bytes: int, work_dir: Path, *,
                  epoch: int) -> None:
    """Partition `disk` (created sparse, `size_bytes`), fill the root filesystem, make the
    ESP, install GRUB for BIOS; every timestamp the disk holds is `epoch` or older."""
    layout = plan_layout(size_bytes)
    check_fits(root, layout.root_bytes)
    with disk.open("wb") as handle:
        handle.truncate(size_bytes)
    partition_disk(disk, layout)
    make_filesystem(root, disk, layout, epoch)
    settle_inode_times(f"{disk}?offset={layout.root_start}", epoch, work_dir)
    early = bootloader.write_early_config(work_dir, FS_LABEL)
    efi_image = bootloader.make_efi_image(work_dir, early)
    esp = bootloader.make_esp_image(work_dir, layout.esp_bytes, efi_image, epoch)
    write_at(disk, esp, layout.esp_start)
    core = bootloader.make_core_image(work_dir, early, layout.esp_start - SECTOR)
    bootloader.write_bios_boot(disk, core)
    for scratch in (early, efi_image, esp):
        scratch.unlink()


def check_fits(root: Path, part_bytes: int) -> None:
    used = int(run(["du", "-sxB1", "--apparent-size", root]).text.split()[0])
    needed = int(used * FS_OVERHEAD) + FS_SLACK_BYTES
    if needed > part_bytes:
        raise InputError(
            f"disk too small: the root filesystem needs about {needed >> 20} MiB, "
            f"the partition has {part_bytes >> 20} MiB"
        )


def partition_disk(disk: Path, layout: DiskLayout) -> None:
    """An MBR table: the ESP (type ef, which OVMF boots from), then the root (bootable)."""
    require_tool("sfdisk", package="fdisk")
    label_id = stable_uuid("appliance-disk-label").hex[:8]  # the MBR's disk signature
    script = (
        f"label: dos\nlabel-id: 0x{label_id}\n"
        f"start={layout.esp_start // SECTOR}, size={layout.esp_bytes // SECTOR}, type=ef\n"
        f"start={layout.root_start // SECTOR}, type=83, bootable\n"
    )
    run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", disk], stdin=script.encode())


def make_filesystem(root: Path, disk: Path, layout: DiskLayout, epoch: int) -> None:
    """mke2fs -d: fixed UUID and directory hash seed, filesystem times at `epoch`, entries in
    C-locale order (it sorts each directory with alphasort, which follows LC_COLLATE)."""
    require_tool("mke2fs", package="e2fsprogs")
    fs_uuid = stable_uuid("appliance-root-fs")
    extended = f"offset={layout.root_start},hash_seed={fs_uuid},root_owner=0:0"
    run([
        "mke2fs", "-q", "-F", "-t", "ext4", "-L", FS_LABEL, "-U", str(fs_uuid), "-m", "1",
        "-E", extended, "-d", root, disk, f"{layout.root_bytes // 1024}k",
    ], env={"E2FSPROGS_FAKE_TIME": str(epoch), "LC_ALL": "C"})


def settle_inode_times(device: str, epoch: int, work_dir: Path) -> None:
    """mke2fs -d copies each source file's atime and ctime, which are the build host's (no
    program can set a ctime): set both to `epoch` on every inode in use (debugfs)."""
    require_tool("debugfs", package="e2fsprogs")
    script = work_dir / "inode-times.debugfs"
    script.write_text("".join(
        f"sif <{ino}> atime @{epoch}\nsif <{ino}> ctime @{epoch}\n"
        for ino in used_inodes(device)))
    # With the fake time, closing the filesystem writes `epoch` as its last write time too.
    done = run(["debugfs", "-w", "-f", script, device],
               env={"E2FSPROGS_FAKE_TIME": str(epoch)})
    script.unlink()
    problems = [ln for ln in done.stderr.decode(errors="replace").splitlines()
                if ln.strip() and not ln.startswith("debugfs ")]
    if problems:
        raise CommandError(["debugfs", "-w", "-f", str(script), device], 0,
                           "\n".join(problems))


def used_inodes(device: str) -> list[int]:
    """The root and every non-reserved inode in use, from dumpe2fs's per-group free lists."""
    text = run(["dumpe2fs", device]).text
    first = _header_int(text, "First inode")
    count = _header_int(text, "Inode count")
    free: set[int] = set()
    for line in re.findall(r"^\s+Free inodes: (.*)$", text, flags=re.MULTILINE):
        free.update(_expand_ranges(line))
    return [ino for ino in range(1, count + 1)
            if ino not in free and (ino == ROOT_INODE or ino >= first)]


def _header_int(text: str, name: str) -> int:
    match = re.search(rf"^{name}:\s+(\d+)$", text, flags=re.MULTILINE)
    if match is None:
        raise InputError(f"dumpe2fs printed no {name!r}")
    return int(match.group(1))


def _expand_ranges(text: str) -> set[int]:
    """`12-20, 25` -> {12, ..., 20, 25}."""
    numbers: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, _, high = part.partition("-")
        numbers.update(range(int(low), int(high or low) + 1))
    return numbers


def write_at(disk: Path, image: Path, offset: int) -> None:
    """Copy `image` into `disk` at `offset`, skipping zero blocks (the disk is fresh and
    sparse: they read as zeros already)."""
    fd = os.open(disk, os.O_RDWR)
    try:
        with image.open("rb") as source:
            position = offset
            while block := source.read(COPY_BLOCK):
                if block.count(0) != len(block):
                    os.pwrite(fd, block, position)
                position += len(block)
        os.fsync(fd)
    finally:
        os.close(fd)
