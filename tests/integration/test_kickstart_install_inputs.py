"""The kickstart backend's bad input (one line, exit 2, nothing published) and the parts of the
installer orchestration that need no VM: the OEMDRV image, the installer domain, the serial log
follower. The VM runs themselves are in tests/vm/test_kickstart_install.py."""

from __future__ import annotations

import io
from pathlib import Path

import pycdlib
import pytest
from lxml import etree
from pykickstart.parser import KickstartParser
from pykickstart.version import makeVersion

from builder.cli.he_build import main
from builder.console import Console
from builder.disk.installer import (
    InstallerFiles,
    InstallerSpec,
    SerialFollower,
    installer_domain,
    write_oemdrv_iso,
)
from builder.disk.kickstart_install import KickstartBackend
from builder.disk.registry import create_backend, load_recipe
from builder.errors import ExitCode
from builder.virt.domain import render_domain_xml
from tests.fixtures.installer import (
    UNREACHABLE_REPO,
    serve_directory,
    standin_install_tree,
    write_recipe,
)

pytestmark = pytest.mark.integration
__all__ = ["standin_install_tree"]
INJECTION = '"\n%post\ntouch /pwned\n%end\n'


def build_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                capsys: pytest.CaptureFixture[str], recipe: Path) -> list[str]:
    """Run `he-build appliance` expecting exit 2; its error lines; nothing may be published."""
    monkeypatch.setenv("HE_BUILDER_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    code = main(["appliance", "--recipe", str(recipe), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == ExitCode.BAD_INPUT, err
    assert "Traceback" not in err
    assert not out.exists() or list(out.iterdir()) == []
    assert not (tmp_path / "cache" / "disk").exists() or not any(
        p for p in (tmp_path / "cache" / "disk").iterdir() if not p.name.startswith("."))
    return [line for line in err.splitlines() if line.startswith("he-build:")]


def test_a_directory_without_pxeboot_files_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "tree"
    (empty / "images").mkdir(parents=True)
    recipe = write_recipe(tmp_path / "ks.yaml", install_tree=str(empty),
                          repo_url=UNREACHABLE_REPO)
    lines = build_fails(tmp_path, monkeypatch, capsys, recipe)
    assert lines == refused_at(recipe, "install_tree",
                               f"{empty} has no images/pxeboot/vmlinuz, images/pxeboot/initrd.img")


def test_a_url_tree_without_the_kernel_is_a_404(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "www").mkdir()
    with serve_directory(tmp_path / "www") as url:
        recipe = write_recipe(tmp_path / "ks.yaml", install_tree=url + "centos/")
        lines = build_fails(tmp_path, monkeypatch, capsys, recipe)
    assert len(lines) == 1
    assert lines[0].startswith(
        f"he-build: error: stage disk failed: install tree: {url}centos/images/pxeboot/")
    assert "HTTP 404" in lines[0]
    assert not (tmp_path / "cache" / "install-tree").exists() or not any(
        p for p in (tmp_path / "cache" / "install-tree").iterdir() if not p.name.startswith("."))


def test_a_directory_tree_needs_a_repo_url(
        standin_install_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    recipe = write_recipe(tmp_path / "ks.yaml", install_tree=str(standin_install_tree))
    lines = build_fails(tmp_path, monkeypatch, capsys, recipe)
    assert lines == refused_at(recipe, "install_tree", (
        "a directory, so repo_url (--repo-url) is needed too: the URL the installer fetches "
        "stage2 and packages from"))


@pytest.mark.parametrize(("field", "value", "where", "message", "markers"), [
    ("timezone", "UTC" + INJECTION, "timezone", f"not a zone name: {'UTC' + INJECTION!r}",
     ["  timezone:"]),
    ("extra_packages", ["vim" + INJECTION], "extra_packages[0]",
     f"not a package name: {'vim' + INJECTION!r}", ["  extra_packages:", "  - "]),
    ("repos", [{"name": "ovirt", "url": "http://mirror.example/" + INJECTION}],
     "repos[0].url", f"not a URL: {'http://mirror.example/' + INJECTION!r}",
     ["  repos:", "    url:"]),
    ("root_password_hash", "$6$salt$" + "a" * 86 + INJECTION, "root_password_hash",
     "not a crypt(3) hash ($6$..., $y$...)", ["  root_password_hash:"]),
    ("release_package", "centos-release-ovirt45" + INJECTION, "release_package",
     f"not a package name: {'centos-release-ovirt45' + INJECTION!r}", ["  release_package:"]),
    ("disk_size_gib", 10, "disk_size_gib", "10 is below 51 (what the partitioning needs)",
     ["  disk_size_gib:"]),
    ("disk_size_gib", 62, "disk_size_gib",
     "62 is above 61: hosted-engine copies the appliance onto a 61 GiB engine disk",
     ["  disk_size_gib:"]),
])
def test_a_value_the_kickstart_refuses_is_named_at_its_line(
        field: str, value: object, where: str, message: str, markers: list[str],
        standin_install_tree: Path,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Each of them on one line (a newline in the value is shown escaped), at the line of the
    recipe that holds the value."""
    recipe = write_recipe(tmp_path / "ks.yaml", install_tree=str(standin_install_tree),
                          repo_url=UNREACHABLE_REPO, **{field: value})
    lines = build_fails(tmp_path, monkeypatch, capsys, recipe)
    assert lines == refused_at(recipe, where, message, *markers)


def test_every_refused_kickstart_value_is_reported_in_one_run(
        standin_install_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    recipe = write_recipe(tmp_path / "ks.yaml", install_tree=str(standin_install_tree),
                          repo_url=UNREACHABLE_REPO, timezone="Etc/U TC", disk_size_gib=62,
                          release_package="a b")
    lines = build_fails(tmp_path, monkeypatch, capsys, recipe)
    assert lines[0] == f"he-build: error: recipe {recipe} has 3 problems"
    assert [line.split(": ")[2] for line in lines[1:]] == [
        "options.timezone", "options.disk_size_gib", "options.release_package"]


def refused_at(recipe: Path, where: str, message: str, *markers: str) -> list[str]:
    """The two lines of a recipe with one problem: the count, then `FILE:LINE: options.WHERE:
    MESSAGE`. LINE is found by walking down from `options:` to the first line starting with
    each marker in turn (default: `  WHERE:`)."""
    text = recipe.read_text().splitlines()
    line = text.index("options:")
    for marker in markers or (f"  {where}:",):
        line = next(number for number in range(line + 1, len(text))
                    if text[number].startswith(marker))
    line += 1
    return [f"he-build: error: recipe {recipe} has 1 problem",
            f"he-build: {recipe}:{line}: options.{where}: {message}"]


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("kickstart_version", "RHEL8", "must be 'RHEL9' or 'RHEL10', got 'RHEL8'"),
    ("authselect_profile", "sssd", "must be 'minimal' or 'local', got 'sssd'"),
])
def test_an_unknown_syntax_or_profile_is_named(
        field: str, value: str, expected: str, standin_install_tree: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = write_recipe(tmp_path / "ks.yaml", install_tree=str(standin_install_tree),
                          repo_url=UNREACHABLE_REPO, **{field: value})
    lines = build_fails(tmp_path, monkeypatch, capsys, recipe)
    line = next(number for number, text in enumerate(recipe.read_text().splitlines(), 1)
                if text.startswith(f"  {field}:"))
    assert lines == [f"he-build: error: recipe {recipe} has 1 problem",
                     f"he-build: {recipe}:{line}: options.{field}: {expected}"]


@pytest.mark.parametrize("tree", [
    "ftp://mirror.example/centos/", "http://mirror.example/centos 9/",
    'http://mirror.example/"centos"/',
])
def test_an_install_tree_url_unfit_for_the_kernel_command_line_is_refused(
        tree: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    recipe = write_recipe(tmp_path / "ks.yaml", install_tree=tree)
    lines = build_fails(tmp_path, monkeypatch, capsys, recipe)
    assert lines == refused_at(recipe, "install_tree",
                               f"not an http(s) URL: {tree!r}")


def test_the_oemdrv_image_holds_the_kickstart(tmp_path: Path) -> None:
    kickstart = "text\npoweroff\ntimezone \"Etc/UTC\" --utc\n"
    write_oemdrv_iso(tmp_path / "oemdrv.iso", kickstart)
    assert (tmp_path / "oemdrv.iso").stat().st_mode & 0o777 == 0o600
    iso = pycdlib.PyCdlib()
    iso.open(str(tmp_path / "oemdrv.iso"))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "OEMDRV"
        data = io.BytesIO()
        iso.get_file_from_iso_fp(data, rr_path="/ks.cfg")
    finally:
        iso.close()
    assert data.getvalue().decode() == kickstart


def spec(tmp_path: Path, network: str | None) -> InstallerSpec:
    return InstallerSpec(
        name="he-installer-test", kernel=tmp_path / "k", initrd=tmp_path / "i", kickstart="",
        cmdline=(f"inst.stage2={UNREACHABLE_REPO}",), disk_size_gib=50, disk_format="raw",
        memory_mib=3072, vcpus=2, libvirt_uri="test:///default", virt_type="qemu",
        network=network, timeout_s=60, vm_dir=tmp_path, log=tmp_path / "serial.log")


def test_the_installer_domain_boots_the_tree_with_no_nic(tmp_path: Path) -> None:
    files = InstallerFiles(tmp_path / "vmlinuz", tmp_path / "initrd.img",
                           tmp_path / "oemdrv.iso", tmp_path / "disk.raw")
    root = etree.fromstring(render_domain_xml(installer_domain(spec(tmp_path, None), files,
                                                                "qemu")))
    assert root.findtext("os/kernel") == str(files.kernel)
    assert root.findtext("os/initrd") == str(files.initrd)
    assert (root.findtext("os/cmdline") or "").split() == [
        "inst.ks=hd:LABEL=OEMDRV:/ks.cfg", "inst.text", "console=tty0",
        "console=ttyS0,115200n8", f"inst.stage2={UNREACHABLE_REPO}"]
    assert root.find("devices/interface") is None
    assert [root.findtext(t) for t in ("on_poweroff", "on_reboot", "on_crash")] == [
        "destroy"] * 3
    disks = {d.find("target").get("dev"): d for d in root.iterfind("devices/disk")}  # type: ignore[union-attr]
    assert disks["vda"].find("source").get("file") == str(files.disk)  # type: ignore[union-attr]
    assert disks["sda"].get("device") == "cdrom"
    assert root.find("devices/serial/source").get("path") == str(tmp_path / "serial.log")  # type: ignore[union-attr]
    networked = etree.fromstring(render_domain_xml(installer_domain(
        spec(tmp_path, "he-test-isolated"), files, "qemu")))
    assert networked.find("devices/interface/source").get("network") == "he-test-isolated"  # type: ignore[union-attr]


def test_the_serial_log_becomes_progress(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    err = io.StringIO()
    follower = SerialFollower(log, Console(err=err))
    follower.poll()  # no log yet: nothing to say
    log.write_bytes(b"[    5.51] Run /init as init process\r\nStarting installer, one moment...\r\n"
                    b"\x1b[1mInstalling glibc.x86_64 (1/2)\x1b[0m\nInstalling bash.x86_64 (2")
    follower.poll()
    with log.open("ab") as stream:
        stream.write(b"/2)\nRunning post-installation scripts\nInstallation complete")
    follower.poll()
    follower.finish()
    assert err.getvalue().splitlines() == [
        "installer: Starting installer, one moment...",
        "installing packages [##########..........]  50.0%",
        "installing packages [####################] 100.0%",
        "installer: Running post-installation scripts",
        "installer: Installation complete",
    ]


def test_the_bundled_centos_recipe_renders_for_its_mirror() -> None:
    backend = create_backend(load_recipe("kickstart-centos9"))
    assert isinstance(backend, KickstartBackend)
    tree = "http://mirror.stream.centos.org/9-stream/BaseOS/x86_64/os/"
    assert backend.cmdline() == (f"inst.stage2={tree}", f"inst.repo={tree}")
    handler = KickstartParser(makeVersion("RHEL9"))
    handler.readKickstartFromString(backend.kickstart)
    assert handler.handler.url.url == tree and handler.handler.reboot.action is not None
    # The release package comes from extras-common, the engine from the Virt SIG.
    repos = {repo.name: repo.baseurl for repo in handler.handler.repo.repoList}
    assert {"appstream", "extras-common", "ovirt-45"} <= set(repos)
    assert "centos-release-ovirt45" in handler.handler.packages.packageList
    assert handler.handler.authselect.authselect == "select minimal"
    assert backend.options.disk_size_gib == 51 and backend.options.kickstart_version == "RHEL9"
    assert backend.options.network == "default" and backend.options.timeout_s >= 3600


def test_an_el10_recipe_gets_the_el10_authselect_profile(
        standin_install_tree: Path, tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "ks.yaml", install_tree=str(standin_install_tree),
                          repo_url=UNREACHABLE_REPO, kickstart_version="RHEL10")
    backend = create_backend(load_recipe(str(recipe)))
    assert isinstance(backend, KickstartBackend)
    parser = KickstartParser(makeVersion("RHEL10"))
    parser.readKickstartFromString(backend.kickstart)
    assert parser.handler.authselect.authselect == "select local"


def test_a_finished_kickstart_file_is_used_as_it_is(
        standin_install_tree: Path, tmp_path: Path) -> None:
    kickstart = tmp_path / "my.ks"
    kickstart.write_text('text\npoweroff\ntimezone "Asia/Tokyo" --utc\n%post\necho ${#x}\n%end\n')
    recipe = write_recipe(tmp_path / "ks.yaml", install_tree=str(standin_install_tree),
                          repo_url=UNREACHABLE_REPO, kickstart="my.ks")
    backend = create_backend(load_recipe(str(recipe)))
    assert isinstance(backend, KickstartBackend)
    assert backend.kickstart == kickstart.read_text()


def test_a_template_of_ones_own_gets_the_recipe_values_and_the_snippets(
        standin_install_tree: Path, tmp_path: Path) -> None:
    (tmp_path / "mine.ks.j2").write_text(
        'text\npoweroff\ntimezone {{ timezone | ks_arg }} --utc\nurl --url={{ install_tree '
        '| ks_arg }}\n{% include "snippets/storage.ks.j2" %}\n')
    recipe = write_recipe(tmp_path / "ks.yaml", install_tree=str(standin_install_tree),
                          repo_url=UNREACHABLE_REPO, kickstart="mine.ks.j2")
    backend = create_backend(load_recipe(str(recipe)))
    assert isinstance(backend, KickstartBackend)
    lines = backend.kickstart.splitlines()
    assert 'timezone "Europe/Prague" --utc' in lines and "zerombr" in lines


def test_a_kickstart_that_never_powers_off_is_refused(
        standin_install_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "wait.ks").write_text("text\ntimezone Etc/UTC\n")
    recipe = write_recipe(tmp_path / "ks.yaml", install_tree=str(standin_install_tree),
                          repo_url=UNREACHABLE_REPO, kickstart="wait.ks")
    lines = build_fails(tmp_path, monkeypatch, capsys, recipe)
    assert lines == [f"he-build: error: recipe {recipe}: kickstart {tmp_path / 'wait.ks'}: the "
                     "kickstart does not end with poweroff (or reboot): the installer would "
                     "wait forever"]
