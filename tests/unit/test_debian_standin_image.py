"""What the debian-test image is made of (packages, files), what its stage keys follow, and the
tree normalisation that makes two installations the same bytes."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

import pytest
import yaml

from builder.console import Console
from builder.disk import bootdisk, debian_standin, normalize
from builder.disk.backend import BuildContext
from builder.disk.debian_standin import IMAGE_EPOCH, DebianTestBackend, appliance_files
from builder.disk.registry import create_backend, load_recipe

OLD, NEW = 1_000_000_000, 1_900_000_000


def backend(env: dict[str, str] | None = None) -> DebianTestBackend:
    made = create_backend(load_recipe("debian-test"), env)
    assert isinstance(made, DebianTestBackend)
    return made


def files() -> dict[str, bytes]:
    return {rel: data for rel, data, _ in appliance_files(backend().meta)}


def test_networkmanager_replaces_ifupdown() -> None:
    packages = backend().options.packages()
    assert {"network-manager", "dbus", "libpam-systemd"} <= set(packages)
    assert not {"ifupdown", "isc-dhcp-client", "resolvconf"} & set(packages)
    assert "etc/network/interfaces" not in files()


def test_cloud_init_networking_is_disabled_as_on_ovirts_appliance() -> None:
    config = yaml.safe_load(files()["etc/cloud/cloud.cfg.d/42_ovirt_appliance.cfg"])
    assert config == {"network": {"config": "disabled"}}


def test_networkmanager_reads_keyfiles_only() -> None:
    parser = configparser.ConfigParser()
    parser.read_string(files()["etc/NetworkManager/conf.d/10-he-appliance.conf"].decode())
    assert parser.get("main", "plugins") == "keyfile"


def test_the_root_stage_does_not_follow_source_date_epoch() -> None:
    assert backend().rootfs_key() == backend({"SOURCE_DATE_EPOCH": "0"}).rootfs_key()


@pytest.mark.parametrize(("epoch", "same_disk"), [
    (str(IMAGE_EPOCH), True), (str(NEW), True), (str(IMAGE_EPOCH - 1), False), ("0", False),
])
def test_the_disk_follows_source_date_epoch_only_when_it_is_older(epoch: str,
                                                                   same_disk: bool) -> None:
    dated = backend({"SOURCE_DATE_EPOCH": epoch})
    assert dated.disk_epoch == min(int(epoch), IMAGE_EPOCH)
    assert (dated.cache_key() == backend().cache_key()) is same_disk


def test_the_keys_follow_the_package_list(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(load_recipe("debian-test").path.read_text().replace(
        "extra_packages: []", "extra_packages: [less]"))
    other = create_backend(load_recipe(str(recipe)))
    assert isinstance(other, DebianTestBackend)
    assert other.rootfs_key() != backend().rootfs_key()
    assert other.cache_key() != backend().cache_key()


def make_tree(root: Path) -> None:
    for rel in normalize.BUILD_LEFTOVERS:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("left over\n")
    (root / "etc/shadow").write_text("root:*:19999:0:99999:7:::\nnobody:!::0:99999:7:::\n")
    (root / "etc/shadow").chmod(0o640)
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/packaged").write_text("from a package\n")
    os.utime(root / "usr/lib/packaged", (OLD, OLD))
    (root / "usr/lib/generated").write_text("written by a maintainer script\n")
    (root / "usr/lib/link").symlink_to("packaged")


def test_normalize_removes_leftovers_dates_accounts_and_clamps(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_tree(root)
    normalize.normalize_root(root, IMAGE_EPOCH)
    assert not any((root / rel).exists() for rel in normalize.BUILD_LEFTOVERS)
    day = IMAGE_EPOCH // 86400
    assert (root / "etc/shadow").read_text() == (
        f"root:*:{day}:0:99999:7:::\nnobody:!::0:99999:7:::\n")
    assert (root / "etc/shadow").stat().st_mode & 0o777 == 0o640
    assert (root / "usr/lib/packaged").stat().st_mtime == OLD  # older: kept
    assert (root / "usr/lib/generated").stat().st_mtime == IMAGE_EPOCH
    assert os.lstat(root / "usr/lib/link").st_mtime == IMAGE_EPOCH  # the link, not its target
    newest = max(p.lstat().st_mtime for p in [root, *root.rglob("*")])
    assert newest <= IMAGE_EPOCH


def test_deb_cache_defaults_under_the_cache_root(tmp_path: Path) -> None:
    ctx = BuildContext(tmp_path / "work", tmp_path / "cache", Console(), {})
    assert debian_standin.deb_cache_dir(ctx) == tmp_path / "cache" / "debs"
    shared = BuildContext(tmp_path / "work", tmp_path / "cache", Console(),
                          {debian_standin.ENV_DEB_CACHE: str(tmp_path / "shared")})
    assert debian_standin.deb_cache_dir(shared) == tmp_path / "shared"
    assert (tmp_path / "shared").is_dir()


def test_pruning_keeps_directories_as_they_were_whatever_the_umask(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for rel in ("usr/share/doc/pkg/README", "var/lib/apt/lists/partial/x",
                "var/lib/apt/lists/deb.debian.org_Packages", "var/cache/apt/archives/partial/y",
                "var/cache/apt/pkgcache.bin"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    (root / "usr/share/doc").chmod(0o755)
    previous = os.umask(0o077)
    try:
        debian_standin.prune_root(root)
    finally:
        os.umask(previous)
    assert list((root / "usr/share/doc").iterdir()) == []
    assert (root / "usr/share/doc").stat().st_mode & 0o777 == 0o755
    assert [p.name for p in (root / "var/lib/apt/lists").iterdir()] == ["partial"]
    assert list((root / "var/lib/apt/lists/partial").iterdir()) == []
    assert sorted(str(p.relative_to(root)) for p in (root / "var/cache/apt").rglob("*")) == [
        "var/cache/apt/archives", "var/cache/apt/archives/partial"]


def test_files_the_build_adds_have_fixed_modes_whatever_the_umask(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "boot").mkdir(parents=True)
    for name in ("vmlinuz-6.1.0-9-cloud-amd64", "initrd.img-6.1.0-9-cloud-amd64"):
        (root / "boot" / name).write_text("k")
    previous = os.umask(0o077)
    try:
        bootdisk.write_grub_config(root)
        debian_standin.replace_file(root / "etc/new/dir/file", b"x", 0o600)
    finally:
        os.umask(previous)
    assert (root / "boot/grub").stat().st_mode & 0o777 == 0o755
    assert (root / "boot/grub/grub.cfg").stat().st_mode & 0o777 == 0o644
    assert "linux /boot/vmlinuz-6.1.0-9-cloud-amd64 root=LABEL=he-root" in (
        root / "boot/grub/grub.cfg").read_text()
    for rel in ("etc/new", "etc/new/dir"):
        assert (root / rel).stat().st_mode & 0o777 == 0o755
    assert (root / "etc/new/dir/file").stat().st_mode & 0o777 == 0o600
