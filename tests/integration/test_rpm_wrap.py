"""The appliance RPM, checked with rpm's own tools: query, digests, rpmlint, install into a
scratch root, byte-identical rebuilds, GPG signing with a throwaway key, OVA extraction."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from builder.appliance.recipes import load_recipe
from builder.console import Console
from builder.rpm import build_rpm, extract_ova_from_rpm
from builder.rpm.spec import INSTALL_DIR, render_spec
from tests.fixtures.appliance import DemoAppliance

pytestmark = pytest.mark.integration
EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}


def rpm(*args: str) -> str:
    done = subprocess.run(["rpm", *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def test_query_info_and_files(demo_appliance: DemoAppliance) -> None:
    info = rpm("-qip", str(demo_appliance.rpm))
    assert "Name        : ovirt-engine-appliance" in info
    assert "Architecture: noarch" in info and "Build Host  : he-builder.localdomain" in info
    files = rpm("-qlp", str(demo_appliance.rpm)).split()
    assert files == [INSTALL_DIR, f"{INSTALL_DIR}/{demo_appliance.ova.name}",
                     f"{INSTALL_DIR}/ovirt-engine-appliance.json"]
    assert "digests OK" in rpm("-K", str(demo_appliance.rpm))


def test_rpmlint_has_no_errors_but_the_missing_signature(demo_appliance: DemoAppliance) -> None:
    done = subprocess.run(["rpmlint", str(demo_appliance.rpm)], capture_output=True, text=True,
                          check=False)
    errors = [line for line in done.stdout.splitlines()
              if ": E: " in line and "no-signature" not in line]
    assert errors == [], done.stdout


def test_install_into_scratch_root_gives_the_same_ova(demo_appliance: DemoAppliance,
                                                      tmp_path: Path) -> None:
    root = tmp_path / "root"
    rpm("--root", str(root), "--nodeps", "--noscripts", "-i", str(demo_appliance.rpm))
    installed = root / INSTALL_DIR.lstrip("/") / demo_appliance.ova.name
    assert sha256(installed) == sha256(demo_appliance.ova)
    metadata = (root / INSTALL_DIR.lstrip("/") / "ovirt-engine-appliance.json").read_text()
    assert sha256(demo_appliance.ova) in metadata


def test_extract_ova_from_rpm(demo_appliance: DemoAppliance, tmp_path: Path) -> None:
    ova = extract_ova_from_rpm(demo_appliance.rpm, tmp_path / "x")
    assert ova.name == demo_appliance.ova.name
    assert sha256(ova) == sha256(demo_appliance.ova)
    assert [p.name for p in (tmp_path / "x").iterdir()] == [ova.name]


def test_two_builds_with_epoch_are_identical(demo_appliance: DemoAppliance,
                                             tmp_path: Path) -> None:
    meta = load_recipe("debian-test").meta
    built = []
    for name in ("a", "b"):
        out = tmp_path / name
        out.mkdir()
        built.append(build_rpm(demo_appliance.ova, meta, out, payload="speed", sign_key=None,
                               console=Console(), env=EPOCH))
    assert built[0].read_bytes() == built[1].read_bytes()
    assert [p.name for p in (tmp_path / "a").iterdir()] == [built[0].name]


def test_spec_values_cannot_inject(tmp_path: Path) -> None:
    meta = replace(load_recipe("debian-test").meta,
                   description="Line one %{getenv:HOME}\n%post\nrm -rf /")
    spec = render_spec(meta, "a.ova", "a.json", 1_700_000_000)
    assert "\n%post" not in spec
    assert "%%{getenv:HOME}" in spec


GPG_PARAMS = """%no-protection
Key-Type: RSA
Key-Length: 2048
Name-Real: he-builder test key
Name-Email: test@example.invalid
Expire-Date: 0
%commit
"""


@pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed")
def test_signed_rpm_verifies_with_the_public_key(demo_appliance: DemoAppliance,
                                                 tmp_path: Path) -> None:
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch"]
    subprocess.run([*gpg, "--gen-key"], input=GPG_PARAMS, text=True, check=True,
                   capture_output=True)
    key = tmp_path / "secret.asc"
    public = tmp_path / "public.asc"
    key.write_bytes(subprocess.run([*gpg, "--armor", "--export-secret-keys"], check=True,
                                   capture_output=True).stdout)
    public.write_bytes(subprocess.run([*gpg, "--armor", "--export"], check=True,
                                      capture_output=True).stdout)
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)
    out = tmp_path / "out"
    out.mkdir()
    signed = build_rpm(demo_appliance.ova, load_recipe("debian-test").meta, out,
                       payload="speed", sign_key=key, console=Console(), env=EPOCH)
    db = tmp_path / "rpmdb"
    db.mkdir()
    rpm("--dbpath", str(db), "--import", str(public))
    checked = rpm("--dbpath", str(db), "-K", "-v", str(signed))
    signature = [line for line in checked.splitlines() if "V4 RSA" in line]
    assert signature and signature[0].strip().endswith(": OK"), checked
    lint = subprocess.run(["rpmlint", str(signed)], capture_output=True, text=True, check=False)
    # rpmlint checks the key against the system's rpmdb, which does not know a throwaway key.
    errors = [line for line in lint.stdout.splitlines()
              if ": E: " in line and "unknown-key" not in line]
    assert errors == [], lint.stdout
