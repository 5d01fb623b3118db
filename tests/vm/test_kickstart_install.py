"""The kickstart backend end to end under libvirt/TCG, against a STAND-IN installer.

No CentOS install tree can be reached here, so Anaconda is replaced by the stand-in built in
tests/fixtures/installer.py: the host kernel and a busybox initramfs that reads the rendered
kickstart from the OEMDRV CD-ROM, writes an ext4 root filesystem to the target disk and powers
off. Everything around it is real: the recipe, the kickstart rendering, the tree download over
HTTP, the OEMDRV ISO, the libvirt domain, the serial log, the wait, the stage cache, the OVA
and the RPM."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from builder.cli.he_build import main
from builder.console import Console
from builder.disk.kickstart import MIN_DISK_GIB
from builder.disk.kickstart_install import KickstartBackend
from builder.disk.registry import create_backend, load_recipe
from builder.errors import ExitCode
from builder.pipeline.appliance import build_disk_cached
from builder.run import run
from builder.virt.hypervisor import Hypervisor
from tests.fixtures.installer import (
    HANG_PACKAGE,
    REPORT,
    ROOT_LABEL,
    UNREACHABLE_REPO,
    standin_install_tree,
    standin_tree_url,
    write_recipe,
)
from tests.fixtures.signals import INTERRUPTIBLE

pytestmark = pytest.mark.vm
__all__ = ["standin_install_tree", "standin_tree_url"]


def read_file(disk: Path, path: str) -> str:
    """A file from the ext4 filesystem the installer made on the raw disk (no mount, no VM)."""
    return run(["debugfs", "-R", f"cat {path}", str(disk)]).text


def report(disk: Path) -> dict[str, str]:
    lines = read_file(disk, REPORT).splitlines()
    return dict(line.split("=", 1) for line in lines)


def installer_domains(uri: str, key: str) -> list[str]:
    """This recipe's installer domains still known to libvirt."""
    with Hypervisor(uri) as hv:
        return [name for name in hv.domain_names() if name.startswith(f"he-installer-{key[:12]}")]


def backend_of(recipe: Path) -> KickstartBackend:
    backend = create_backend(load_recipe(str(recipe)))
    assert isinstance(backend, KickstartBackend)
    return backend


def test_local_tree_installs_the_rendered_kickstart(
        standin_install_tree: Path, libvirt_uri: str, launch_storage: Path,
        tmp_path: Path) -> None:
    vm_dir = launch_storage / "installer-local"
    recipe = write_recipe(tmp_path / "ks.yaml", install_tree=str(standin_install_tree),
                          repo_url=UNREACHABLE_REPO, libvirt_uri=libvirt_uri,
                          vm_dir=str(vm_dir), extra_packages=["vim-enhanced"])
    backend = backend_of(recipe)
    disk, hit = build_disk_cached(load_recipe(str(recipe)), tmp_path / "cache", Console(),
                                  dict(os.environ))
    assert not hit and disk.format == "raw" and disk.path.stat().st_size == MIN_DISK_GIB << 30
    assert run(["blkid", "-s", "LABEL", "-o", "value", str(disk.path)]).text.strip() == ROOT_LABEL
    # What the stand-in read from OEMDRV is exactly the kickstart the recipe renders.
    assert read_file(disk.path, "/root/anaconda-ks.cfg") == backend.kickstart
    seen = report(disk.path)
    assert seen["timezone"] == "Europe/Prague"
    assert seen["ks_sha256"] == hashlib.sha256(backend.kickstart.encode()).hexdigest()
    assert "vim-enhanced" in backend.kickstart.splitlines()
    cmdline = seen["cmdline"].split()
    assert "inst.ks=hd:LABEL=OEMDRV:/ks.cfg" in cmdline
    assert f"inst.stage2={UNREACHABLE_REPO}" in cmdline
    assert f"inst.repo={UNREACHABLE_REPO}" in cmdline
    assert installer_domains(libvirt_uri, backend.cache_key()) == []
    # Only the serial log (named by the backend's key) stays in the VM directory; the scratch
    # files are gone.
    assert [p.name for p in vm_dir.iterdir()] == [f"installer-{backend.cache_key()[:12]}.log"]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_http_tree_through_the_cli_to_ova_and_rpm(
        standin_tree_url: str, libvirt_uri: str, launch_storage: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HE_BUILDER_CACHE", str(tmp_path / "cache"))
    recipe = write_recipe(tmp_path / "ks-http.yaml", install_tree=standin_tree_url,
                          disk_format="qcow2", libvirt_uri=libvirt_uri,
                          vm_dir=str(launch_storage / "installer-http"))
    out = tmp_path / "out"
    code, stdout, stderr = cli(capsys, "appliance", "--recipe", str(recipe), "--out", str(out),
                               "--json")
    assert code == 0, stderr
    artifacts: dict[str, Any] = {a["stage"]: a for a in json.loads(stdout)["artifacts"]}
    assert {a["cache"] for a in artifacts.values()} == {"built"}
    assert "installer: Installation complete" in stderr
    disk = Path(artifacts["disk"]["path"])
    raw = tmp_path / "disk.raw"
    run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(disk), str(raw)])
    seen = report(raw)
    assert f"inst.stage2={standin_tree_url}" in seen["cmdline"].split()
    assert f"inst.repo={standin_tree_url}" in seen["cmdline"].split()
    assert f'url --url="{standin_tree_url}"' in read_file(raw, "/root/anaconda-ks.cfg")
    assert Path(artifacts["ova"]["path"]).is_file() and Path(artifacts["rpm"]["path"]).is_file()
    assert installer_domains(libvirt_uri, backend_of(recipe).cache_key()) == []
    # Unchanged inputs: every stage comes from the cache, no installer runs.
    code, stdout, stderr = cli(capsys, "appliance", "--recipe", str(recipe), "--out",
                               str(tmp_path / "out2"), "--json")
    assert code == 0, stderr
    assert {a["cache"] for a in json.loads(stdout)["artifacts"]} == {"hit"}
    assert "booting the installer" not in stderr


