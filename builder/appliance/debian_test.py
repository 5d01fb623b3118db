"""The debian-test backend: a small Debian appliance (systemd, real cloud-init, stand-in
engine-setup) built with debootstrap and made bootable from its own disk under BIOS."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from pydantic import BaseModel, ConfigDict, Field

from builder.appliance import bootdisk
from builder.appliance.backend import ApplianceMeta, BuildContext, BuiltDisk
from builder.appliance.options import validate_options
from builder.cache import StageCache, hash_inputs, package_version
from builder.console import Console
from builder.errors import InputError
from builder.run import require_tool, run

if TYPE_CHECKING:
    from builder.appliance.options import Recipe

# Measured minimal set that boots with working cloud-init (ENVIRONMENT.md); the kernel is in it.
# systemd-timesyncd: cloud-init's ntp module uses it instead of installing chrony (no network);
# resolvconf: ifupdown applies the seed's dns-nameservers only through it.
BASE_PACKAGES = (
    "systemd-sysv", "python3-cffi-backend", "cloud-init", "linux-image-cloud-amd64", "udev",
    "iproute2", "ifupdown", "isc-dhcp-client", "systemd-timesyncd", "resolvconf",
)
# Pruned from the cached root: docs, manuals, apt lists and caches (the image stays small).
PRUNED = (
    "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
    "var/lib/apt/lists", "var/cache/apt", "var/cache/debconf/templates.dat-old",
)
# Timers that would only slow a TCG boot and reach for a network the appliance does not have.
MASKED_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer")
# Bumped when the assembly below changes in a way the option hash cannot see.
LAYOUT_VERSION = "2"


class DebianTestOptions(BaseModel):
    """The `options:` of a debian-test recipe."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: str = Field(default="bookworm", pattern=r"^[a-z]+$")
    mirror: str = Field(default="http://deb.debian.org/debian", pattern=r"^(https?|file)://\S+$")
    disk_size_gib: int = Field(default=3, ge=1, le=64)
    extra_packages: tuple[str, ...] = Field(default=())

    def packages(self) -> tuple[str, ...]:
        return BASE_PACKAGES + tuple(self.extra_packages)


def from_recipe(recipe: Recipe, env: Mapping[str, str]) -> DebianTestBackend:
    """The registry entry: validate the recipe's options and make the backend (`env` is not
    needed: the recipe holds no secret reference)."""
    options = validate_options(DebianTestOptions, recipe)
    bad = [p for p in options.extra_packages if not _is_package_name(p)]
    if bad:
        raise InputError(f"recipe {recipe.path}: not Debian package names: {', '.join(bad)}")
    return DebianTestBackend(meta=recipe.meta, options=options)


def _is_package_name(name: str) -> bool:
    return bool(name) and name[0].isalnum() and all(c.isalnum() or c in "+-." for c in name)


def data_file(name: str) -> bytes:
    """A file shipped in builder/data/appliance/ (the stand-in engine-setup, the answers)."""
    return resources.files("builder").joinpath("data", "appliance", name).read_bytes()


