"""The one libvirt adapter: a connection by URI, domains by handle, libvirt errors made typed."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import libvirt
from lxml import etree

from builder.errors import MissingPrerequisiteError
from builder.virt.domain import (
    DiskDevice,
    DomainSpec,
    VirtChoice,
    VirtType,
    render_domain_xml,
)
from builder.virt.errors import DomainNotFoundError, VirtError, VmStartError
from builder.virt.kvm import kvm_unusable

POLL_S = 0.2
# A seed eject is retried this long (the guest may close the tray again, see eject()).
EJECT_TIMEOUT_S = 60.0
EJECT_FIRST_PAUSE_S = 0.2
EJECT_MAX_PAUSE_S = 3.0
# From this attempt on, the CD-ROM drive is removed instead of its medium (see eject()).
EJECT_DETACH_AFTER = 3


def _silence_default_handler(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default; ours are raised as typed errors."""


def _domain_gone(exc: VirtError) -> bool:
    """Whether libvirt's error under `exc` says the domain no longer exists."""
    cause = exc.__cause__
    return (isinstance(cause, libvirt.libvirtError)
            and cause.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN)


def _first_line(exc: libvirt.libvirtError) -> str:
    text = str(exc.get_error_message() or exc).strip()
    return text.splitlines()[0] if text else "unknown libvirt error"


@contextmanager
def _libvirt_errors(what: str, error: type[VirtError] = VirtError) -> Iterator[None]:
    """Turn a libvirtError raised inside into `error` with `what` as context."""
    try:
        yield
    except libvirt.libvirtError as exc:
        raise error(f"{what}: {_first_line(exc)}") from exc


@dataclass(frozen=True)
class Ejection:
    """How a medium left its drive: the attempts it took, and whether the drive went too."""

    attempts: int
    drive_removed: bool


def _disk_xml(disk: DiskDevice) -> str:
    """One disk's <disk> element, as the domain XML renders it."""
    spec = DomainSpec(name="x", uuid=uuid.UUID(int=0), virt_type="qemu", memory_mib=1, vcpus=1,
                      disks=(disk,))
    element = etree.fromstring(render_domain_xml(spec)).find("devices/disk")
    assert element is not None
    return etree.tostring(element, encoding="unicode")


