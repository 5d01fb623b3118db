"""The customize backend: a released image (raw, qcow2 or OVA) adapted in one libguestfs launch."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from builder.console import counted
from builder.disk.backend import BuildContext
from builder.disk.customize_ops import (
    InstallOp,
    Operation,
    RootPasswordOp,
    RunOp,
    SshKeysOp,
    TimezoneOp,
    UploadOp,
    WriteOp,
    apply_operation,
    check_order,
    crypt_password,
    host_files,
    resolve_paths,
)
from builder.disk.recipe import invalid_recipe, validate_options
from builder.errors import InputError
from builder.inventory.problems import in_line_order
from builder.model import ApplianceMeta, BuiltDisk, DiskFormat
from builder.ova import unpack_ova
from builder.ova.verify import GZIP_MAGIC, QCOW2_MAGIC
from builder.passwords import password_problem
from builder.pipeline.store import hash_inputs
from builder.repro import sha256_file
from builder.run import package_version
from builder.sparse import sha256_sparse
from builder.virt.guestfs import open_guest
from builder.virt.qemu_img import convert_image, create_image, image_info, qemu_img_version

if TYPE_CHECKING:
    from builder.disk.recipe import Recipe

BaseKind = Literal["raw", "qcow2", "ova"]
# Bumped when the build below changes in a way the input hash cannot see.
LAYOUT_VERSION = "1"
# The cache key holds a slow, salted digest of a cleartext password: no easier to guess
# from than the crypt hash the image itself carries.
PASSWORD_KEY_SALT = b"he-builder customize cache key"
PASSWORD_KEY_ROUNDS = 200_000
MIN_RAW_SIZE = 1 << 20


class CustomizeOptions(BaseModel):
    """The `options:` of a customize recipe; host paths are relative to the recipe's folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base: Path
    base_format: Literal["auto", "raw", "qcow2", "ova"] = "auto"
    output_format: DiskFormat = "qcow2"
    operations: list[Operation] = Field(default_factory=list)

    @field_validator("operations")
    @classmethod
    def _check_order(cls, value: list[Operation]) -> list[Operation]:
        check_order(value)
        return value


def from_recipe(recipe: Recipe, env: Mapping[str, str]) -> CustomizeBackend:
    """The registry entry: validate options, find the base image and every host file, read
    password sources; all before any work starts."""
    options = validate_options(CustomizeOptions, recipe)
    folder = recipe.path.resolve().parent
    base = folder / options.base
    ops = tuple(resolve_paths(op, folder) for op in options.operations)
    missing = [recipe.problem(("options", "operations", i), f"file not found: {path}")
               for i, op in enumerate(ops) for path in host_files(op) if not path.is_file()]
    if missing:
        raise invalid_recipe(recipe.path, in_line_order(missing))
    kind = detect_base(base, options.base_format)
    passwords = {i: read_cleartext(op, env) for i, op in enumerate(ops)
                 if isinstance(op, RootPasswordOp) and op.hash is None}
    return CustomizeBackend(meta=recipe.meta, base=base, base_kind=kind,
                            output_format=options.output_format, operations=ops,
                            passwords=passwords)


def detect_base(path: Path, declared: str) -> BaseKind:
    """What the base image is, from its first bytes; InputError when it is none of ours."""
    if not path.is_file():
        raise InputError(f"base image not found: {path}")
    with path.open("rb") as handle:
        head = handle.read(0x10048)
    found = _sniff(head, path.stat().st_size)
    if found is None:
        raise InputError(f"base image {path} is not a disk image (raw, qcow2 or OVA)")
    if declared not in ("auto", found):
        raise InputError(f"base image {path} is {found}, not {declared}")
    if found == "qcow2":
        check_standalone(path)
    return found


def check_standalone(path: Path) -> None:
    """A qcow2 base must not have a backing file: the cache key hashes this file only."""
    info = image_info(path)
    if info is None:
        raise InputError(f"base image {path} is not a qcow2 image qemu-img can read")
    if info.backing_file is not None:
        raise InputError(f"base image {path} has a backing file",
                         hint="flatten it first: qemu-img convert -O qcow2 IN OUT")


def _sniff(head: bytes, size: int) -> BaseKind | None:
    if head[257:262] == b"ustar" or head[:2] == GZIP_MAGIC:  # a plain or a gzip OVA
        return "ova"
    if head[:4] == QCOW2_MAGIC:
        return "qcow2"
    # qemu-img calls any file raw; a raw disk starts with a partition table or a filesystem.
    if size < MIN_RAW_SIZE or size % 512:
        return None
    signatures = (head[510:512] == b"\x55\xaa", head[0x438:0x43A] == b"\x53\xef",
                  head[:4] == b"XFSB", head[0x10040:0x10048] == b"_BHRfS_M")
    return "raw" if any(signatures) else None


