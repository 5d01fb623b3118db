"""The one libguestfs adapter: a typed guest handle over the untyped `guestfs` binding."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.errors import CommandError, InputError, MissingPrerequisiteError
from builder.virt.kvm import kvm_unusable

# libvirt's backend needs a running libvirtd and session plumbing; the direct one starts qemu.
DEFAULT_BACKEND = "direct"
BACKEND_VAR = "LIBGUESTFS_BACKEND"
SETTINGS_VAR = "LIBGUESTFS_BACKEND_SETTINGS"
# Other variables the handle honours (debug, trace, where supermin builds its appliance).
PASSED_VARS = ("LIBGUESTFS_DEBUG", "LIBGUESTFS_TRACE", "LIBGUESTFS_PATH", "LIBGUESTFS_CACHEDIR",
               "LIBGUESTFS_TMPDIR", "TMPDIR", "SUPERMIN_KERNEL", "SUPERMIN_MODULES")
TCG = "force_tcg"
# /etc/fstab types that are not on the guest's disks.
NOT_LOCAL = frozenset({"swap", "none", "tmpfs", "proc", "sysfs", "devpts", "nfs", "nfs4", "cifs",
                       "devtmpfs", "efivarfs", "securityfs", "cgroup", "cgroup2"})


@dataclass(frozen=True)
class FileStat:
    mode: int
    uid: int
    gid: int
    size: int

    @property
    def permissions(self) -> int:
        return self.mode & 0o7777


def _import_guestfs() -> Any:
    try:
        import guestfs  # noqa: PLC0415 - only a Debian package provides it
    except ImportError as exc:
        raise MissingPrerequisiteError(
            "the guestfs Python binding is not installed",
            hint="install the Debian package python3-guestfs (venv with --system-site-packages)",
        ) from exc
    return guestfs


def _guestfs_env(env: Mapping[str, str]) -> list[str]:
    """The variables the handle reads, as `KEY=VALUE` (the process env is untouched)."""
    return [f"{key}={env[key]}" for key in PASSED_VARS if key in env]


@dataclass(frozen=True)
class Accel:
    """How the appliance runs: the backend and its settings (e.g. `force_tcg`)."""

    backend: str
    settings: tuple[str, ...]

    @property
    def tcg(self) -> bool:
        return TCG in self.settings

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Accel:
        settings = tuple(s for s in env.get(SETTINGS_VAR, "").split(":") if s)
        return cls(env.get(BACKEND_VAR) or DEFAULT_BACKEND, settings)

    def with_tcg(self) -> Accel:
        return Accel(self.backend, (*self.settings, TCG))


class Guest:
    """A launched appliance with the guest OS's filesystems mounted at their places."""

    def __init__(self, handle: Any) -> None:
        self._g = handle

    def _call(self, what: str, func: Any, *args: Any) -> Any:
        try:
            return func(*args)
        except RuntimeError as exc:
            raise CommandError(["guestfs", what], 1, str(exc)) from exc

    def exists(self, path: str) -> bool:
        return bool(self._call("exists", self._g.exists, path))

    def is_file(self, path: str) -> bool:
        return bool(self._call("is_file", self._g.is_file, path))

    def is_dir(self, path: str) -> bool:
        return bool(self._call("is_dir", self._g.is_dir, path))

    def read(self, path: str) -> bytes:
        return bytes(self._call(f"read {path}", self._g.read_file, path))

    def write(self, path: str, data: bytes, *, mode: int, uid: int = 0, gid: int = 0) -> None:
        """Write a file whole, then set its mode and owner (created parents are 0755 root)."""
        parent = str(Path(path).parent)
        if not self.is_dir(parent):
            self._call(f"mkdir {parent}", self._g.mkdir_p, parent)
        self._call(f"write {path}", self._g.write, path, data)
        self.set_owner_mode(path, mode=mode, uid=uid, gid=gid)

    def upload(self, local: Path, path: str, *, mode: int, uid: int = 0, gid: int = 0) -> None:
        parent = str(Path(path).parent)
        if not self.is_dir(parent):
            self._call(f"mkdir {parent}", self._g.mkdir_p, parent)
        self._call(f"upload {path}", self._g.upload, str(local), path)
        self.set_owner_mode(path, mode=mode, uid=uid, gid=gid)

    def set_owner_mode(self, path: str, *, mode: int, uid: int, gid: int) -> None:
        self._call(f"chown {path}", self._g.chown, uid, gid, path)
        self._call(f"chmod {path}", self._g.chmod, mode, path)

    def mkdir(self, path: str, *, mode: int) -> None:
        if not self.is_dir(path):
            self._call(f"mkdir {path}", self._g.mkdir_p, path)
        self._call(f"chmod {path}", self._g.chmod, mode, path)

    def stat(self, path: str) -> FileStat:
        st = self._call(f"stat {path}", self._g.lstatns, path)
        return FileStat(int(st["st_mode"]), int(st["st_uid"]), int(st["st_gid"]),
                        int(st["st_size"]))

    def readlink(self, path: str) -> str:
        return str(self._call(f"readlink {path}", self._g.readlink, path))

    def symlink(self, target: str, path: str) -> None:
        self._call(f"ln -sf {path}", self._g.ln_sf, target, path)

    def remove(self, path: str) -> None:
        self._call(f"rm -rf {path}", self._g.rm_rf, path)

    def truncate(self, path: str) -> None:
        self._call(f"truncate {path}", self._g.truncate, path)

    def glob(self, pattern: str) -> list[str]:
        return [str(p) for p in self._call(f"glob {pattern}", self._g.glob_expand, pattern)]

    def list_dir(self, path: str) -> list[str]:
        return [str(p) for p in self._call(f"ls {path}", self._g.ls, path)]

    def find_files(self, path: str) -> list[str]:
        """Regular files below `path` (absolute guest paths)."""
        found = self._call(f"find {path}", self._g.find, path)
        return [f"{path}/{rel}" for rel in found if self.is_file(f"{path}/{rel}")]

    def run(self, argv: Sequence[str]) -> str:
        """Run argv inside the guest (chrooted, no shell); its stdout, or CommandError."""
        try:
            return str(self._g.command(list(argv)))
        except RuntimeError as exc:
            raise CommandError(list(argv), 1, str(exc)) from exc

    def fstrim_all(self) -> None:
        """Discard every free block of every mounted filesystem (needs discard on the drive)."""
        for mountpoint in self._call("mountpoints", self._g.mountpoints).values():
            with contextlib.suppress(CommandError):  # e.g. vfat /boot/efi without discard
                self._call(f"fstrim {mountpoint}", self._g.fstrim, mountpoint)

    def has_tool(self, name: str) -> bool:
        return any(self.is_file(f"{d}/{name}") for d in ("/usr/bin", "/usr/sbin", "/bin", "/sbin"))


