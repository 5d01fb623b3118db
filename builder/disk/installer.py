"""The installer VM: boot an install tree's kernel and initrd under libvirt with the kickstart
on an OEMDRV disk, follow its serial console, wait for it to power off, keep the disk."""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pycdlib

from builder.console import Console
from builder.errors import CommandError, StorageError
from builder.model import DiskFormat
from builder.repro import stable_mac, stable_uuid
from builder.sparse import copy_sparse
from builder.virt.domain import (
    DirectBoot,
    DiskDevice,
    DomainSpec,
    NicDevice,
    VirtChoice,
    VirtType,
    render_domain_xml,
)
from builder.virt.errors import VirtError
from builder.virt.qemu_img import create_image, has_data

if TYPE_CHECKING:
    from builder.virt.hypervisor import DomainHandle

OEMDRV_LABEL = "OEMDRV"
KS_NAME = "ks.cfg"
# Anaconda finds the kickstart on the CD-ROM labelled OEMDRV; a CD-ROM is never an install
# target, so the kickstart's `clearpart --all` cannot reach it.
BASE_CMDLINE = (f"inst.ks=hd:LABEL={OEMDRV_LABEL}:/{KS_NAME}", "inst.text",
                "console=tty0", "console=ttyS0,115200n8")
POLL_S = 0.5
# libvirt's virDomainState PAUSED and virDomainPausedReason IOERROR (stable ABI values).
VIR_DOMAIN_PAUSED = 3
VIR_DOMAIN_PAUSED_IOERROR = 5
_PACKAGE_LINE = re.compile(r"Installing (\S+) \((\d+)/(\d+)\)")
# Anaconda's text-mode milestones (and its failures), shown to the user as they come.
_MILESTONE = re.compile(
    r"(Starting installer|Starting automated install|Saving storage configuration"
    r"|Running pre-installation scripts|Installing the software|Starting package installation"
    r"|Downloading packages|Preparing transaction|Performing post-installation setup tasks"
    r"|Configuring installed system|Generating initramfs|Installing boot ?loader"
    r"|Running post-installation scripts|Installation complete|Traceback"
    r"|An unknown error|ERROR|[Kk]ickstart insufficient)")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]")


class InstallerError(CommandError):
    """The installer VM failed, or did not power off in time; the message names its log."""

    def __init__(self, what: str, *, log: Path) -> None:
        super().__init__(("installer",), -1, what)
        self.log = log
        self.message = f"{what} (serial log: {log})"
        self.args = (self.message,)


@dataclass(frozen=True)
class InstallerSpec:
    """One installation: what to boot, what to hand it, and the VM it runs in."""

    name: str
    kernel: Path
    initrd: Path
    kickstart: str
    cmdline: tuple[str, ...]
    disk_size_gib: int
    disk_format: DiskFormat
    memory_mib: int
    vcpus: int
    libvirt_uri: str
    virt_type: VirtChoice
    network: str | None
    timeout_s: int
    vm_dir: Path
    log: Path


@dataclass(frozen=True)
class InstallerFiles:
    """The files the VM uses, all in a directory qemu (its own user) can reach."""

    kernel: Path
    initrd: Path
    oemdrv: Path
    disk: Path


def run_installer(spec: InstallerSpec, dest: Path, console: Console) -> None:
    """Install onto a new disk and move it to `dest` only when the installer finished."""
    scratch = make_scratch_dir(spec.vm_dir)
    try:
        try:
            files = prepare_files(spec, scratch)
            prepare_log(spec.log)
        except OSError as exc:
            raise StorageError(f"cannot prepare the installer's files in {spec.vm_dir}: "
                               f"{exc.strerror or exc}") from exc
        boot_installer(spec, files, console)
        if not disk_has_data(files.disk, spec.disk_format):
            raise InstallerError("the installer powered off without writing the disk",
                                 log=spec.log)
        move_sparse(files.disk, dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def boot_installer(spec: InstallerSpec, files: InstallerFiles, console: Console) -> None:
    """Run the installer VM until it stops; whatever happens, the domain is gone afterwards."""
    # libvirt only here: rendering and checking a kickstart (--render-kickstart) needs none.
    from builder.virt.hypervisor import Hypervisor  # noqa: PLC0415

    with Hypervisor(spec.libvirt_uri) as hv:
        console.step(f"booting the installer; serial log: {spec.log}")
        started = hv.start_domain(
            lambda virt: render_domain_xml(installer_domain(spec, files, virt)), spec.virt_type)
        handle = started.handle
        console.note(f"installer VM: {'KVM' if started.virt_type == 'kvm' else 'TCG (no KVM)'}: "
                     f"{started.why}")
        try:
            follow_installer(handle, spec, console)
        finally:
            handle.remove()


def make_scratch_dir(vm_dir: Path) -> Path:
    """A private directory under `vm_dir` that qemu can traverse (0711), not list."""
    try:
        vm_dir.mkdir(mode=0o711, parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="installer-", dir=vm_dir))
        scratch.chmod(0o711)
    except OSError as exc:
        raise StorageError(f"cannot write in {vm_dir}: {exc.strerror or exc}") from exc
    return scratch


