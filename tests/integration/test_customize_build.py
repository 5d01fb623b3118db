"""The customize backend on a real image: each operation is checked by reading the OUTPUT image
back (fixtures in tests/fixtures/customize.py: build, second pass from the OVA, one read-back)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from builder.disk.customize_ops import PASSWORD_SALT_CONTEXT
from builder.disk.registry import create_backend, load_recipe
from builder.ova import verify_ova
from builder.passwords import derive_salt
from builder.sparse import sha256_sparse
from tests.fixtures.customize import FILL_MIB, PROBE_PACKAGE, SSH_KEY, CustomizedBuild
from tests.fixtures.passwords import verify_sha512_crypt

pytestmark = pytest.mark.integration


def qemu_info(path: Path) -> dict[str, Any]:
    done = subprocess.run(["qemu-img", "info", "--output=json", str(path)], check=True,
                          capture_output=True, text=True)
    info: dict[str, Any] = json.loads(done.stdout)
    return info


def test_cli_builds_disk_ova_and_rpm(customized_build: CustomizedBuild) -> None:
    arts = customized_build.artifacts
    assert [arts[s]["cache"] for s in ("disk", "ova", "rpm")] == ["built"] * 3
    disk = Path(arts["disk"]["path"])
    assert disk.name == "he-customized.qcow2"
    info = qemu_info(disk)
    assert info["format"] == "qcow2" and "backing-filename" not in info
    ova = verify_ova(Path(arts["ova"]["path"]))
    assert ova.name == "he-customized" and ova.memory_mib == 1024
    listing = subprocess.run(["rpm", "-qlp", arts["rpm"]["path"]], check=True,
                             capture_output=True, text=True).stdout.split()
    assert f"/usr/share/ovirt-engine-appliance/{Path(arts['ova']['path']).name}" in listing


def test_base_image_is_untouched(customized_build: CustomizedBuild) -> None:
    assert sha256_sparse(customized_build.base) == customized_build.base_digest_before


def test_password_never_reaches_the_console(customized_build: CustomizedBuild) -> None:
    assert customized_build.password not in customized_build.stderr
    assert "$6$" not in customized_build.stderr
    assert "one launch" in customized_build.stderr


def test_sparsify_discards_deleted_data(customized_build: CustomizedBuild) -> None:
    """A 64 MiB random file was written then deleted in the guest; fstrim + convert drop it."""
    base = qemu_info(customized_build.base)["actual-size"]
    out = qemu_info(Path(customized_build.artifacts["disk"]["path"]))["actual-size"]
    assert out < base + (FILL_MIB << 20) // 2, (base, out)


def test_upload(guest_facts: dict[str, Any]) -> None:
    assert guest_facts["files"]["/opt/he/uploaded.txt"] == "uploaded from the host\n"
    assert guest_facts["stat"]["/opt/he/uploaded.txt"] == (0o640, 0, gid(guest_facts, "adm"))


def test_write(guest_facts: dict[str, Any]) -> None:
    assert guest_facts["files"]["/etc/he-written.conf"] == "key = value\n"
    daemon = (uid(guest_facts, "daemon"), gid(guest_facts, "daemon"))
    assert guest_facts["stat"]["/etc/he-written.conf"] == (0o600, *daemon)


def test_install_deb_with_dpkg(guest_facts: dict[str, Any]) -> None:
    assert guest_facts["files"][f"/usr/share/{PROBE_PACKAGE}/hello"] == "installed by dpkg\n"
    status = guest_facts["files"]["/var/lib/dpkg/status"]
    entry = status.split(f"Package: {PROBE_PACKAGE}\n", 1)[1].split("\n\n", 1)[0]
    assert "Status: install ok installed" in entry
    assert guest_facts["staged_packages"] == []


def test_run_as_root_in_the_guest(guest_facts: dict[str, Any]) -> None:
    assert guest_facts["files"]["/etc/he-run-output"] == "0\n"


def test_root_password_is_sha512_crypt(guest_facts: dict[str, Any],
                                       customized_build: CustomizedBuild) -> None:
    root = next(line for line in guest_facts["files"]["/etc/shadow"].splitlines()
                if line.startswith("root:"))
    crypted = root.split(":")[1]
    assert crypted.startswith("$6$")
    assert verify_sha512_crypt(customized_build.password, crypted)
    # Salted from the disk stage's cache key: the same inputs give the same image.
    key = create_backend(load_recipe(str(customized_build.recipe))).cache_key()
    assert crypted.split("$")[2] == derive_salt(PASSWORD_SALT_CONTEXT, key)
    assert guest_facts["stat"]["/etc/shadow"][0] == 0o640


def test_ssh_keys(guest_facts: dict[str, Any]) -> None:
    assert guest_facts["files"]["/root/.ssh/authorized_keys"] == SSH_KEY + "\n"
    assert guest_facts["stat"]["/root/.ssh/authorized_keys"] == (0o600, 0, 0)
    assert guest_facts["stat"]["/root/.ssh"] == (0o700, 0, 0)


def test_timezone(guest_facts: dict[str, Any]) -> None:
    assert guest_facts["localtime"] == "/usr/share/zoneinfo/Europe/Prague"
    assert guest_facts["files"]["/etc/timezone"] in (None, "Europe/Prague\n")


def test_sysprep(guest_facts: dict[str, Any]) -> None:
    files = guest_facts["files"]
    assert files["/etc/machine-id"] == ""
    assert guest_facts["ssh_host_keys"] == []
    assert files["/var/log/he-test.log"] == ""
    assert files["/var/log/he-test.log.1"] is None
    assert guest_facts["cloud_state"] == []


def test_selinux_relabel_is_scheduled(guest_facts: dict[str, Any]) -> None:
    assert guest_facts["files"]["/.autorelabel"] == ""


def test_second_pass_from_the_ova(guest_facts: dict[str, Any], second_pass_disk: Path) -> None:
    """The facts above are read from this image: an OVA base keeps every earlier change."""
    assert guest_facts["files"]["/etc/he-second-pass"] == "from the OVA\n"
    assert qemu_info(second_pass_disk)["format"] == "raw"


def uid(facts: dict[str, Any], name: str) -> int:
    return _id(facts["files"]["/etc/passwd"], name)


def gid(facts: dict[str, Any], name: str) -> int:
    return _id(facts["files"]["/etc/group"], name)


def _id(table: str, name: str) -> int:
    return next(int(line.split(":")[2]) for line in table.splitlines()
                if line.split(":")[0] == name)