def _mount_os(g: Any, source: Path) -> None:
    """Mount the guest's root and its /etc/fstab entries. Full inspection (inspect_os) costs
    ~13 s under TCG; finding the root by its /etc/fstab costs ~2 s, so it is tried first."""
    root = _find_root(g)
    if root is None:
        _mount_inspected(g, source)
    else:
        _mount_fstab(g, _read_fstab(g))
    for special in ("/dev", "/proc", "/sys"):
        if not g.is_dir(special):
            g.mkdir_p(special)


def _find_root(g: Any) -> str | None:
    """Mount at / the first volume holding /etc/fstab and a /usr; its device, or None."""
    candidates = [*g.lvs(), *g.list_partitions()] or g.list_devices()
    for device in candidates:
        try:
            g.mount(device, "/")
        except RuntimeError:
            continue  # swap, an empty partition, a BIOS boot partition
        if g.is_file("/etc/fstab") and g.is_dir("/usr"):
            return str(device)
        g.umount("/")
    return None


@dataclass(frozen=True)
class FstabEntry:
    spec: str
    mountpoint: str
    fstype: str
    options: tuple[str, ...]


def _read_fstab(g: Any) -> list[FstabEntry]:
    entries = []
    for line in bytes(g.read_file("/etc/fstab")).decode("utf-8", "replace").splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[0].startswith("#"):
            continue
        entries.append(FstabEntry(fields[0], fields[1], fields[2], tuple(fields[3].split(","))))
    return entries


