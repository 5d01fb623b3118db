"""The boot disk assembly on a small root tree (seconds, no VM): partition table, ESP, ext4
and boot sectors, read back with sfdisk, mtools and debugfs; the same bytes from two trees
made in different orders at different times, assembled under different umasks. The VM tests
boot the real appliance disk."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from builder.disk import bootdisk, bootloader
from builder.errors import InputError

pytestmark = pytest.mark.integration

EPOCH = 1686355200
GIB = 1 << 30
FILES = {"etc/hostname": "he\n", "usr/lib/a": "a\n", "usr/lib/b": "b\n", "boot/grub/x": "x\n"}


def make_root(root: Path, order: list[str]) -> None:
    """The same tree, created in `order` (so directory order on disk differs), dated now."""
    for rel in order:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(FILES[rel])
    os.link(root / "usr/lib/a", root / "usr/lib/a-hardlink")
    (root / "usr/lib/c").symlink_to("a")
    old = root / "usr/lib/b"
    os.utime(old, (1_000_000_000, 1_000_000_000))
    for path in [root, *root.rglob("*")]:
        if path.lstat().st_mtime > EPOCH:
            os.utime(path, (EPOCH, EPOCH), follow_symlinks=False)


def assemble(tmp_path: Path, name: str, order: list[str], umask: int = 0o022) -> Path:
    root = tmp_path / f"{name}-root"
    make_root(root, order)
    work = tmp_path / f"{name}-work"
    work.mkdir()
    disk = tmp_path / f"{name}.raw"
    previous = os.umask(umask)
    try:
        bootdisk.assemble_disk(root, disk, GIB, work, epoch=EPOCH)
    finally:
        os.umask(previous)
    assert list(work.iterdir()) == []  # scratch files removed
    return disk


@pytest.fixture(scope="module")
def disks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("bootdisk")
    first = assemble(tmp, "first", sorted(FILES))
    time.sleep(1.1)  # the second tree's ctimes and atimes are a second later
    second = assemble(tmp, "second", sorted(FILES, reverse=True), umask=0o077)
    return first, second


def debugfs(disk: Path, command: str) -> str:
    device = f"{disk}?offset={bootdisk.plan_layout(GIB).root_start}"
    return subprocess.run(["debugfs", "-R", command, device], capture_output=True, text=True,
                          check=True).stdout


def test_two_assemblies_are_the_same_bytes(disks: tuple[Path, Path]) -> None:
    first, second = disks
    assert subprocess.run(["cmp", first, second], check=False).returncode == 0


def test_partition_table_has_the_esp_then_the_bootable_root(disks: tuple[Path, Path]) -> None:
    table = json.loads(subprocess.run(["sfdisk", "--json", disks[0]], capture_output=True,
                                      check=True).stdout)["partitiontable"]
    assert table["label"] == "dos"
    esp, root = table["partitions"]
    layout = bootdisk.plan_layout(GIB)
    assert (esp["start"], esp["size"], esp["type"]) == (2048, layout.esp_bytes // 512, "ef")
    assert esp.get("bootable") is not True
    assert (root["start"], root["type"], root["bootable"]) == (
        layout.root_start // 512, "83", True)
    assert root["start"] + root["size"] == GIB // 512


def test_the_esp_holds_grubs_efi_image(disks: tuple[Path, Path], tmp_path: Path) -> None:
    image = f"{disks[0]}@@{bootdisk.plan_layout(GIB).esp_start}"
    out = tmp_path / "BOOTX64.EFI"
    subprocess.run(["mcopy", "-i", image, "::/EFI/BOOT/BOOTX64.EFI", out], check=True,
                   env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    data = out.read_bytes()
    assert data[:2] == b"MZ"
    pe = int.from_bytes(data[0x3C:0x40], "little")
    assert data[pe:pe + 6] == b"PE\0\0\x64\x86"  # PE32+, x86-64
    assert b"he-root" in data  # the embedded early config finds the root by label
    info = subprocess.run(["minfo", "-i", image, "::"], capture_output=True, text=True,
                          check=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}).stdout
    assert f'disk label="{bootloader.ESP_LABEL}' in info
    assert "serial number: " in info and "1234ABCD" not in info  # our id, not --invariant's


def test_the_mbr_carries_grubs_boot_code_and_core_image(disks: tuple[Path, Path],
                                                        tmp_path: Path) -> None:
    head = _read(disks[0], 2048 * 512)
    boot_img = (bootloader.BIOS_DIR / "boot.img").read_bytes()
    assert head[510:512] == b"\x55\xaa"
    assert head[:bootloader.BOOT_DRIVE_CHECK] == boot_img[:bootloader.BOOT_DRIVE_CHECK]
    assert head[bootloader.BOOT_DRIVE_CHECK:bootloader.BOOT_DRIVE_CHECK + 2] == b"\x90\x90"
    early = bootloader.write_early_config(tmp_path, bootdisk.FS_LABEL)
    core = bootloader.make_core_image(tmp_path, early, len(head) - 512)
    assert head[512:512 + len(core)] == core
    assert head[512 + len(core):].count(0) == len(head) - 512 - len(core)


def _read(path: Path, size: int) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size)


def test_every_inode_is_dated_at_the_epoch_at_the_latest(disks: tuple[Path, Path]) -> None:
    for rel in ("", "etc/hostname", "usr/lib/a", "usr/lib/b", "usr/lib/c", "lost+found"):
        stat = debugfs(disks[0], f"stat /{rel}")
        times = dict(re.findall(r"^\s*(\w+): 0x([0-9a-f]+):", stat, flags=re.MULTILINE))
        assert int(times["ctime"], 16) == int(times["atime"], 16) == EPOCH, (rel, stat)
        assert int(times["crtime"], 16) == EPOCH, (rel, stat)
        assert int(times["mtime"], 16) <= EPOCH, (rel, stat)
    assert int(re.findall(r"mtime: 0x([0-9a-f]+)", debugfs(disks[0], "stat /usr/lib/b"))[0],
               16) == 1_000_000_000
    assert "Links: 2" in debugfs(disks[0], "stat /usr/lib/a-hardlink")
    assert debugfs(disks[0], "cat /etc/hostname") == "he\n"
    superblock = subprocess.run(
        ["dumpe2fs", "-h", f"{disks[0]}?offset={bootdisk.plan_layout(GIB).root_start}"],
        capture_output=True, text=True, check=True).stdout
    assert "Filesystem volume name:   he-root" in superblock
    assert "Last write time:          Sat Jun 10 00:00:00 2023" in superblock


def test_a_disk_too_small_for_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_root(root, sorted(FILES))
    with pytest.raises(InputError, match="disk too small"):
        bootdisk.assemble_disk(root, tmp_path / "d.raw", 512 << 20, tmp_path, epoch=EPOCH)
    shutil.rmtree(root)
