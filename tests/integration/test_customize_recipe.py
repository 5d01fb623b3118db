"""Customize recipes before any launch: validation, base image detection, path resolution, the
cache key, and bad input through the CLI (one line, exit 2, nothing published). No guestfs."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from builder.cli.he_build import main
from builder.disk.customize import CustomizeBackend, describe, detect_base
from builder.disk.customize_ops import RootPasswordOp, UploadOp, crypt_password
from builder.disk.registry import create_backend, load_recipe
from builder.errors import ExitCode, InputError
from tests.fixtures.customize import APPLIANCE, SSH_KEY

pytestmark = pytest.mark.integration


def fake_raw(path: Path) -> Path:
    """1 MiB with an MBR signature: enough to pass detection (never launched here)."""
    data = bytearray(1 << 20)
    data[510:512] = b"\x55\xaa"
    path.write_bytes(bytes(data))
    return path


def recipe_file(folder: Path, operations: list[dict[str, Any]], base: str = "base.raw",
                **extra: Any) -> Path:
    if not (folder / "base.raw").exists():
        fake_raw(folder / "base.raw")
    path = folder / "recipe.yaml"
    options = {"base": base, "operations": operations, **extra}
    path.write_text(yaml.safe_dump({"backend": "customize", "appliance": APPLIANCE,
                                    "options": options}))
    return path


def backend_for(folder: Path, operations: list[dict[str, Any]], **extra: Any) -> CustomizeBackend:
    backend = create_backend(load_recipe(str(recipe_file(folder, operations, **extra))),
                             os.environ)
    assert isinstance(backend, CustomizeBackend)
    return backend


def problems_of(folder: Path, operations: list[dict[str, Any]], **extra: Any) -> str:
    with pytest.raises(InputError) as caught:
        backend_for(folder, operations, **extra)
    return "\n".join([caught.value.message, *caught.value.problems])


BAD_OPERATIONS = [
    ([{"op": "sparsify"}, {"op": "sysprep"}], "sparsify must be the last operation"),
    ([{"op": "root_password", "file": "pw", "hash": "$6$salt$abc"}], "exactly one of"),
    ([{"op": "root_password"}], "exactly one of"),
    ([{"op": "root_password", "env": "NOT A NAME"}],
     "operations[0].root_password.env: 'NOT A NAME' does not match"),
    ([{"op": "install", "package": "tool.tar.gz"}], "must be a .deb or .rpm file"),
    ([{"op": "write", "path": "etc/relative", "content": ""}], "absolute guest path"),
    ([{"op": "write", "path": "/etc/../root/x", "content": ""}], "absolute guest path"),
    ([{"op": "write", "path": "/x", "content": "", "mode": "0999"}], "octal mode"),
    ([{"op": "write", "path": "/x", "content": "", "mode": 644}], "quoted octal mode"),
    ([{"op": "write", "path": "/x", "content": "", "owner": "root"}], "user:group"),
    ([{"op": "timezone", "zone": "../../etc/shadow"}],
     "operations[0].timezone.zone: '../../etc/shadow' does not match"),
    ([{"op": "ssh_keys", "keys": ["ssh-rsa AAAA\nssh-rsa BBBB"]}], "OpenSSH public key"),
    ([{"op": "run", "argv": []}], "operations[0].run.argv: must not be empty"),
    ([{"op": "format_disk"}], "does not match any of the expected tags"),
    ([{"op": "upload", "source": "missing.txt", "path": "/x"}],
     "options.operations[0]: file not found"),
]


@pytest.mark.parametrize(("operations", "expected"), BAD_OPERATIONS)
def test_bad_operations_are_refused(tmp_path: Path, operations: list[dict[str, Any]],
                                    expected: str) -> None:
    assert expected in problems_of(tmp_path, operations)


def test_declared_format_must_match(tmp_path: Path) -> None:
    assert "is raw, not qcow2" in problems_of(tmp_path, [], base_format="qcow2")


def test_base_detection(tmp_path: Path) -> None:
    qcow2 = tmp_path / "b.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow2), "1G"], check=True)
    ova = tmp_path / "b.ova"
    with tarfile.open(ova, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(qcow2, arcname="disk.qcow2")
    assert detect_base(qcow2, "auto") == "qcow2"
    assert detect_base(ova, "auto") == "ova"
    assert detect_base(fake_raw(tmp_path / "b.raw"), "raw") == "raw"
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(qcow2),
                    str(overlay)], check=True)
    with pytest.raises(InputError, match="has a backing file"):
        detect_base(overlay, "auto")
    zeros = tmp_path / "zeros.raw"
    zeros.write_bytes(bytes(1 << 20))
    with pytest.raises(InputError, match="is not a disk image"):
        detect_base(zeros, "auto")


def test_relative_paths_resolve_against_the_recipe_folder(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    (tmp_path / "files/motd").write_text("hi\n")
    backend = backend_for(tmp_path, [{"op": "upload", "source": "files/motd", "path": "/etc/motd"}])
    assert backend.base == tmp_path / "base.raw"
    upload = backend.operations[0]
    assert isinstance(upload, UploadOp) and upload.source == tmp_path / "files/motd"


def test_cache_key_follows_inputs_and_hides_the_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "motd").write_text("one\n")
    ops: list[dict[str, Any]] = [{"op": "upload", "source": "motd", "path": "/etc/motd"},
           {"op": "root_password", "env": "HE_TEST_ROOT_PW"}, {"op": "ssh_keys", "keys": [SSH_KEY]}]
    monkeypatch.setenv("HE_TEST_ROOT_PW", "first-secret")
    first = backend_for(tmp_path, ops).cache_key()
    assert backend_for(tmp_path, ops).cache_key() == first
    monkeypatch.setenv("HE_TEST_ROOT_PW", "second-secret")
    second = backend_for(tmp_path, ops).cache_key()
    (tmp_path / "motd").write_text("two\n")
    third = backend_for(tmp_path, ops).cache_key()
    assert len({first, second, third}) == 3
    backend = backend_for(tmp_path, ops)
    assert "second-secret" not in repr(backend)
    assert all("secret" not in describe(op) for op in backend.operations)


def test_password_env_must_be_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HE_TEST_ROOT_PW", raising=False)
    message = problems_of(tmp_path, [{"op": "root_password", "env": "HE_TEST_ROOT_PW"}])
    assert message == "root password: $HE_TEST_ROOT_PW is empty or not set"


def test_crypt_password_is_sha512_salted_by_the_build() -> None:
    one = crypt_password("pw", identity="1" * 64, field="operations.0: root_password")
    two = crypt_password("pw", identity="2" * 64, field="operations.0: root_password")
    assert isinstance(one, RootPasswordOp) and one.hash and two.hash
    assert one.hash.startswith("$6$") and one.hash != two.hash
    assert describe(one) == "root password"


def test_an_over_long_password_stops_before_any_work(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HE_TEST_ROOT_PW", "p" * 512)
    message = problems_of(tmp_path, [{"op": "root_password", "env": "HE_TEST_ROOT_PW"}])
    assert message == ("root password: $HE_TEST_ROOT_PW is 512 bytes long in UTF-8; "
                       "SHA-512 crypt (libxcrypt, PAM) takes at most 511")


@pytest.mark.parametrize("make_base", ["text", "missing"])
def test_bad_base_image_is_one_line_and_publishes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        make_base: str) -> None:
    if make_base == "text":
        (tmp_path / "notes.txt").write_text("this is not a disk image\n" * 100)
    recipe = recipe_file(tmp_path, [{"op": "sysprep"}], base="notes.txt")
    cache = tmp_path / "cache"
    monkeypatch.setenv("HE_BUILDER_CACHE", str(cache))
    out = tmp_path / "out"
    code = main(["appliance", "--recipe", str(recipe), "--out", str(out)])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code == ExitCode.BAD_INPUT
    expected = ("is not a disk image (raw, qcow2 or OVA)" if make_base == "text"
                else "base image not found:")
    assert len(errors) == 1 and expected in errors[0], errors
    assert not out.exists()
    assert not (cache / "disk").exists() or list((cache / "disk").iterdir()) == []
