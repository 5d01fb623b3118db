"""he-launch's appliance input in every form a release ships it: the gzip OVA, a plain OVA,
either RPM (the OVA one, oVirt 4.5.7's qcow2 one) and the directory an RPM installs. Each is
verified, unpacked once into the same pristine base, and gives the launcher memory, vCPUs and
the firmware to boot with."""

from __future__ import annotations

import grp
import json
import pwd
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from builder.atomic import lock_path
from builder.console import Console
from builder.disk.registry import load_recipe
from builder.errors import InputError, IntegrityError
from builder.launch.image import locate_appliance, prepare_disk
from builder.launch.storage import StorageModes
from builder.lock import locked
from builder.ova import unpack_ova, verify_ova
from builder.ova.pack import write_ova
from builder.repro import sha256_file
from builder.rpm.metadata import INSTALL_DIR
from tests.fixtures.appliance import DemoAppliance, DemoQcow2Rpm
from tests.fixtures.processes import wait_until

pytestmark = pytest.mark.integration


def backing_file(overlay: Path) -> Path:
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(overlay)],
                                     capture_output=True, text=True, check=True).stdout)
    return Path(info["full-backing-filename"])


def test_the_ova_rpm_boots_the_ovas_disk(demo_appliance: DemoAppliance, tmp_path: Path) -> None:
    image = locate_appliance(demo_appliance.rpm, tmp_path / "rpms")
    assert image.suffix == ".ova" and sha256_file(image) == sha256_file(demo_appliance.ova)
    qemu = StorageModes.for_qemu((pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid))
    disk = prepare_disk(image, tmp_path / "images", tmp_path / "overlay.qcow2", qemu)
    info = disk.info
    assert (info.kind, info.memory_mib, info.vcpus, info.firmware) == ("ova", 1024, 2, "bios")
    assert sha256_file(disk.base) == info.disk_sha256 == verify_ova(image).disk_sha256
    assert backing_file(disk.overlay) == disk.base.resolve()
    # qemu, running as its own user, reaches the read-only base through its group only.
    for held in (disk.base.parent, disk.base):
        assert held.stat().st_gid == qemu.qemu_gid
    assert disk.base.parent.stat().st_mode & 0o777 == 0o710
    assert disk.base.stat().st_mode & 0o777 == 0o440
    assert locate_appliance(demo_appliance.rpm, tmp_path / "rpms") == image  # extracted once


def waited_for(lock: Path) -> bool:
    """Whether some process waits to take the flock on `lock` (a `->` line of /proc/locks)."""
    inode = f":{lock.stat().st_ino} "
    return any("->" in line and inode in line
               for line in Path("/proc/locks").read_text().splitlines())


def test_a_launch_keeps_what_another_launch_of_the_rpm_took_out_first(
        demo_appliance: DemoAppliance, tmp_path: Path) -> None:
    """Two launches of one RPM, both finding it not yet taken out: the second to finish keeps
    the first one's files, which that launch may be reading, instead of replacing them."""
    cache = tmp_path / "rpms"
    theirs = locate_appliance(demo_appliance.rpm, cache)
    target, aside = theirs.parent, tmp_path / "aside"
    target.rename(aside)
    found: list[Path] = []
    with locked(lock_path(target), transient=True):
        ours = threading.Thread(target=lambda: found.append(
            locate_appliance(demo_appliance.rpm, cache)))
        ours.start()
        assert wait_until(lambda: waited_for(lock_path(target)), 60)
        aside.rename(target)  # the other launch publishes while this one waits for the lock
        inode = theirs.stat().st_ino
    ours.join(timeout=600)
    assert found == [theirs]
    assert theirs.stat().st_ino == inode
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".")] == [target.name]


def test_the_qcow2_rpm_boots_with_its_metadata(demo_qcow2_rpm: DemoQcow2Rpm,
                                               tmp_path: Path) -> None:
    image = locate_appliance(demo_qcow2_rpm.rpm, tmp_path / "rpms")
    assert image.name == demo_qcow2_rpm.image.name
    images, overlay = tmp_path / "images", tmp_path / "overlay.qcow2"
    first = prepare_disk(image, images, overlay)
    info = first.info
    assert (info.kind, info.memory_mib, info.vcpus, info.firmware) == ("qcow2", 1024, 2, "bios")
    assert info.virtual_size == 3 << 30
    assert sha256_file(first.base) == sha256_file(demo_qcow2_rpm.image) == info.disk_sha256
    again = prepare_disk(image, images, overlay)
    assert (again.verified_before, again.reused, again.base) == (True, True, first.base)
    assert backing_file(overlay) == first.base.resolve()


def test_the_directory_an_installed_rpm_fills(demo_qcow2_rpm: DemoQcow2Rpm,
                                              tmp_path: Path) -> None:
    root = tmp_path / "root"
    subprocess.run(["rpm", "--root", str(root), "--dbpath", str(root / "db"), "--nodeps",
                    "--noscripts", "-i", str(demo_qcow2_rpm.rpm)], check=True,
                   capture_output=True)
    installed = root / INSTALL_DIR.lstrip("/")
    image = locate_appliance(installed, tmp_path / "rpms")
    assert image.parent == installed and image.suffix == ".qcow2"
    disk = prepare_disk(image, tmp_path / "images", tmp_path / "overlay.qcow2")
    assert disk.info.memory_mib == 1024 and disk.info.firmware == "bios"


def test_a_qcow2_without_metadata_or_not_matching_it(demo_qcow2_rpm: DemoQcow2Rpm,
                                                     tmp_path: Path) -> None:
    bare = tmp_path / "bare" / "appliance.qcow2"
    bare.parent.mkdir()
    shutil.copyfile(demo_qcow2_rpm.image, bare)
    with pytest.raises(InputError, match="no appliance metadata beside"):
        prepare_disk(bare, tmp_path / "images", tmp_path / "overlay.qcow2")
    extracted = locate_appliance(demo_qcow2_rpm.rpm, tmp_path / "rpms")
    changed = tmp_path / "changed"
    shutil.copytree(extracted.parent, changed)
    image = changed / extracted.name
    image.chmod(0o644)
    with image.open("r+b") as handle:
        handle.seek(image.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    images = tmp_path / "images2"
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        prepare_disk(image, images, tmp_path / "overlay.qcow2")
    assert sorted(p.name for p in images.iterdir()) == ["verified"]  # no image, no record
    assert list((images / "verified").iterdir()) == []


def test_a_plain_standard_ova_boots_too(demo_appliance: DemoAppliance, tmp_path: Path) -> None:
    """The standard layout (plain tar): same disk, same facts."""
    qcow2 = tmp_path / "disk.qcow2"
    unpack_ova(demo_appliance.ova, qcow2)
    ova = tmp_path / "standard.ova"
    write_ova(load_recipe("debian-test").meta, qcow2, ova, layout="ovf", console=Console(),
              mtime=0)
    disk = prepare_disk(ova, tmp_path / "images", tmp_path / "overlay.qcow2")
    assert disk.info.memory_mib == 1024 and sha256_file(disk.base) == sha256_file(qcow2)