def test_an_installer_that_never_powers_off_times_out(
        standin_install_tree: Path, libvirt_uri: str, launch_storage: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HE_BUILDER_CACHE", str(tmp_path / "cache"))
    vm_dir = launch_storage / "installer-hang"
    recipe = write_recipe(tmp_path / "ks-hang.yaml", install_tree=str(standin_install_tree),
                          repo_url=UNREACHABLE_REPO, libvirt_uri=libvirt_uri,
                          vm_dir=str(vm_dir), extra_packages=[HANG_PACKAGE], timeout_s=20)
    key = backend_of(recipe).cache_key()
    out = tmp_path / "out"
    code, _, stderr = cli(capsys, "appliance", "--recipe", str(recipe), "--out", str(out))
    log = vm_dir / f"installer-{key[:12]}.log"
    assert code == ExitCode.COMMAND_FAILED
    assert stderr.splitlines()[-1] == (
        "he-build: error: stage disk failed: the installer did not power off within 20 s "
        f"(serial log: {log})")
    assert log.is_file()
    assert installer_domains(libvirt_uri, key) == []
    assert not out.exists() or list(out.iterdir()) == []
    assert not (tmp_path / "cache" / "disk" / key).exists()
    assert [p.name for p in vm_dir.iterdir()] == [log.name]


def wait_for_text(path: Path, text: str, proc: subprocess.Popen[bytes], limit_s: float) -> None:
    """Poll `path` until it holds `text` (the installer reached that point)."""
    deadline = time.monotonic() + limit_s
    while not (path.is_file() and text in path.read_text(errors="replace")):
        assert proc.poll() is None, "he-build ended before the installer got there"
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        time.sleep(0.5)


def test_ctrl_c_destroys_the_installer_and_publishes_nothing(
        standin_install_tree: Path, libvirt_uri: str, launch_storage: Path,
        tmp_path: Path) -> None:
    vm_dir = launch_storage / "installer-interrupt"
    recipe = write_recipe(tmp_path / "ks-int.yaml", install_tree=str(standin_install_tree),
                          repo_url=UNREACHABLE_REPO, libvirt_uri=libvirt_uri,
                          vm_dir=str(vm_dir), extra_packages=[HANG_PACKAGE])
    key = backend_of(recipe).cache_key()
    out = tmp_path / "out"
    env = {**os.environ, "HE_BUILDER_CACHE": str(tmp_path / "cache")}
    with (tmp_path / "stderr").open("wb") as stderr:
        proc = subprocess.Popen(
            [*INTERRUPTIBLE, sys.executable, "-m", "builder.cli.he_build", "appliance", "--recipe",
             str(recipe),
             "--out", str(out)], env=env, stderr=stderr, stdout=subprocess.DEVNULL)
        try:
            wait_for_text(vm_dir / f"installer-{key[:12]}.log", "waiting forever", proc, 600)
            assert installer_domains(libvirt_uri, key) != []
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=120)
        finally:
            proc.kill()
    assert code == ExitCode.INTERRUPTED, (tmp_path / "stderr").read_text()
    assert installer_domains(libvirt_uri, key) == []
    assert not out.exists() or list(out.iterdir()) == []
    assert not (tmp_path / "cache" / "disk" / key).exists()
    assert [p.name for p in vm_dir.iterdir()] == [f"installer-{key[:12]}.log"]


