"""The rendered kickstart's %post scripts, run for real: each one, as pykickstart parses it out
of the kickstart, runs with busybox's sh in a chroot laid out like the installed appliance,
and the test reads back what it left on that tree and on the disk image.

STAND-INS, because no CentOS tree can exist here: busybox instead of bash and coreutils (the
scripts are POSIX sh), and small scripts for `systemctl`, `dnf`, `grub2-probe`,
`grub2-mkrelpath` and `grub2-install`. What the packages would have installed (shim, GRUB's
EFI binary, the oVirt repository file) is laid out by the test. The disk is a real GPT image
(sfdisk) whose MBR holds GRUB's real boot code (Debian's grub-pc-bin boot.img). Anaconda
runs %post in the same way: the script in the target's /tmp, `/bin/sh SCRIPT`, chrooted."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pykickstart.parser import KickstartParser, Script
from pykickstart.version import makeVersion

from builder.disk.kickstart import KickstartInputs, appliance_answers, render_kickstart
from builder.run import run

pytestmark = pytest.mark.integration

BOOT_UUID = "8a6a44c6-5b7d-4a6c-9d9b-3f2a1e0c7d11"
GRUB_BOOT_IMG = Path("/usr/lib/grub/i386-pc/boot.img")
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
BIOSBOOT_TYPE = "21686148-6449-6E6F-744E-656564454649"
LINUX_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
STANDINS = {
    "systemctl": "#!/bin/sh\nexit 0\n",
    "dnf": "#!/bin/sh\nexit 0\n",
    "grub2-probe": ("#!/bin/sh\n"
                    'case "$1" in --target=disk) echo /dev/vda ;; '
                    f"--target=fs_uuid) echo {BOOT_UUID} ;; *) exit 1 ;; esac\n"),
    "grub2-mkrelpath": "#!/bin/sh\necho /grub2\n",
    # What grub2-install --target=i386-pc does to the MBR: GRUB's boot code in bytes 0..439.
    "grub2-install": ('#!/bin/sh\n[ "$1" = --target=i386-pc ] || exit 1\n'
                      'dd if=/boot-img of="$2" bs=440 count=1 conv=notrunc 2>/dev/null\n'),
}


@dataclass(frozen=True)
class Ran:
    returncode: int
    output: str


def post_scripts() -> dict[str, Script]:
    parser = KickstartParser(makeVersion("RHEL9"))
    parser.readKickstartFromString(render_kickstart(
        KickstartInputs(install_tree="http://mirror.example/centos/9-stream/BaseOS/x86_64/os/")))
    return {Path(s.logfile).stem.removeprefix("ks-post-"): s for s in parser.handler.scripts}


def make_root(tmp_path: Path) -> Path:
    """busybox as /bin, the stand-ins in /usr/local/bin, and the directories packages make."""
    root = tmp_path / "root"
    for directory in ("bin", "usr/local/bin", "tmp", "root", "dev", "etc/cloud/cloud.cfg.d",
                      "etc/yum.repos.d", "etc/lvm/devices", "var/log", "var/tmp"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", root / "bin/busybox")
    run(["chroot", str(root), "/bin/busybox", "--install", "-s", "/bin"])
    for name, text in STANDINS.items():
        (root / "usr/local/bin" / name).write_text(text)
        (root / "usr/local/bin" / name).chmod(0o755)
    shutil.copy(GRUB_BOOT_IMG, root / "boot-img")
    return root


def run_post(root: Path, script: Script) -> Ran:
    """The script as Anaconda runs it: written to the target's /tmp, run by its interpreter."""
    assert script.inChroot and script.errorOnFail and script.interp == "/bin/sh"
    (root / "tmp/ks-script").write_text(script.script)
    chroot = shutil.which("chroot")  # the host's; PATH below is the chroot's
    assert chroot is not None
    done = subprocess.run([chroot, str(root), script.interp, "/tmp/ks-script"],
                          env={"PATH": "/usr/local/bin:/bin", "HOME": "/root"},
                          capture_output=True, text=True, check=False)
    return Ran(done.returncode, done.stdout + done.stderr)


