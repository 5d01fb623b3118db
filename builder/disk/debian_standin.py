"""The debian-test backend: a small Debian appliance (systemd, real cloud-init, NetworkManager,
stand-in engine-setup) built with debootstrap, bootable from its own disk under BIOS and UEFI,
the same bytes for the same inputs and SOURCE_DATE_EPOCH."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from builder.console import Console
from builder.disk import bootdisk, bootloader, normalize
from builder.disk.backend import BuildContext
from builder.disk.recipe import validate_options
from builder.inventory.counts import Count
from builder.model import ApplianceMeta, BuiltDisk
from builder.pipeline.store import StageCache, hash_inputs
from builder.repro import source_date_epoch
from builder.resources import appliance_file
from builder.run import package_version, require_tool, run, with_descendants

if TYPE_CHECKING:
    from builder.disk.recipe import Recipe

# Measured minimal set that boots with working cloud-init (ENVIRONMENT.md); the kernel is in it.
# systemd-timesyncd: cloud-init's ntp module uses it instead of installing chrony (no network).
# network-manager manages the network, as on oVirt's appliance (its internal DHCP client:
# no isc-dhcp-client); debootstrap does not resolve virtual packages, so the providers of
# its dbus-system-bus (dbus) and of polkitd's logind (libpam-systemd) are named here.
BASE_PACKAGES = (
    "systemd-sysv", "python3-cffi-backend", "cloud-init", "linux-image-cloud-amd64", "udev",
    "iproute2", "network-manager", "dbus", "libpam-systemd", "systemd-timesyncd",
)
# Pruned from the cached root: docs, manuals, apt lists and caches (the image stays small).
PRUNED = (
    "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
    "var/lib/apt/lists", "var/cache/apt",
)
# Timers that would only slow a TCG boot and reach for a network the appliance does not have.
MASKED_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer")
# Bumped when a stage below changes in a way its input hash cannot see.
ROOTFS_VERSION = "4"
# The image is dated as of this fixed time (2023-06-10, Debian 12's release; any fixed value
# would do), never by the clock: the disk is the same bytes for the same inputs with or without
# SOURCE_DATE_EPOCH, and stays cached across release builds. The installation sees it as
# SOURCE_DATE_EPOCH and every entry newer than it is dated at it. A SOURCE_DATE_EPOCH older
# than it is honoured: the disk is then dated at that.
IMAGE_EPOCH = 1686355200
LAYOUT_VERSION = "3"
# Where downloaded .deb files are kept between builds (default: <cache root>/debs); CI runners
# with separate stage caches can share one. They are inputs, not a stage: debootstrap checks
# each against the archive's checksums before using it.
ENV_DEB_CACHE = "HE_BUILDER_DEB_CACHE"
# Tools whose output lands in the disk: a new version is a new disk.
DISK_TOOLS = ("e2fsprogs", "fdisk", "grub-common", "grub-pc-bin", "grub-efi-amd64-bin",
              "dosfstools", "mtools")


class DebianTestOptions(BaseModel):
    """The `options:` of a debian-test recipe."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: str = Field(default="bookworm", pattern=r"^[a-z]+$")
    mirror: str = Field(default="http://deb.debian.org/debian", pattern=r"^(https?|file)://\S+$")
    disk_size_gib: Count = Field(default=3, ge=1, le=64)
    extra_packages: tuple[str, ...] = Field(default=())

    @field_validator("extra_packages")
    @classmethod
    def _package_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [name for name in value if not _is_package_name(name)]
        if bad:
            raise ValueError(f"not Debian package names: {', '.join(bad)}")
        return value

    def packages(self) -> tuple[str, ...]:
        return BASE_PACKAGES + tuple(self.extra_packages)


def from_recipe(recipe: Recipe, env: Mapping[str, str]) -> DebianTestBackend:
    """The registry entry: validate the recipe's options and make the backend (`env` is not
    needed: the recipe holds no secret reference)."""
    options = validate_options(DebianTestOptions, recipe)
    return DebianTestBackend(meta=recipe.meta, options=options,
                             source_date_epoch=source_date_epoch(env))


def _is_package_name(name: str) -> bool:
    return bool(name) and name[0].isalnum() and all(c.isalnum() or c in "+-." for c in name)