def test_a_full_filesystem_under_the_installer_is_a_storage_error(
        standin_install_tree: Path, libvirt_uri: str, launch_storage: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # A tmpfs with room for the kernel and initrd copies and ~2 MiB more: the stand-in's
    # mke2fs writes ~5 MiB to the target, qemu gets ENOSPC and pauses the VM.
    vm_dir = launch_storage / "installer-full"
    vm_dir.mkdir()
    pxeboot = standin_install_tree / "images" / "pxeboot"
    size_mib = sum(p.stat().st_size for p in pxeboot.iterdir()) // (1 << 20) + 3
    run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}M,mode=0711", "tmpfs", str(vm_dir)])
    try:
        monkeypatch.setenv("HE_BUILDER_CACHE", str(tmp_path / "cache"))
        recipe = write_recipe(tmp_path / "ks-full.yaml", install_tree=str(standin_install_tree),
                              repo_url=UNREACHABLE_REPO, libvirt_uri=libvirt_uri,
                              vm_dir=str(vm_dir))
        key = backend_of(recipe).cache_key()
        out = tmp_path / "out"
        code, _, stderr = cli(capsys, "appliance", "--recipe", str(recipe), "--out", str(out))
        log = vm_dir / f"installer-{key[:12]}.log"
        assert code == ExitCode.STORAGE, stderr
        assert stderr.splitlines()[-1] == (
            "he-build: error: stage disk failed: the installer VM stopped on a write error: "
            f"is {vm_dir} full? "
            f"(serial log: {log})")
        assert installer_domains(libvirt_uri, key) == []
        assert not out.exists() or list(out.iterdir()) == []
        assert [p.name for p in vm_dir.iterdir()] == [log.name]
    finally:
        run(["umount", str(vm_dir)])


def test_an_installer_that_stops_without_installing_is_an_error(
        standin_install_tree: Path, libvirt_uri: str, launch_storage: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # A finished kickstart with no timezone: the stand-in gives up and powers off.
    (tmp_path / "no-timezone.ks").write_text("text\npoweroff\n")
    monkeypatch.setenv("HE_BUILDER_CACHE", str(tmp_path / "cache"))
    vm_dir = launch_storage / "installer-gives-up"
    recipe = write_recipe(tmp_path / "ks-gives-up.yaml", install_tree=str(standin_install_tree),
                          repo_url=UNREACHABLE_REPO, libvirt_uri=libvirt_uri,
                          vm_dir=str(vm_dir), kickstart="no-timezone.ks")
    key = backend_of(recipe).cache_key()
    code, _, stderr = cli(capsys, "appliance", "--recipe", str(recipe), "--out",
                          str(tmp_path / "out"))
    log = vm_dir / f"installer-{key[:12]}.log"
    assert code == ExitCode.COMMAND_FAILED, stderr
    assert "installer: he-standin: ERROR: no timezone in the kickstart" in stderr
    assert stderr.splitlines()[-1] == ("he-build: error: stage disk failed: the installer powered "
                                       f"off without writing the disk (serial log: {log})")
    assert installer_domains(libvirt_uri, key) == []
    assert not (tmp_path / "cache" / "disk" / key).exists()
