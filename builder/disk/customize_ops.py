"""The customize backend's operations: the recipe schema, and how each one changes the guest."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from builder.errors import InputError
from builder.passwords import DEFAULT_ROUNDS, derive_salt, sha512_crypt
from builder.virt.guestfs import Guest

_ZONE = re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*\Z")
_SSH_KEY = re.compile(
    r"(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp\d+|sk-\S+) [A-Za-z0-9+/=]+( [^\n\r]*)?\Z"
)
ROTATED_LOG = re.compile(r"\.(\d+|gz|xz|old)$|-\d{8}$")
_OWNER = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*:[A-Za-z0-9_.][A-Za-z0-9_.-]*\Z")
# The root password's salt is derived from the build's identity (the customize stage's cache
# key), so the same inputs give the same image; rounds as glibc's default, like the seeds.
PASSWORD_SALT_CONTEXT = b"he-builder customize root password salt"
PASSWORD_ROUNDS = DEFAULT_ROUNDS


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _guest_path(value: str) -> str:
    if not value.startswith("/") or "\n" in value or "\x00" in value or "/../" in f"{value}/":
        raise ValueError("must be an absolute guest path without '..' or newlines")
    return value


def _mode(value: object) -> int:
    """A quoted octal string: YAML reads 0644 as octal but 644 as decimal, a silent trap."""
    try:
        mode = int(value, 8) if isinstance(value, str) else -1
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise ValueError("must be a quoted octal mode such as '0644'")
    return mode


class _FileOp(_Op):
    path: str
    mode: int = 0o644
    owner: str = "root:root"

    _check_path = field_validator("path")(_guest_path)
    _check_mode = field_validator("mode", mode="before")(_mode)

    @field_validator("owner")
    @classmethod
    def _check_owner(cls, value: str) -> str:
        if not _OWNER.match(value):
            raise ValueError("must be 'user:group' (names or numbers)")
        return value


class UploadOp(_FileOp):
    op: Literal["upload"]
    source: Path


class WriteOp(_FileOp):
    op: Literal["write"]
    content: str


class InstallOp(_Op):
    op: Literal["install"]
    package: Path

    @field_validator("package")
    @classmethod
    def _check_suffix(cls, value: Path) -> Path:
        if value.suffix not in (".deb", ".rpm"):
            raise ValueError("must be a .deb or .rpm file")
        return value


class RunOp(_Op):
    op: Literal["run"]
    argv: list[str] = Field(min_length=1)


class RootPasswordOp(_Op):
    """The cleartext comes from a file or an environment variable (never the recipe), or a
    ready crypt hash is given."""

    op: Literal["root_password"]
    file: Path | None = None
    env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    hash: str | None = Field(default=None, pattern=r"^\$(6|5|y)\$[./A-Za-z0-9$=,]+$")

    @model_validator(mode="after")
    def _one_source(self) -> RootPasswordOp:
        if [self.file, self.env, self.hash].count(None) != 2:
            raise ValueError("give exactly one of file or env (cleartext) or hash (crypt)")
        return self


class SshKeysOp(_Op):
    op: Literal["ssh_keys"]
    keys: list[str] = Field(min_length=1)

    @field_validator("keys")
    @classmethod
    def _check_keys(cls, value: list[str]) -> list[str]:
        for key in value:
            if not _SSH_KEY.match(key.strip()):
                raise ValueError(f"not a single-line OpenSSH public key: {key[:40]!r}")
        return [key.strip() for key in value]


class TimezoneOp(_Op):
    op: Literal["timezone"]
    zone: str = Field(pattern=_ZONE.pattern.removesuffix(r"\Z").join("^$"))


class SysprepOp(_Op):
    op: Literal["sysprep"]


class SelinuxRelabelOp(_Op):
    op: Literal["selinux_relabel"]


class SparsifyOp(_Op):
    op: Literal["sparsify"]


Operation = Annotated[
    UploadOp | WriteOp | InstallOp | RunOp | RootPasswordOp | SshKeysOp | TimezoneOp
    | SysprepOp | SelinuxRelabelOp | SparsifyOp,
    Field(discriminator="op"),
]


def check_order(ops: Sequence[Operation]) -> None:
    """Sparsify discards free blocks, so any operation after it would undo part of its work."""
    kinds = [op.op for op in ops]
    if "sparsify" in kinds[:-1]:
        raise ValueError("sparsify must be the last operation")


def resolve_paths(op: Operation, base: Path) -> Operation:
    """The operation with its host paths made absolute against `base` (the recipe's folder)."""
    match op:
        case UploadOp():
            return op.model_copy(update={"source": base / op.source})
        case InstallOp():
            return op.model_copy(update={"package": base / op.package})
        case RootPasswordOp(file=Path() as file):
            return op.model_copy(update={"file": base / file})
    return op


def host_files(op: Operation) -> list[Path]:
    """The host files an operation reads (checked before the launch, hashed for the cache)."""
    match op:
        case UploadOp():
            return [op.source]
        case InstallOp():
            return [op.package]
        case RootPasswordOp(file=Path() as file):
            return [file]
    return []


def _resolve_ids(guest: Guest, owner: str) -> tuple[int, int]:
    user, group = owner.split(":")
    return _lookup_id(guest, "/etc/passwd", user), _lookup_id(guest, "/etc/group", group)


def _lookup_id(guest: Guest, table: str, name: str) -> int:
    if name.isdigit():
        return int(name)
    for line in guest.read(table).decode("utf-8", "replace").splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[0] == name:
            return int(fields[2])
    raise InputError(f"{name!r} is not in the guest's {table}")


def apply_upload(guest: Guest, op: UploadOp) -> None:
    uid, gid = _resolve_ids(guest, op.owner)
    guest.upload(op.source, op.path, mode=op.mode, uid=uid, gid=gid)


def apply_write(guest: Guest, op: WriteOp) -> None:
    uid, gid = _resolve_ids(guest, op.owner)
    guest.write(op.path, op.content.encode("utf-8"), mode=op.mode, uid=uid, gid=gid)


def apply_install(guest: Guest, op: InstallOp) -> None:
    """Install with the guest's own package tool: dpkg for .deb, rpm for .rpm."""
    tool = "dpkg" if op.package.suffix == ".deb" else "rpm"
    if not guest.has_tool(tool):
        raise InputError(f"cannot install {op.package.name}: the guest has no {tool}")
    staged = f"/var/tmp/he-customize-{op.package.name}"
    guest.upload(op.package, staged, mode=0o644)
    # No terminal in the appliance: debconf must not wait for answers.
    argv = (["env", "DEBIAN_FRONTEND=noninteractive", "dpkg", "-i", staged] if tool == "dpkg"
            else ["rpm", "-U", "--replacepkgs", staged])
    guest.run(argv)
    guest.remove(staged)


def crypt_password(cleartext: str, *, identity: str, field: str) -> RootPasswordOp:
    """The operation with the SHA-512 crypt of `cleartext` in place of its source, so the
    cleartext goes no further than this call. The salt is derived from `identity` (the
    build's cache key); `field` names the operation in errors."""
    salt = derive_salt(PASSWORD_SALT_CONTEXT, identity)
    hashed = sha512_crypt(cleartext, salt, field=field, rounds=PASSWORD_ROUNDS)
    return RootPasswordOp(op="root_password", hash=hashed)


def apply_root_password(guest: Guest, op: RootPasswordOp) -> None:
    """Put the crypt hash in root's /etc/shadow entry (sources are crypted before the launch)."""
    if op.hash is None:
        raise ValueError("the root password must be crypted before it reaches the guest")
    crypted = op.hash
    shadow = guest.read("/etc/shadow").decode("utf-8").splitlines()
    lines = [_with_hash(line, crypted) for line in shadow]
    stat = guest.stat("/etc/shadow")
    guest.write("/etc/shadow", ("\n".join(lines) + "\n").encode("utf-8"),
                mode=stat.permissions, uid=stat.uid, gid=stat.gid)


def _with_hash(line: str, crypted: str) -> str:
    fields = line.split(":")
    if fields[0] != "root" or len(fields) < 2:
        return line
    fields[1] = crypted
    return ":".join(fields)


def apply_ssh_keys(guest: Guest, op: SshKeysOp) -> None:
    guest.mkdir("/root/.ssh", mode=0o700)
    path = "/root/.ssh/authorized_keys"
    present = guest.read(path).decode("utf-8").splitlines() if guest.is_file(path) else []
    keys = present + [key for key in op.keys if key not in present]
    guest.write(path, ("\n".join(keys) + "\n").encode("utf-8"), mode=0o600)


def apply_timezone(guest: Guest, op: TimezoneOp) -> None:
    zoneinfo = f"/usr/share/zoneinfo/{op.zone}"
    if not guest.is_file(zoneinfo):
        raise InputError(f"timezone {op.zone!r}: {zoneinfo} is not in the guest")
    guest.symlink(zoneinfo, "/etc/localtime")
    if guest.is_file("/etc/timezone"):  # Debian keeps the name here as well
        guest.write("/etc/timezone", f"{op.zone}\n".encode(), mode=0o644)


def apply_sysprep(guest: Guest) -> None:
    """Forget this machine's identity: every deploy gets its own at first boot."""
    if guest.is_file("/etc/machine-id"):
        guest.truncate("/etc/machine-id")  # empty, not absent: systemd fills it at first boot
    for key in guest.glob("/etc/ssh/ssh_host_*"):
        guest.remove(key)
    for log in guest.find_files("/var/log") if guest.is_dir("/var/log") else []:
        if ROTATED_LOG.search(log) or "/journal/" in log:  # journald starts new files
            guest.remove(log)
        else:
            guest.truncate(log)
    if guest.is_dir("/var/lib/cloud"):
        for entry in guest.list_dir("/var/lib/cloud"):
            guest.remove(f"/var/lib/cloud/{entry}")
    guest.remove("/var/lib/systemd/random-seed")


def apply_selinux_relabel(guest: Guest) -> None:
    if guest.is_file("/etc/selinux/config"):
        guest.write("/.autorelabel", b"", mode=0o644)


def apply_operation(guest: Guest, op: Operation) -> None:
    """Apply one validated operation to the mounted guest."""
    match op:
        case UploadOp():
            apply_upload(guest, op)
        case WriteOp():
            apply_write(guest, op)
        case InstallOp():
            apply_install(guest, op)
        case RunOp():
            guest.run(op.argv)
        case RootPasswordOp():
            apply_root_password(guest, op)
        case SshKeysOp():
            apply_ssh_keys(guest, op)
        case TimezoneOp():
            apply_timezone(guest, op)
        case SysprepOp():
            apply_sysprep(guest)
        case SelinuxRelabelOp():
            apply_selinux_relabel(guest)
        case SparsifyOp():
            guest.fstrim_all()