def data_file(name: str) -> bytes:
    """A file shipped in builder/data/appliance/ (the stand-in engine-setup, the answers)."""
    return appliance_file(name).read_bytes()


@dataclass
class DebianTestBackend:
    """debootstrap (cached by its inputs) -> configured root -> raw disk that boots under
    BIOS (GRUB in the MBR gap) and UEFI (GRUB in the EFI system partition).

    `source_date_epoch` is SOURCE_DATE_EPOCH (None: unset); it matters only when it is older
    than IMAGE_EPOCH."""

    meta: ApplianceMeta
    options: DebianTestOptions
    source_date_epoch: int | None = None
    name: str = "debian-test"

    @property
    def disk_epoch(self) -> int:
        """The newest date the disk holds."""
        if self.source_date_epoch is None:
            return IMAGE_EPOCH
        return min(self.source_date_epoch, IMAGE_EPOCH)

    def rootfs_key(self) -> str:
        return hash_inputs({
            "version": ROOTFS_VERSION, "suite": self.options.suite,
            "mirror": self.options.mirror, "packages": self.options.packages(),
            "pruned": PRUNED, "leftovers": normalize.BUILD_LEFTOVERS, "epoch": IMAGE_EPOCH,
            "debootstrap": package_version("debootstrap"),
        })

    def cache_key(self) -> str:
        return hash_inputs({
            "backend": self.name, "layout": LAYOUT_VERSION, "rootfs": self.rootfs_key(),
            "disk_size_gib": self.options.disk_size_gib, "meta": asdict(self.meta),
            "files": {rel: [hashlib.sha256(data).hexdigest(), mode]
                      for rel, data, mode in appliance_files(self.meta)},
            "masked": MASKED_UNITS, "cmdline": bootdisk.KERNEL_CMDLINE,
            "esp_bytes": bootdisk.ESP_BYTES, "esp_label": bootloader.ESP_LABEL,
            "grub": [bootloader.early_config(bootdisk.FS_LABEL), bootloader.BIOS_MODULES,
                     bootloader.EFI_MODULES],
            "epoch": self.disk_epoch,
            "tools": {tool: package_version(tool) for tool in DISK_TOOLS},
        })

    def build_disk(self, ctx: BuildContext) -> BuiltDisk:
        epoch = self.disk_epoch
        root = self.ensure_rootfs(ctx)
        work_root = ctx.work_dir / "root"
        ctx.console.step("configuring the appliance root")
        # Hard links into the cache, unless the clamp below would re-date the cached files
        # themselves (an epoch older than the root's): then a copy.
        run(["cp", "-al" if epoch >= IMAGE_EPOCH else "-a", root, work_root])
        configure_root(work_root, self.meta)
        normalize.clamp_times(work_root, epoch)
        disk = ctx.work_dir / "disk.raw"
        ctx.console.step(f"assembling a {self.options.disk_size_gib} GiB disk (BIOS and UEFI)")
        bootdisk.assemble_disk(work_root, disk, self.options.disk_size_gib << 30, ctx.work_dir,
                               epoch=epoch)
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
        debs = deb_cache_dir(ctx)
        with cache.store("rootfs", key) as entry:
            run_debootstrap(self.options, entry / "root", debs, IMAGE_EPOCH, ctx.console)
            prune_root(entry / "root")
            normalize.normalize_root(entry / "root", IMAGE_EPOCH)
            (entry / "inputs.json").write_text(json.dumps(self.options.model_dump(), indent=2))
        return cache.entry("rootfs", key) / "root"