@dataclass(frozen=True)
class DomainHandle:
    """One domain on an open connection."""

    domain: Any  # libvirt.virDomain: the binding has no type information

    @property
    def name(self) -> str:
        return str(self.domain.name())

    @property
    def uuid(self) -> uuid.UUID:
        return uuid.UUID(self.domain.UUIDString())

    def xml(self) -> bytes:
        with _libvirt_errors(f"cannot read the XML of {self.name}"):
            return str(self.domain.XMLDesc(0)).encode("utf-8")

    def is_active(self) -> bool:
        try:
            return bool(self.domain.isActive())
        except libvirt.libvirtError:
            return False  # a transient domain that stopped is gone: not active

    def state(self) -> tuple[int, int]:
        """libvirt's (state, reason) pair, e.g. (VIR_DOMAIN_SHUTOFF, VIR_DOMAIN_SHUTOFF_CRASHED)."""
        with _libvirt_errors(f"cannot read the state of {self.name}"):
            state, reason = self.domain.state()
        return int(state), int(reason)

    def is_persistent(self) -> bool:
        with _libvirt_errors(f"cannot query {self.name}"):
            return bool(self.domain.isPersistent())

    def files(self) -> list[str]:
        """Every file the domain's disks name (their top layer: a running domain's XML also
        lists the backing files), in the running domain and in the defined one; none for a
        domain that went away meanwhile."""
        try:
            documents = self.documents()
        except VirtError as exc:
            if _domain_gone(exc):
                return []
            raise
        found: list[str] = []
        for document in filter(None, documents):
            files = etree.fromstring(document).xpath(
                "devices/disk/source/@file | devices/disk/source/@dev")
            assert isinstance(files, list)
            found += [str(f) for f in files if str(f) not in found]
        return found

    def documents(self) -> tuple[bytes | None, bytes | None]:
        """The XML of the running domain (None when it does not run) and of the defined one
        (None for a transient domain)."""
        live = self.xml() if self.is_active() else None
        if not self.is_persistent():
            return live, None
        with _libvirt_errors(f"cannot read the defined XML of {self.name}"):
            defined = str(self.domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        return live, defined.encode("utf-8")

    def channel_socket(self, name: str) -> Path | None:
        """The host path of the unix socket behind the virtio-serial port `name` (live XML)."""
        root = etree.fromstring(self.xml())
        for channel in root.iterfind("devices/channel[@type='unix']"):
            target = channel.find("target")
            source = channel.find("source")
            if target is not None and target.get("name") == name and source is not None:
                path = source.get("path")
                return Path(path) if path else None
        return None

    def update_disk(
        self, disk: DiskDevice, *, force: bool = False, live: bool = True,
        config: bool | None = None,
    ) -> None:
        """Change a disk in place (an empty CD-ROM `DiskDevice` ejects its medium).

        `live` and `config` pick the running domain and the defined one (`config=None`: the
        defined one too when the domain is persistent). `force` opens a CD-ROM tray the guest
        locked, instead of asking the guest and waiting.
        """
        flags = self._affect(live, config) | (
            libvirt.VIR_DOMAIN_DEVICE_MODIFY_FORCE if force else 0)
        with _libvirt_errors(f"cannot change disk {disk.target} of {self.name}"):
            self.domain.updateDeviceFlags(_disk_xml(disk), flags)

    def detach_disk(self, disk: DiskDevice, *, live: bool = True,
                    config: bool | None = None) -> None:
        """Remove the drive `disk.target` itself (with whatever medium it holds)."""
        with _libvirt_errors(f"cannot remove disk {disk.target} of {self.name}"):
            self.domain.detachDeviceFlags(_disk_xml(disk), self._affect(live, config))

    def _affect(self, live: bool, config: bool | None) -> int:
        if config is None:
            config = self.is_persistent()
        return (libvirt.VIR_DOMAIN_AFFECT_LIVE if live else 0) | (
            libvirt.VIR_DOMAIN_AFFECT_CONFIG if config else 0)

    def tray(self, target: str) -> str:
        """The tray state libvirt reports for CD-ROM `target` ("open", "closed" or "unknown")."""
        found = etree.fromstring(self.xml()).xpath(
            f"devices/disk[target/@dev='{_xpath_safe(target)}']/target/@tray")
        assert isinstance(found, list)
        return str(found[0]) if found else "unknown"

    def disk_sources(self, target: str) -> list[str]:
        """The files disk `target` names in the live XML and, when persistent, the defined one."""
        live, defined = self.medium_sources(target)
        return live + defined

    def medium_sources(self, target: str) -> tuple[list[str], list[str]]:
        """The files disk `target` names in the running domain and in the defined one (an
        inactive domain has no running side; a transient one no defined side)."""
        live, defined = self.documents()
        return (self._sources(live, target) if live is not None else [],
                self._sources(defined, target) if defined is not None else [])

    @staticmethod
    def _sources(document: bytes, target: str) -> list[str]:
        root = etree.fromstring(document)
        files = root.xpath(f"devices/disk[target/@dev='{_xpath_safe(target)}']/source/@file")
        assert isinstance(files, list)
        return [str(f) for f in files]

    def eject(self, cdrom: DiskDevice, *, timeout: float = EJECT_TIMEOUT_S) -> Ejection:
        """Take the medium out of `cdrom` in the running and the defined domain, checked.

        libvirt ejects in two steps (open the tray, forced, then remove the medium) and trusts
        its own record of the tray: qemu refuses the second step ("Tray of device ... is not
        open") when the guest closed the tray in between (a firmware or a kernel probing the
        drive does), and, under heavy CPU load, attempt after attempt for a minute (measured:
        23 refusals in 60 s, 4 runs in 20, with the guest paused for every retry). So: a first
        forced attempt; then one with the guest's vCPUs paused for the few milliseconds of the
        change (the guest cannot touch the tray then); then the drive itself is removed (hot
        unplug of the virtio-scsi CD-ROM, which no tray can refuse). Each step is retried with
        growing pauses until `timeout`. What counts is the check after each attempt: no file
        named in either XML. A medium already gone is success at once.
        """
        deadline = time.monotonic() + timeout
        pause, attempts = EJECT_FIRST_PAUSE_S, 0
        last: VirtError | None = None
        while True:
            live, defined = self.medium_sources(cdrom.target)
            if not live and not defined:
                return Ejection(attempts=attempts, drive_removed=attempts >= EJECT_DETACH_AFTER)
            if time.monotonic() >= deadline:
                break
            attempts += 1
            try:
                self._eject_once(cdrom, attempts, live=bool(live), config=bool(defined))
                continue  # verified at the top of the loop
            except VirtError as exc:
                last = exc
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, EJECT_MAX_PAUSE_S)
        left = (live or defined)[0]
        why = f": {last.message}" if last is not None else ""
        tray = f" (libvirt says its tray is {self.tray(cdrom.target)})" if live else ""
        raise VirtError(f"{self.name}: the medium {left} is still in {cdrom.target}{tray} after "
                        f"{attempts} eject attempts in {timeout:g} s{why}",
                        hint=f"virsh change-media {self.name} {cdrom.target} --eject --force")

    def _eject_once(self, cdrom: DiskDevice, attempt: int, *, live: bool, config: bool) -> None:
        empty = dataclasses.replace(cdrom, path=None)
        if attempt >= EJECT_DETACH_AFTER:
            self.detach_disk(cdrom, live=live, config=config)
            return
        with self.paused() if attempt > 1 and live else contextlib.nullcontext():
            self.update_disk(empty, force=True, live=live, config=config)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The guest's vCPUs stopped inside the block (when it runs), resumed after it."""
        with _libvirt_errors(f"cannot read the state of {self.name}"):
            running = self.domain.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        if not running:
            yield
            return
        with _libvirt_errors(f"cannot pause {self.name}"):
            self.domain.suspend()
        try:
            yield
        finally:
            with _libvirt_errors(f"cannot resume {self.name}"):
                self.domain.resume()

    def destroy(self) -> None:
        """Stop the domain at once; a domain already stopped is fine."""
        if not self.is_active():
            return
        try:
            self.domain.destroy()
        except libvirt.libvirtError as exc:
            if self.is_active():
                raise VirtError(f"cannot destroy {self.name}: {_first_line(exc)}") from exc

    def undefine(self) -> None:
        """Remove a persistent definition, and a UEFI domain's variables file with it; no-op
        when transient or gone."""
        try:
            if not self.domain.isPersistent():
                return
            self._undefine_with_nvram()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise VirtError(f"cannot undefine {self.name}: {_first_line(exc)}") from exc

    def _undefine_with_nvram(self) -> None:
        # libvirt's qemu driver takes the flag for any domain and removes a variables file
        # only where there is one, so no need to read the XML first.
        try:
            self.domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_INVALID_ARG:
                raise
            self.domain.undefine()  # a driver without NVRAM files (libvirt's test driver)

    def remove(self) -> None:
        """Destroy, then undefine: the domain leaves no trace in libvirt."""
        self.destroy()
        self.undefine()

    def wait_for_shutdown(self, timeout: float) -> bool:
        """Wait until the domain is no longer running; False when `timeout` passed first."""
        deadline = time.monotonic() + timeout
        while self.is_active():
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_S)
        return True


