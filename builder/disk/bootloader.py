"""GRUB for both firmwares, made on the build host from Debian's GRUB binaries: core.img for the
MBR gap (BIOS), and BOOTX64.EFI in a FAT EFI system partition image (UEFI). Both carry the same
early config, which finds the root filesystem by label and reads its /boot/grub/grub.cfg."""

from __future__ import annotations

import os
from pathlib import Path

from builder.errors import InputError, MissingPrerequisiteError
from builder.repro import stable_uuid
from builder.run import require_tool, run

BIOS_DIR = Path("/usr/lib/grub/i386-pc")
EFI_DIR = Path("/usr/lib/grub/x86_64-efi")
# Built into the images: nothing is loaded from disk, so the ESP holds one file.
COMMON_MODULES = (
    "part_msdos", "ext2", "normal", "linux", "serial", "terminal", "echo", "configfile",
    "search", "search_label",
)
BIOS_MODULES = ("biosdisk", *COMMON_MODULES)
# efi_gop: the kernel gets a framebuffer to hand over (else GRUB warns that the OS has no
# console); the serial console is what the appliance uses.
EFI_MODULES = ("fat", "efi_gop", *COMMON_MODULES)
# The removable-media path: firmware boots it without any NVRAM boot entry.
EFI_BOOT_PATH = ("EFI", "BOOT", "BOOTX64.EFI")
ESP_LABEL = "HE-ESP"
SECTOR = 512
# boot.img: the bytes before the partition table are code; 0x66 holds a jump that skips the
# "trust the BIOS boot drive" workaround, which hard disks want (as grub-bios-setup does).
MBR_CODE_END = 0x1B8
BOOT_DRIVE_CHECK = 0x66


def early_config(fs_label: str) -> str:
    """What both GRUB images run first: root by label, then normal mode reads grub.cfg."""
    return (f"search --no-floppy --label {fs_label} --set=root\n"
            "set prefix=($root)/boot/grub\n")


def write_early_config(work_dir: Path, fs_label: str) -> Path:
    path = work_dir / "grub-early.cfg"
    path.write_text(early_config(fs_label), encoding="utf-8")
    return path


def make_core_image(work_dir: Path, early: Path, gap_bytes: int) -> bytes:
    """GRUB's i386-pc core.img; its blocklist already points at sector 2 onward, so it goes
    right after the MBR."""
    require_platform(BIOS_DIR, "grub-pc-bin")
    core = work_dir / "core.img"
    run([require_tool("grub-mkimage", package="grub-common"), "-O", "i386-pc", "-o", core,
         "-c", early, "-p", "/boot/grub", *BIOS_MODULES])
    data = core.read_bytes()
    core.unlink()
    if len(data) > gap_bytes:
        raise InputError(f"GRUB core image too large for the MBR gap: {len(data)} bytes")
    return data


def make_efi_image(work_dir: Path, early: Path) -> Path:
    """GRUB's x86_64-efi image (grub-mkimage writes a fixed PE timestamp)."""
    require_platform(EFI_DIR, "grub-efi-amd64-bin")
    image = work_dir / "BOOTX64.EFI"
    run([require_tool("grub-mkimage", package="grub-common"), "-O", "x86_64-efi", "-o", image,
         "-c", early, "-p", "/boot/grub", *EFI_MODULES])
    return image


def make_esp_image(work_dir: Path, size_bytes: int, efi_image: Path, epoch: int) -> Path:
    """A FAT image holding EFI/BOOT/BOOTX64.EFI, the same bytes for the same inputs:
    mkfs.fat's --invariant fixes its times and random fields (then -i sets our volume id),
    mtools dates the entries from SOURCE_DATE_EPOCH in UTC."""
    require_tool("mkfs.fat", package="dosfstools")
    mmd = require_tool("mmd", package="mtools")
    mcopy = require_tool("mcopy", package="mtools")
    esp = work_dir / "esp.img"
    esp.unlink(missing_ok=True)
    volume_id = stable_uuid("appliance-esp").hex[:8]
    run(["mkfs.fat", "-C", "--invariant", "-i", volume_id, "-F", "16", "-n", ESP_LABEL,
         esp, str(size_bytes // 1024)])
    env = {"SOURCE_DATE_EPOCH": str(epoch), "TZ": "UTC", "MTOOLS_SKIP_CHECK": "1"}
    parts = [f"::/{'/'.join(EFI_BOOT_PATH[:n])}" for n in range(1, len(EFI_BOOT_PATH))]
    run([mmd, "-i", esp, *parts], env=env)
    run([mcopy, "-i", esp, efi_image, f"::/{'/'.join(EFI_BOOT_PATH)}"], env=env)
    return esp


def write_bios_boot(disk: Path, core_img: bytes) -> None:
    """boot.img's code in front of the partition table, core.img in the MBR gap."""
    boot_img = (BIOS_DIR / "boot.img").read_bytes()
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


def require_platform(directory: Path, package: str) -> None:
    if not (directory / "modinfo.sh").is_file():
        raise MissingPrerequisiteError(f"GRUB platform files not found: {directory}",
                                       hint=f"install the Debian package {package}")