def deb_cache_dir(ctx: BuildContext) -> Path:
    override = ctx.env.get(ENV_DEB_CACHE)
    path = Path(override) if override else ctx.cache_dir / "debs"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """One debootstrap at a time writes into a shared download directory."""
    with (directory / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# debootstrap mounts /proc and /sys inside the root for its second stage and unmounts them
# when it exits; a killed debootstrap cannot. In a mount namespace of its own (these unshare(1)
# options), they are never seen outside it and vanish with it.
PRIVATE_MOUNTS = ("--mount", "--propagation", "private")


def in_own_namespaces(args: Sequence[str]) -> tuple[str, ...]:
    """`args` as debootstrap runs: its mounts private, and whatever it starts (dpkg, the
    maintainer scripts) dying with it."""
    return with_descendants(args, unshare=PRIVATE_MOUNTS)


def run_debootstrap(options: DebianTestOptions, root: Path, debs: Path, epoch: int,
                    console: Console) -> None:
    """debootstrap with SOURCE_DATE_EPOCH in the maintainer scripts' environment: the
    initramfs (mkinitramfs clamps its dates) and Python's byte code (py_compile then checks
    the source's hash, not its date, so re-dating the sources keeps it valid) depend on it,
    not on the clock."""
    require_tool("debootstrap", package="debootstrap")
    require_tool("unshare", package="util-linux")
    console.step(f"debootstrap {options.suite} ({len(options.packages())} packages, ~90 s)")
    with locked(debs):
        run(in_own_namespaces([
            "debootstrap", "--variant=minbase",
            f"--include={','.join(options.packages())}", f"--cache-dir={debs}", options.suite,
            str(root), options.mirror,
        ]), env={"SOURCE_DATE_EPOCH": str(epoch), "LC_ALL": "C.UTF-8"})


def prune_root(root: Path) -> None:
    """Empty the PRUNED directories; each keeps its own mode, owner and date (a directory
    made again would take the builder's umask)."""
    for rel in PRUNED:
        target = root / rel
        if target.is_dir() and not target.is_symlink():
            empty_directory(target)
        elif target.exists():
            target.unlink()


def empty_directory(directory: Path) -> None:
    """Remove everything inside `directory` but apt's (empty) `partial` download directories
    and the directories leading to them."""
    for child in list(directory.iterdir()):
        if child.is_dir() and not child.is_symlink():
            empty_directory(child)
            if child.name != "partial" and not any(child.iterdir()):
                child.rmdir()
        else:
            child.unlink()


def configure_root(root: Path, meta: ApplianceMeta) -> None:
    """Files that make the root an appliance. The root is a hard-linked copy of the cache:
    every file is replaced (unlink, then write), never modified in place."""
    for rel, data, mode in appliance_files(meta):
        replace_file(root / rel, data, mode)
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
    # No sshd in this test image: no host key to generate. An empty `ssh_keys` says so in a
    # form cloud-init's schema accepts (it refuses an empty `ssh_genkeytypes`, and then warns
    # "Invalid cloud-config provided" at every boot).
    cloud = {"datasource_list": ["NoCloud", "None"], "locale": "C.UTF-8",
             "ssh_keys": {}, "ssh_deletekeys": False}
    return [
        # As oVirt's appliance (its 42_ovirt_appliance.cfg): cloud-init never configures the
        # network; NetworkManager does (DHCP on every NIC without a profile, or the seed's
        # keyfiles).
        ("etc/cloud/cloud.cfg.d/42_ovirt_appliance.cfg",
         yaml.safe_dump({"network": {"config": "disabled"}}).encode(), 0o644),
        # Keyfiles only, as on EL: Debian's default also loads the ifupdown plugin.
        ("etc/NetworkManager/conf.d/10-he-appliance.conf", b"[main]\nplugins=keyfile\n",
         0o644),
        ("etc/fstab", f"LABEL={bootdisk.FS_LABEL} / ext4 defaults,errors=remount-ro 0 1\n"
         .encode(), 0o644),
        ("etc/hostname", b"localhost\n", 0o644),
        ("etc/hosts", b"127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n", 0o644),
        ("etc/machine-id", b"", 0o444),
        ("etc/cloud/cloud.cfg.d/90_he_datasource.cfg",
         yaml.safe_dump(cloud, sort_keys=True).encode(), 0o644),
        ("etc/he-appliance-release", f"{meta.name} {meta.version}-{meta.release}\n".encode(),
         0o644),
        ("usr/bin/engine-setup", data_file("engine-setup"), 0o755),
        ("root/ovirt-engine-answers", data_file("ovirt-engine-answers"), 0o600),
    ]


def replace_file(path: Path, data: bytes, mode: int) -> None:
    normalize.make_directories(path.parent)
    path.unlink(missing_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