def write(root: Path, path: str, data: str | bytes = "x\n") -> Path:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        target.write_bytes(data)
    else:
        target.write_text(data)
    return target


@pytest.fixture(scope="module")
def scripts() -> dict[str, Script]:
    found = post_scripts()
    assert set(found) == {"engine", "boot", "cleanup"}
    return found


def test_post_engine_writes_the_appliance_files(tmp_path: Path,
                                                scripts: dict[str, Script]) -> None:
    root = make_root(tmp_path)
    write(root, "/etc/yum.repos.d/CentOS-oVirt-4.5.repo", "[centos-ovirt45]\nname=oVirt 4.5\n")
    ran = run_post(root, scripts["engine"])
    assert ran.returncode == 0, ran.output
    answers = root / "root/ovirt-engine-answers"
    assert answers.read_text(encoding="utf-8") == appliance_answers()
    assert answers.stat().st_mode & 0o777 == 0o600
    cloud = root / "etc/cloud/cloud.cfg.d"
    assert yaml.safe_load((cloud / "42_ovirt_appliance.cfg").read_text()) == {
        "ssh_pwauth": True, "network": {"config": "disabled"}}
    assert yaml.safe_load((cloud / "10_ovirt_appliance_datasource.cfg").read_text()) == {
        "datasource_list": ["NoCloud", "None"]}


def test_post_engine_stops_without_the_ovirt_repositories(tmp_path: Path,
                                                         scripts: dict[str, Script]) -> None:
    root = make_root(tmp_path)
    write(root, "/etc/yum.repos.d/centos.repo", "[baseos]\nname=CentOS Stream 9 - BaseOS\n")
    ran = run_post(root, scripts["engine"])
    assert ran.returncode != 0
    assert "no oVirt repository in /etc/yum.repos.d" in ran.output


def test_post_cleanup_leaves_no_identity_and_no_lvm_devices_file(
        tmp_path: Path, scripts: dict[str, Script]) -> None:
    root = make_root(tmp_path)
    for path in ("/var/cache/dnf/baseos.solv", "/var/lib/dnf/history.sqlite", "/tmp/x",
                 "/var/tmp/x", "/etc/ssh/ssh_host_ed25519_key", "/var/lib/systemd/random-seed",
                 "/var/lib/cloud/instance/user-data.txt", "/var/log/anaconda/anaconda.log",
                 "/etc/NetworkManager/system-connections/ens3.nmconnection",
                 "/etc/lvm/devices/system.devices"):
        write(root, path)
    write(root, "/etc/machine-id", "3f0c2f2e8a5e4d3b9f1e2a7c6d5b4a39\n")
    ran = run_post(root, scripts["cleanup"])
    assert ran.returncode == 0, ran.output
    assert not (root / "etc/lvm/devices/system.devices").exists()
    assert (root / "etc/machine-id").read_text() == ""
    assert (root / "var/log/anaconda/anaconda.log").read_text() == ""
    gone = ("etc/ssh/ssh_host_ed25519_key", "var/lib/systemd/random-seed", "var/lib/cloud/instance",
            "etc/NetworkManager/system-connections/ens3.nmconnection", "var/tmp/x",
            "var/cache/dnf/baseos.solv", "var/lib/dnf/history.sqlite")
    assert [path for path in gone if (root / path).exists()] == []
    assert (root / ".autorelabel").exists()


def make_gpt_disk(path: Path, *, pmbr_active: bool) -> None:
    """A GPT disk as Anaconda partitions it (biosboot, ESP, /boot, the PV), with GRUB's boot
    code in the MBR; `pmbr_active` as blivet sets it on a BIOS install."""
    with path.open("wb") as disk:
        disk.truncate(64 << 20)
    layout = (f"label: gpt\nsize=1MiB, type={BIOSBOOT_TYPE}\nsize=16MiB, type={ESP_TYPE}\n"
              f"size=16MiB, type={LINUX_TYPE}\ntype={LINUX_TYPE}\n")
    run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(path)],
        stdin=layout.encode())
    with path.open("r+b") as disk:
        disk.write(GRUB_BOOT_IMG.read_bytes()[:440])
        disk.seek(446)
        disk.write(b"\x80" if pmbr_active else b"\x00")