def read_cleartext(op: RootPasswordOp, env: Mapping[str, str]) -> str:
    """The cleartext from its file (trailing newline dropped) or environment variable."""
    if op.file is not None:
        text = op.file.read_text(encoding="utf-8").rstrip("\n")
        where = str(op.file)
    else:
        text = env.get(str(op.env), "")
        where = f"${op.env}"
    if not text:
        raise InputError(f"root password: {where} is empty or not set")
    problem = password_problem(text)  # before any work: the hash is made just before launch
    if problem:
        raise InputError(f"root password: {where} {problem}")
    return text


@dataclass
class CustomizeBackend:
    """Overlay on the base image -> one guestfs launch applying every operation -> a sparse,
    standalone copy of the overlay. The base image is only ever read."""

    meta: ApplianceMeta
    base: Path
    base_kind: BaseKind
    output_format: DiskFormat
    operations: tuple[Operation, ...]
    passwords: Mapping[int, str] = field(repr=False)
    name: str = "customize"

    def cache_key(self) -> str:
        return self._cache_key

    @functools.cached_property
    def _cache_key(self) -> str:
        return hash_inputs({
            "backend": self.name, "layout": LAYOUT_VERSION, "base": sha256_sparse(self.base),
            "base_kind": self.base_kind, "output_format": self.output_format,
            "operations": [self._op_inputs(i, op) for i, op in enumerate(self.operations)],
            "libguestfs": package_version("libguestfs0"),
            "qemu_img": qemu_img_version(),
        })

    def _op_inputs(self, index: int, op: Operation) -> dict[str, Any]:
        """The operation as the cache sees it: file contents instead of paths, a slow
        digest instead of a cleartext."""
        inputs = op.model_dump(mode="json", exclude={"source", "package", "file", "env"})
        inputs["files"] = [sha256_file(path) for path in host_files(op)]
        if index in self.passwords:
            inputs["password"] = hashlib.pbkdf2_hmac(
                "sha256", self.passwords[index].encode(), PASSWORD_KEY_SALT,
                PASSWORD_KEY_ROUNDS).hex()
        return inputs

    def build_disk(self, ctx: BuildContext) -> BuiltDisk:
        base, base_format = self.prepare_base(ctx)
        overlay = ctx.work_dir / "overlay.qcow2"
        create_image(overlay, backing=base, backing_format=base_format)
        self.apply_operations(overlay, ctx)
        disk = ctx.work_dir / f"disk.{self.output_format}"
        ctx.console.note(f"writing a sparse {self.output_format} image")
        convert_sparse(overlay, disk, self.output_format)
        overlay.unlink()
        if base != self.base:
            base.unlink()
        return BuiltDisk(disk, self.output_format, self.meta, self.cache_key())

    def prepare_base(self, ctx: BuildContext) -> tuple[Path, str]:
        """The disk to lay the overlay on, and its format (an OVA's disk is extracted)."""
        if self.base_kind != "ova":
            return self.base, self.base_kind
        ctx.console.note(f"verifying and extracting the disk of {self.base.name}")
        # One pass over the OVA (a gzip one cannot be read twice cheaply) checks and unpacks.
        base = ctx.work_dir / "base.qcow2"
        return base, unpack_ova(self.base, base).disk_format

    def apply_operations(self, overlay: Path, ctx: BuildContext) -> None:
        # Salted from the stage's cache key (every input of this disk): the same inputs give
        # the same image, and the key's slow password digest leaves no cheaper guess check.
        ops = [crypt_password(self.passwords[i], identity=self.cache_key(),
                              field=f"operations.{i}: root_password")
               if i in self.passwords else op for i, op in enumerate(self.operations)]
        ctx.console.step(f"customizing {self.base.name}: {counted(len(ops), 'operation')}, "
                         "one launch")
        with open_guest(overlay, disk_format="qcow2", env=ctx.env,
                        notify=ctx.console.note) as guest:
            for number, op in enumerate(ops, start=1):
                ctx.console.note(f"[{number}/{len(ops)}] {describe(op)}")
                apply_operation(guest, op)


def describe(op: Operation) -> str:
    """One line for the console; never a password or its hash."""
    match op:
        case UploadOp() | WriteOp():
            return f"{op.op} {op.path}"
        case InstallOp():
            return f"install {op.package.name}"
        case RunOp():
            return "run " + " ".join(op.argv)
        case TimezoneOp():
            return f"timezone {op.zone}"
        case SshKeysOp():
            return f"ssh keys for root ({len(op.keys)})"
    return op.op.replace("_", " ")


def convert_sparse(overlay: Path, dest: Path, fmt: DiskFormat) -> None:
    """A standalone copy without the backing file; zeroed and discarded clusters stay holes."""
    convert_image(overlay, "qcow2", dest, fmt)