class Hypervisor:
    """A libvirt connection by URI, used as a context manager."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._conn: Any = None

    def __enter__(self) -> Hypervisor:
        libvirt.registerErrorHandler(_silence_default_handler, None)
        try:
            self._conn = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            raise MissingPrerequisiteError(
                f"cannot connect to libvirt at {self.uri}: {_first_line(exc)}",
                hint="start libvirtd (and virtlogd), or pass another --uri",
            ) from exc
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            # Closing a dead connection: nothing left to release.
            with suppress(libvirt.libvirtError):
                self._conn.close()
            self._conn = None

    @property
    def conn(self) -> Any:
        if self._conn is None:
            raise VirtError(f"not connected to {self.uri}")
        return self._conn

    def create(self, xml: bytes, *, persistent: bool = False) -> DomainHandle:
        """Start a domain from XML: transient by default, or defined first when `persistent`."""
        text = xml.decode("utf-8")
        with _libvirt_errors("the VM did not start", VmStartError):
            if not persistent:
                return DomainHandle(self.conn.createXML(text, 0))
            domain = self.conn.defineXML(text)
        handle = DomainHandle(domain)
        try:
            with _libvirt_errors("the VM did not start", VmStartError):
                domain.create()
        except VmStartError:
            handle.undefine()
            raise
        return handle

    def define(self, xml: bytes) -> DomainHandle:
        """Define a persistent domain without starting it."""
        with _libvirt_errors("cannot define the domain"):
            return DomainHandle(self.conn.defineXML(xml.decode("utf-8")))

    def lookup(self, name: str) -> DomainHandle | None:
        """The domain called `name`, or None."""
        try:
            return DomainHandle(self.conn.lookupByName(name))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise VirtError(f"cannot look up domain {name}: {_first_line(exc)}") from exc

    def require(self, name: str) -> DomainHandle:
        handle = self.lookup(name)
        if handle is None:
            raise DomainNotFoundError(f"no domain called {name} at {self.uri}")
        return handle

    def destroy(self, name: str) -> None:
        handle = self.lookup(name)
        if handle is not None:
            handle.destroy()

    def undefine(self, name: str) -> None:
        handle = self.lookup(name)
        if handle is not None:
            handle.undefine()

    def domains(self) -> list[DomainHandle]:
        """Every domain on the connection, running or not, by name."""
        with _libvirt_errors("cannot list domains"):
            found = [DomainHandle(d) for d in self.conn.listAllDomains(0)]
        return sorted(found, key=lambda handle: handle.name)

    def domain_names(self) -> list[str]:
        return [handle.name for handle in self.domains()]

    def qemu_identity(self) -> tuple[int, int] | None:
        """The uid and gid qemu runs as on this connection (libvirt's DAC base label, e.g.
        libvirt-qemu on Debian, qemu on EL); None when libvirt labels files some other way
        (e.g. its test driver)."""
        with _libvirt_errors("cannot read libvirt's capabilities"):
            caps = etree.fromstring(str(self.conn.getCapabilities()).encode("utf-8"))
        for virt_type in ("qemu", "kvm"):
            found = caps.xpath(f"host/secmodel[model='dac']/baselabel[@type='{virt_type}']/text()")
            assert isinstance(found, list)
            if found and (match := re.fullmatch(r"\+?(\d+):\+?(\d+)", str(found[0]).strip())):
                return int(match.group(1)), int(match.group(2))
        return None

    def offers_uefi(self, virt_type: VirtType = "qemu", machine: str = "q35") -> bool | None:
        """Whether libvirt finds UEFI firmware for such domains (its firmware descriptors);
        None when this driver cannot say (e.g. the test driver)."""
        try:
            caps = self.conn.getDomainCapabilities(None, "x86_64", machine, virt_type, 0)
        except libvirt.libvirtError:
            return None
        values = etree.fromstring(str(caps).encode("utf-8")).xpath(
            "os/enum[@name='firmware']/value/text()")
        assert isinstance(values, list)
        return "efi" in [str(v) for v in values]

    def kvm_offered(self) -> tuple[bool, str]:
        """Whether /dev/kvm can run an ordinary guest (builder.virt.kvm) and libvirt offers the
        kvm domain type (no VM started)."""
        unusable = kvm_unusable()
        if unusable is not None:
            return False, unusable
        try:
            self.conn.getDomainCapabilities(None, "x86_64", None, "kvm", 0)
        except libvirt.libvirtError as exc:
            return False, f"libvirt offers no kvm domains: {_first_line(exc)}"
        return True, "libvirt offers kvm"

    def start_domain(self, xml_for: Callable[[VirtType], bytes], wanted: VirtChoice, *,
                     persistent: bool = False) -> StartedDomain:
        """Start the domain `xml_for(virt_type)` describes: with `wanted` when it is kvm or qemu;
        for auto, kvm when libvirt offers it and the domain really starts (nested hosts can
        expose /dev/kvm while qemu aborts on the first vCPU), else qemu (TCG). Says why."""
        if wanted != "auto":
            return StartedDomain(self.create(xml_for(wanted), persistent=persistent), wanted,
                                 "asked for")
        offered, why = self.kvm_offered()
        if offered:
            try:
                return StartedDomain(self.create(xml_for("kvm"), persistent=persistent), "kvm",
                                     "KVM works")
            except VmStartError as exc:
                cause = exc.__cause__
                detail = (_last_qemu_line(cause) if isinstance(cause, libvirt.libvirtError)
                          else exc.message)
                why = f"KVM does not work here: {detail}"
        return StartedDomain(self.create(xml_for("qemu"), persistent=persistent), "qemu", why)


@dataclass(frozen=True)
class StartedDomain:
    """A running domain, the virtualization it got, and why."""

    handle: DomainHandle
    virt_type: VirtType
    why: str


def _xpath_safe(name: str) -> str:
    """A device name fit for an XPath literal (libvirt target names are [a-z0-9])."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"not a device name: {name!r}")
    return name


def _last_qemu_line(exc: libvirt.libvirtError) -> str:
    """The most telling line of a failed start: qemu's own error, not libvirt's preamble."""
    lines = [ln.strip() for ln in str(exc.get_error_message() or exc).splitlines() if ln.strip()]
    for line in lines:
        if "error:" in line:
            return line.rsplit("error:", 1)[1].strip()
    return lines[-1] if lines else "unknown error"