def gpt_of(path: Path) -> dict[str, Any]:
    table: dict[str, Any] = json.loads(run(["sfdisk", "--json", str(path)]).text)["partitiontable"]
    return table


def efi_tree(root: Path) -> Path:
    """What shim-x64, grub2-efi-x64 and grub2-pc install, and Anaconda's /boot/grub2/grub.cfg."""
    vendor = root / "boot/efi/EFI/centos"
    for path in ("/boot/efi/EFI/centos/shimx64.efi", "/boot/efi/EFI/centos/grubx64.efi",
                 "/boot/efi/EFI/BOOT/BOOTX64.EFI", "/boot/efi/EFI/BOOT/fbx64.efi",
                 "/boot/grub2/grub.cfg"):
        write(root, path, b"MZ stand-in\n")
    return vendor


def test_post_boot_after_a_bios_install_adds_uefi(tmp_path: Path,
                                                  scripts: dict[str, Script]) -> None:
    root = make_root(tmp_path)
    vendor = efi_tree(root)
    disk = root / "dev/vda"
    make_gpt_disk(disk, pmbr_active=True)
    before = gpt_of(disk)
    ran = run_post(root, scripts["boot"])
    assert ran.returncode == 0, ran.output
    # The EFI GRUB finds the one grub.cfg on /boot (what Anaconda writes on a UEFI install).
    assert (vendor / "grub.cfg").read_text().splitlines() == [
        f"search --no-floppy --fs-uuid --set=dev {BOOT_UUID}", "set prefix=($dev)/grub2",
        "export $prefix", "configfile $prefix/grub.cfg"]
    mbr = disk.read_bytes()[:512]
    assert mbr[446] == 0x00 and mbr[450] == 0xEE  # protective entry kept, no longer active
    assert mbr[:440] == GRUB_BOOT_IMG.read_bytes()[:440]  # BIOS boot code untouched
    assert gpt_of(disk) == before  # the partition table itself untouched
    assert "boots under BIOS (MBR + biosboot) and UEFI" in ran.output


def test_post_boot_after_a_uefi_install_adds_bios(tmp_path: Path,
                                                  scripts: dict[str, Script]) -> None:
    root = make_root(tmp_path)
    vendor = efi_tree(root)
    stub = "search --no-floppy --fs-uuid --set=dev X\nconfigfile $prefix/grub.cfg\n"
    write(root, "/boot/efi/EFI/centos/grub.cfg", stub)  # Anaconda's, on UEFI
    (root / "sys/firmware/efi").mkdir(parents=True)
    disk = root / "dev/vda"
    make_gpt_disk(disk, pmbr_active=False)
    with disk.open("r+b") as handle:
        handle.write(bytes(440))  # a UEFI install leaves no BIOS boot code
    ran = run_post(root, scripts["boot"])
    assert ran.returncode == 0, ran.output
    assert disk.read_bytes()[:440] == GRUB_BOOT_IMG.read_bytes()[:440]
    assert (vendor / "grub.cfg").read_text() == stub


@pytest.mark.parametrize(("breakage", "message"), [
    ("no-fallback", "no UEFI fallback loader EFI/BOOT/BOOTX64.EFI"),
    ("no-shim", "no shimx64.efi under /boot/efi/EFI/"),
    ("mbr-disk", "/dev/vda has no GPT protective MBR"),
])
def test_post_boot_fails_the_install_when_a_firmware_could_not_boot(
        tmp_path: Path, scripts: dict[str, Script], breakage: str, message: str) -> None:
    root = make_root(tmp_path)
    efi_tree(root)
    disk = root / "dev/vda"
    make_gpt_disk(disk, pmbr_active=True)
    if breakage == "no-fallback":
        (root / "boot/efi/EFI/BOOT/BOOTX64.EFI").unlink()
    elif breakage == "no-shim":
        (root / "boot/efi/EFI/centos/shimx64.efi").unlink()
    else:
        with disk.open("r+b") as handle:
            handle.seek(450)
            handle.write(b"\x83")  # an MBR partition, not GPT's protective entry
    ran = run_post(root, scripts["boot"])
    assert ran.returncode != 0
    assert f"boot setup: {message}" in ran.output