@dataclass
class DebianTestBackend:
    """debootstrap (cached by its inputs) -> configured root -> raw disk with GRUB in the MBR."""

    meta: ApplianceMeta
    options: DebianTestOptions
    name: str = "debian-test"

    def rootfs_key(self) -> str:
        return hash_inputs({
            "suite": self.options.suite, "mirror": self.options.mirror,
            "packages": self.options.packages(), "pruned": PRUNED,
            "debootstrap": package_version("debootstrap"),
        })

    def cache_key(self) -> str:
        return hash_inputs({
            "backend": self.name, "layout": LAYOUT_VERSION, "rootfs": self.rootfs_key(),
            "disk_size_gib": self.options.disk_size_gib, "meta": self.meta.__dict__,
            "files": {rel: [hashlib.sha256(data).hexdigest(), mode]
                      for rel, data, mode in appliance_files(self.meta)},
            "grub": package_version("grub-pc-bin"), "e2fsprogs": package_version("e2fsprogs"),
        })

    def build_disk(self, ctx: BuildContext) -> BuiltDisk:
        root = self.ensure_rootfs(ctx)
        work_root = ctx.work_dir / "root"
        ctx.console.step("configuring the appliance root")
        run(["cp", "-al", root, work_root])
        configure_root(work_root, self.meta)
        disk = ctx.work_dir / "disk.raw"
        ctx.console.step(f"assembling a {self.options.disk_size_gib} GiB bootable disk")
        bootdisk.assemble_disk(work_root, disk, self.options.disk_size_gib << 30, ctx.work_dir)
        shutil.rmtree(work_root)
        return BuiltDisk(disk, "raw", self.meta, self.cache_key())

    def ensure_rootfs(self, ctx: BuildContext) -> Path:
        """The debootstrapped root for these options, from the cache or built now."""
        cache = StageCache(ctx.cache_dir)
        key = self.rootfs_key()
        hit = cache.lookup("rootfs", key)
        if hit is not None:
            ctx.console.note(f"rootfs: cache hit ({key})")
            return hit / "root"
        with cache.store("rootfs", key) as entry:
            run_debootstrap(self.options, entry / "root", ctx.console)
            prune_root(entry / "root")
            (entry / "inputs.json").write_text(json.dumps(self.options.model_dump(), indent=2))
        return cache.entry("rootfs", key) / "root"


def run_debootstrap(options: DebianTestOptions, root: Path, console: Console) -> None:
    require_tool("debootstrap", package="debootstrap")
    console.step(f"debootstrap {options.suite} ({len(options.packages())} packages, ~90 s)")
    run([
        "debootstrap", "--variant=minbase", f"--include={','.join(options.packages())}",
        options.suite, root, options.mirror,
    ])


def prune_root(root: Path) -> None:
    for rel in PRUNED:
        target = root / rel
        if target.is_dir():
            shutil.rmtree(target)
            target.mkdir()
        elif target.exists():
            target.unlink()
    (root / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)


def configure_root(root: Path, meta: ApplianceMeta) -> None:
    """Files that make the root an appliance. The root is a hard-linked copy of the cache:
    every file is replaced (unlink, then write), never modified in place."""
    for rel, data, mode in appliance_files(meta):
        replace_file(root / rel, data, mode)
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    resolv = root / "etc/resolv.conf"
    if not resolv.is_symlink():
        # debootstrap copied the build host's; resolvconf's own link is kept.
        resolv.unlink(missing_ok=True)
    for unit in MASKED_UNITS:
        (root / "etc/systemd/system/timers.target.wants" / unit).unlink(missing_ok=True)
        mask = root / "etc/systemd/system" / unit
        mask.unlink(missing_ok=True)
        mask.symlink_to("/dev/null")
    bootdisk.write_grub_config(root)


def appliance_files(meta: ApplianceMeta) -> list[tuple[str, bytes, int]]:
    """(path in the root, content, mode) of every file the appliance adds or replaces."""
    # C.UTF-8 ships with libc: cloud-init's locale module has nothing to generate (minbase has
    # no `locales` package, and the default en_US.UTF-8 makes that module fail).
    # No sshd in this test image: nothing to generate host keys for.
    cloud = {"datasource_list": ["NoCloud", "None"], "locale": "C.UTF-8",
             "ssh_genkeytypes": [], "ssh_deletekeys": False}
    return [
        ("etc/fstab", f"LABEL={bootdisk.FS_LABEL} / ext4 defaults,errors=remount-ro 0 1\n"
         .encode(), 0o644),
        ("etc/hostname", b"localhost\n", 0o644),
        ("etc/hosts", b"127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n", 0o644),
        ("etc/machine-id", b"", 0o444),
        ("etc/cloud/cloud.cfg.d/90_he_datasource.cfg",
         yaml.safe_dump(cloud, sort_keys=True).encode(), 0o644),
        ("etc/network/interfaces",
         b"auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/*\n", 0o644),
        ("etc/he-appliance-release", f"{meta.name} {meta.version}-{meta.release}\n".encode(),
         0o644),
        ("usr/bin/engine-setup", data_file("engine-setup"), 0o755),
        ("root/ovirt-engine-answers", data_file("ovirt-engine-answers"), 0o600),
    ]


def replace_file(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