def _mount_fstab(g: Any, entries: list[FstabEntry]) -> None:
    """Mount every local filesystem below / in path order; a missing one is an error unless
    the guest itself tolerates it (noauto, nofail)."""
    local = [e for e in entries if e.mountpoint.startswith("/") and e.mountpoint != "/"
             and e.fstype not in NOT_LOCAL and "bind" not in e.options]
    for entry in sorted(local, key=lambda e: e.mountpoint.count("/")):
        try:
            _mount_entry(g, entry)
        except RuntimeError as exc:
            if "noauto" in entry.options or "nofail" in entry.options:
                continue
            raise InputError(f"cannot mount the guest's {entry.mountpoint} ({entry.spec}): "
                             f"{_first_line(exc)}") from exc


def _mount_entry(g: Any, entry: FstabEntry) -> None:
    kind, _, value = entry.spec.partition("=")
    if kind == "UUID":
        device = g.findfs_uuid(value)
    elif kind == "LABEL":
        device = g.findfs_label(value)
    else:  # the guest's disk is /dev/vda or /dev/hda; inside the appliance it is /dev/sda
        device = re.sub(r"^/dev/[vh]d", "/dev/sd", entry.spec)
    if not g.is_dir(entry.mountpoint):
        g.mkdir_p(entry.mountpoint)
    subvol = [o for o in entry.options if o.startswith("subvol=")]
    g.mount_options(",".join(subvol), device, entry.mountpoint)


def _mount_inspected(g: Any, source: Path) -> None:
    try:
        roots = g.inspect_os()
    except RuntimeError as exc:
        raise InputError(f"cannot inspect {source}: {_first_line(exc)}") from exc
    if not roots:
        raise InputError(f"no operating system found in {source}")
    mounts = g.inspect_get_mountpoints(roots[0])
    for mountpoint in sorted(mounts, key=len):
        try:
            g.mount(mounts[mountpoint], mountpoint)
        except RuntimeError:
            continue  # swap or an unmountable extra; the root is mounted first


@contextlib.contextmanager
def open_guest(
    disk: Path, *, disk_format: str, env: Mapping[str, str], readonly: bool = False,
    notify: Callable[[str], None] | None = None,
) -> Iterator[Guest]:
    """Launch one appliance on `disk` and mount the guest OS; sync and shut down on exit.

    `env` gives LIBGUESTFS_BACKEND (default direct) and LIBGUESTFS_BACKEND_SETTINGS. Without
    settings, TCG (force_tcg) is taken at once where KVM cannot run an ordinary guest
    (builder.virt.kvm); else KVM is tried first and TCG taken when it fails: nested hosts
    expose /dev/kvm although qemu aborts at once (a failed launch costs well under a second).
    """
    guestfs = _import_guestfs()
    accel = Accel.from_env(env)
    unusable = None if accel.settings else kvm_unusable()
    if unusable is not None:
        accel = accel.with_tcg()
        if notify is not None:
            notify(f"guestfs: using TCG (software emulation): {unusable}")
    g = _launched(guestfs, disk, disk_format, env, accel, readonly=readonly)
    if g is None:
        accel = accel.with_tcg()
        if notify is not None:
            notify("guestfs: KVM did not start, using TCG (software emulation)")
        g = _launched(guestfs, disk, disk_format, env, accel, readonly=readonly, last=True)
    assert g is not None
    try:
        _mount_os(g, disk)
        yield Guest(g)
        g.shutdown()
    finally:
        g.close()


def _launched(guestfs: Any, disk: Path, disk_format: str, env: Mapping[str, str], accel: Accel,
              *, readonly: bool, last: bool = False) -> Any:
    """A launched handle, or None when KVM failed and TCG is still left to try."""
    g = guestfs.GuestFS(python_return_dict=True, close_on_exit=False)
    try:
        g.parse_environment_list(_guestfs_env(env))
        g.set_backend(accel.backend)
        g.set_backend_settings(list(accel.settings))
        g.add_drive_opts(str(disk), format=disk_format, readonly=readonly,
                         discard="disable" if readonly else "besteffort")
        g.set_network(False)
        g.launch()
    except RuntimeError as exc:
        g.close()
        if last or accel.tcg:
            raise CommandError(["guestfs", "launch", str(disk)], 1, _first_line(exc)) from exc
        return None
    except BaseException:
        g.close()
        raise
    return g


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
