"""A raw disk that boots from itself under BIOS, built without loop devices or root mounts:
an MBR partition table (sfdisk), an ext4 filled from a directory (mke2fs -d at an offset),
and GRUB's boot.img + core.img written into the MBR gap."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from builder.errors import InputError
from builder.repro import stable_uuid
from builder.run import require_tool, run

FS_LABEL = "he-root"
PART_START_SECTOR = 2048
SECTOR = 512
GRUB_DIR = Path("/usr/lib/grub/i386-pc")
GRUB_MODULES = (
    "biosdisk", "part_msdos", "ext2", "normal", "linux", "serial", "terminal", "echo",
    "configfile", "search", "search_label",
)
KERNEL_CMDLINE = (
    f"root=LABEL={FS_LABEL} ro console=tty0 console=ttyS0,115200n8 net.ifnames=0"
)
# boot.img: the bytes before the partition table are code; 0x66 holds a jump that skips the
# "trust the BIOS boot drive" workaround, which hard disks want (as grub-bios-setup does).
MBR_CODE_END = 0x1B8
BOOT_DRIVE_CHECK = 0x66
# Room the filesystem needs beyond the files: journal, inode tables, and free space for the
# first boot (cloud-init, logs, the engine-setup run).
FS_OVERHEAD = 1.25
FS_SLACK_BYTES = 768 << 20


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
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")


def find_kernel(root: Path) -> tuple[str, str]:
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise InputError(f"no kernel in {root / 'boot'}: the root has no linux-image package")
    version = kernels[-1].name.removeprefix("vmlinuz-")
    if not (root / "boot" / f"initrd.img-{version}").is_file():
        raise InputError(f"no initrd for kernel {version} in {root / 'boot'}")
    return f"vmlinuz-{version}", f"initrd.img-{version}"


def assemble_disk(root: Path, disk: Path, size_bytes: int, work_dir: Path) -> None:
    """Partition `disk` (created sparse, `size_bytes`), fill the filesystem, install GRUB."""
    part_bytes = size_bytes - PART_START_SECTOR * SECTOR
    check_fits(root, part_bytes)
    with disk.open("wb") as handle:
        handle.truncate(size_bytes)
    partition_disk(disk)
    make_filesystem(root, disk, part_bytes)
    install_grub(disk, work_dir)


def check_fits(root: Path, part_bytes: int) -> None:
    used = int(run(["du", "-sxB1", "--apparent-size", root]).text.split()[0])
    needed = int(used * FS_OVERHEAD) + FS_SLACK_BYTES
    if needed > part_bytes:
        raise InputError(
            f"disk too small: the root filesystem needs about {needed >> 20} MiB, "
            f"the partition has {part_bytes >> 20} MiB"
        )


def partition_disk(disk: Path) -> None:
    require_tool("sfdisk", package="fdisk")
    label_id = stable_uuid("disk-label", disk.name).hex[:8]
    script = f"label: dos\nlabel-id: 0x{label_id}\nstart={PART_START_SECTOR}, type=83, bootable\n"
    run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", disk], stdin=script.encode())


def make_filesystem(root: Path, disk: Path, part_bytes: int) -> None:
    require_tool("mke2fs", package="e2fsprogs")
    fs_uuid = stable_uuid("appliance-root-fs")
    extended = f"offset={PART_START_SECTOR * SECTOR},hash_seed={fs_uuid},root_owner=0:0"
    run([
        "mke2fs", "-q", "-F", "-t", "ext4", "-L", FS_LABEL, "-U", str(fs_uuid), "-m", "1",
        "-E", extended, "-d", root, disk, f"{part_bytes // 1024}k",
    ], env={"E2FSPROGS_FAKE_TIME": "1700000000"})


def install_grub(disk: Path, work_dir: Path) -> None:
    """grub-mkimage builds core.img (its blocklist already points at sector 2 onward); it goes
    right after the MBR, and boot.img's code goes in front of the partition table."""
    require_tool("grub-mkimage", package="grub-pc-bin")
    core = work_dir / "core.img"
    run([
        "grub-mkimage", "-O", "i386-pc", "-o", core, "-p", "(hd0,msdos1)/boot/grub",
        *GRUB_MODULES,
    ])
    core_bytes = core.read_bytes()
    if len(core_bytes) > (PART_START_SECTOR - 1) * SECTOR:
        raise InputError(f"GRUB core image too large for the MBR gap: {len(core_bytes)} bytes")
    write_boot_sectors(disk, (GRUB_DIR / "boot.img").read_bytes(), core_bytes)
    core.unlink()


def write_boot_sectors(disk: Path, boot_img: bytes, core_img: bytes) -> None:
    fd = os.open(disk, os.O_RDWR)
    try:
        mbr = bytearray(os.pread(fd, SECTOR, 0))
        code = bytearray(boot_img[:MBR_CODE_END])
        code[BOOT_DRIVE_CHECK:BOOT_DRIVE_CHECK + 2] = b"\x90\x90"
        mbr[:MBR_CODE_END] = code
        os.pwrite(fd, bytes(mbr), 0)
        os.pwrite(fd, core_img, SECTOR)
        os.fsync(fd)
    finally:
        os.close(fd)


def grub_available() -> bool:
    return shutil.which("grub-mkimage") is not None and (GRUB_DIR / "boot.img").is_file()