def prepare_files(spec: InstallerSpec, scratch: Path) -> InstallerFiles:
    """Copies of the kernel and initrd (libvirt relabels what it boots), the OEMDRV ISO, and
    the empty sparse target disk."""
    files = InstallerFiles(scratch / "vmlinuz", scratch / "initrd.img",
                           scratch / "oemdrv.iso", scratch / f"disk.{spec.disk_format}")
    for source, copy in ((spec.kernel, files.kernel), (spec.initrd, files.initrd)):
        shutil.copyfile(source, copy)
        copy.chmod(0o644)
    write_oemdrv_iso(files.oemdrv, spec.kickstart)
    create_disk(files.disk, spec.disk_format, spec.disk_size_gib)
    return files


def write_oemdrv_iso(path: Path, kickstart: str) -> None:
    """An ISO9660 image labelled OEMDRV holding /ks.cfg (mode 0600: it may hold a hash)."""
    data = kickstart.encode("utf-8")
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=OEMDRV_LABEL)
    iso.add_fp(io.BytesIO(data), len(data), "/KS.CFG;1", rr_name=KS_NAME,
               joliet_path=f"/{KS_NAME}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        iso.write_fp(out)
    iso.close()


def create_disk(path: Path, fmt: DiskFormat, size_gib: int) -> None:
    """An empty disk: a sparse raw file, or a qcow2 (compat 1.1) that grows as it is written."""
    if fmt == "raw":
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.ftruncate(fd, size_gib << 30)
        os.close(fd)
        return
    create_image(path, size_bytes=size_gib << 30)
    path.chmod(0o600)


def prepare_log(log: Path) -> None:
    """An empty serial log, kept after the run (the error messages point at it)."""
    log.parent.mkdir(mode=0o711, parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    log.touch(mode=0o644)


def installer_domain(spec: InstallerSpec, files: InstallerFiles,
                     virt_type: VirtType) -> DomainSpec:
    """A transient domain that boots the installer directly and is gone once it powers off."""
    nics = () if spec.network is None else (
        NicDevice(mac=stable_mac(spec.name), network=spec.network),)
    return DomainSpec(
        name=spec.name, uuid=stable_uuid("installer", spec.name),
        virt_type=virt_type,
        memory_mib=spec.memory_mib, vcpus=spec.vcpus,
        disks=(DiskDevice(files.disk, "vda", format=spec.disk_format),
               DiskDevice(files.oemdrv, "sda", format="raw", device="cdrom", bus="scsi")),
        nics=nics, serial_log=spec.log,
        direct_boot=DirectBoot(files.kernel, files.initrd,
                               " ".join((*BASE_CMDLINE, *spec.cmdline))),
        on_poweroff="destroy", on_reboot="destroy", on_crash="destroy",
        description="he-build appliance: kickstart installation",
    )


def follow_installer(handle: DomainHandle, spec: InstallerSpec, console: Console) -> None:
    """Turn the serial log into progress until the domain stops; InstallerError on timeout,
    StorageError when qemu paused the VM on a write error (the host filesystem is full)."""
    follower = SerialFollower(spec.log, console)
    deadline = time.monotonic() + spec.timeout_s
    while handle.is_active():
        follower.poll()
        if paused_on_io_error(handle):
            raise StorageError(f"the installer VM stopped on a write error: is {spec.vm_dir} "
                               f"full? (serial log: {spec.log})")
        if time.monotonic() >= deadline:
            raise InstallerError(
                f"the installer did not power off within {spec.timeout_s} s", log=spec.log)
        time.sleep(POLL_S)
    follower.poll()
    follower.finish()


def paused_on_io_error(handle: DomainHandle) -> bool:
    """qemu pauses a guest whose disk write failed with ENOSPC (libvirt's state, reason)."""
    try:
        return handle.state() == (VIR_DOMAIN_PAUSED, VIR_DOMAIN_PAUSED_IOERROR)
    except VirtError:
        return False  # a transient domain that just stopped has no state left to read


class SerialFollower:
    """Reads what the installer printed since the last poll and reports its milestones."""

    def __init__(self, log: Path, console: Console) -> None:
        self.log = log
        self.console = console
        self.offset = 0
        self.partial = b""

    def poll(self) -> None:
        try:
            with self.log.open("rb") as stream:
                stream.seek(self.offset)
                chunk = stream.read()
        except FileNotFoundError:
            return
        self.offset += len(chunk)
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        for raw in lines:
            self.report(raw)

    def finish(self) -> None:
        if self.partial:
            self.report(self.partial)
            self.partial = b""

    def report(self, raw: bytes) -> None:
        line = _ANSI.sub("", raw.decode("utf-8", errors="replace")).replace("\r", "").strip()
        package = _PACKAGE_LINE.search(line)
        if package:
            self.console.progress("installing packages", int(package[2]), int(package[3]))
        elif _MILESTONE.search(line):
            self.console.note(f"installer: {line}")


def disk_has_data(path: Path, fmt: DiskFormat) -> bool:
    """Whether the installer wrote anything at all to the disk."""
    if fmt == "qcow2":
        return has_data(path, "qcow2")
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, 0, os.SEEK_DATA)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def move_sparse(source: Path, dest: Path) -> None:
    """A rename on the same filesystem, else a copy that keeps the holes."""
    try:
        source.replace(dest)
    except OSError:
        copy_sparse(source, dest)
        source.unlink()
