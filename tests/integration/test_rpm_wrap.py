"""The appliance RPMs, checked with rpm's own tools and read the way hosted-engine finds them:
`rpm -qlp | grep '.conf$'`, the discovery file's path= and sha1sum= (grep | cut, and
hosted-engine-setup's ConfigParser), the SHA-1 of the image taken out of the payload; rpmlint
with SPDX licences; install into a scratch root; byte-identical rebuilds; GPG signing; both
generations (the OVA RPM and oVirt 4.5.7's qcow2 RPM)."""

from __future__ import annotations

import configparser
import contextlib
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from builder.console import Console
from builder.disk.registry import load_recipe
from builder.errors import InputError
from builder.gpg import HOME_PREFIX, OWNER_FILE
from builder.model import BuiltDisk
from builder.ova.digests import file_digests
from builder.ova.pack import convert_disk
from builder.rpm import RpmImage, build_rpm, extract_appliance_from_rpm
from builder.rpm.metadata import INSTALL_DIR
from tests.fixtures.appliance import DemoAppliance, DemoQcow2Rpm
from tests.fixtures.release import KeyFiles, rpm_signature_check

pytestmark = pytest.mark.integration
EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}
SPDX_IDS = Path("/usr/share/nodejs/spdx-license-ids/index.json")
OVA_NAME = "ovirt-engine-appliance-4.5.0-0.debiantest.ova"
QCOW2_NAME = "ovirt-engine-appliance-centos9-4.5.0-0.debiantest.qcow2"


def rpm(*args: str) -> str:
    done = subprocess.run(["rpm", *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def pipe(first: list[str], second: list[str]) -> str:
    """`first | second` without a shell."""
    upstream = subprocess.Popen(first, stdout=subprocess.PIPE)
    assert upstream.stdout is not None
    done = subprocess.run(second, stdin=upstream.stdout, capture_output=True, text=True,
                          check=False)
    upstream.stdout.close()
    assert upstream.wait() == 0
    return done.stdout


def sha(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def unpack_payload(package: Path, root: Path) -> Path:
    """The payload as files, as `rpm -i` would lay them out (without a database)."""
    root.mkdir()
    rpm("--root", str(root), "--dbpath", str(root / "rpmdb"), "--nodeps", "--noscripts",
        "--notriggers", "-i", str(package))
    return root


def role_finds(package: Path, root: Path) -> tuple[str, str, str]:
    """The Ansible role's steps: `rpm -ql PKG | grep '.conf$'`, then `grep path FILE | cut
    -f2 -d'='` and the same for sha1sum (here on the RPM file and its unpacked payload)."""
    confs = pipe(["rpm", "-qlp", str(package)], ["grep", ".conf$"]).splitlines()
    assert len(confs) == 1, confs
    conf = root / confs[0].lstrip("/")
    path = pipe(["grep", "path", str(conf)], ["cut", "-f2", "-d="]).splitlines()[0]
    sha1sum = pipe(["grep", "sha1sum", str(conf)], ["cut", "-f2", "-d="]).splitlines()[0]
    return confs[0], path, sha1sum


def hosted_engine_setup_finds(root: Path) -> list[dict[str, str]]:
    """hosted-engine-setup's _detect_appliances: every /etc/ovirt-hosted-engine/*-appliance.conf
    through ConfigParser under a made-up section, all four keys required."""
    found = []
    for conf in glob.glob(str(root / "etc/ovirt-hosted-engine/*-appliance.conf")):
        config = configparser.ConfigParser()
        config.optionxform = str  # type: ignore[assignment,method-assign]
        with open(conf) as stream:
            config.read_string("[appliance]\n" + stream.read())
        keys = ["description", "version", "path", "sha1sum"]
        assert all(config.has_option("appliance", k) for k in keys)
        found.append({k: config.get("appliance", k) for k in keys})
    return found


def test_query_info_files_provides_and_payload(demo_appliance: DemoAppliance) -> None:
    info = rpm("-qip", str(demo_appliance.rpm))
    assert "Name        : ovirt-engine-appliance\n" in info
    assert "Architecture: noarch" in info and "Build Host  : he-builder.localdomain" in info
    assert "Summary     : The oVirt Engine Appliance image (OVA)" in info
    files = rpm("-qlp", str(demo_appliance.rpm)).split()
    assert files == ["/etc/ovirt-hosted-engine", "/etc/ovirt-hosted-engine/10-appliance.conf",
                     "/usr/share/doc/ovirt-engine-appliance",
                     "/usr/share/doc/ovirt-engine-appliance/README", INSTALL_DIR,
                     f"{INSTALL_DIR}/{OVA_NAME}", f"{INSTALL_DIR}/ovirt-engine-appliance.json"]
    provides = rpm("-qp", "--provides", str(demo_appliance.rpm)).splitlines()
    assert "ovirt-engine-appliance-centos9 = 4.5.0-0.debiantest" in provides
    # The OVA is gzip already: the payload is only framed (gzip level 0), not compressed again.
    assert rpm("-qp", "--qf", "%{PAYLOADCOMPRESSOR} %{PAYLOADFLAGS}",
               str(demo_appliance.rpm)) == "gzip 0"
    flags = rpm("-qp", "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]", str(demo_appliance.rpm))
    assert "/etc/ovirt-hosted-engine/10-appliance.conf cn" in flags.splitlines()
    assert "digests OK" in rpm("-K", str(demo_appliance.rpm))


def test_the_role_and_hosted_engine_setup_find_the_ova(demo_appliance: DemoAppliance,
                                                       tmp_path: Path) -> None:
    root = unpack_payload(demo_appliance.rpm, tmp_path / "root")
    conf, path, sha1sum = role_finds(demo_appliance.rpm, root)
    assert conf == "/etc/ovirt-hosted-engine/10-appliance.conf"
    assert path == f"{INSTALL_DIR}/{OVA_NAME}"
    assert path in rpm("-qlp", str(demo_appliance.rpm)).split()
    installed = root / path.lstrip("/")
    shasum = subprocess.run(["sha1sum", str(installed)], capture_output=True, text=True,
                            check=True).stdout.split()[0]
    assert sha1sum == shasum == sha(demo_appliance.ova, "sha1")
    assert hosted_engine_setup_finds(root) == [{
        "description": "The oVirt Engine Appliance image (OVA)",
        "version": "4.5.0-0.debiantest", "path": path, "sha1sum": sha1sum}]
    metadata = json.loads((root / INSTALL_DIR.lstrip("/") /
                           "ovirt-engine-appliance.json").read_text())
    assert metadata["sha256"] == sha(installed) and metadata["sha1"] == sha1sum
    assert (metadata["memory_mib"], metadata["vcpus"], metadata["firmware"]) == (1024, 2,
                                                                                "bios")
    assert oct(installed.stat().st_mode & 0o777) == "0o644"


def rpmlint(package: Path, tmp_path: Path) -> list[str]:
    """rpmlint with SPDX identifiers as the valid licences (Debian's default list is empty, so
    every licence would be 'invalid'); the problems a packager would have to look at."""
    config = tmp_path / "spdx.toml"
    names = json.loads(SPDX_IDS.read_text())
    config.write_text("ValidLicenses = [" + ", ".join(json.dumps(n) for n in names) + "]\n")
    done = subprocess.run(["rpmlint", "-c", str(config), str(package)], capture_output=True,
                          text=True, check=False)
    return [line for line in done.stdout.splitlines() if ": E: " in line or ": W: " in line]


@pytest.mark.skipif(not SPDX_IDS.is_file(), reason="node-spdx-license-ids is not installed")
def test_rpmlint_is_clean_but_for_the_missing_signature(demo_appliance: DemoAppliance,
                                                        demo_qcow2_rpm: DemoQcow2Rpm,
                                                        tmp_path: Path) -> None:
    for package in (demo_appliance.rpm, demo_qcow2_rpm.rpm):
        problems = rpmlint(package, tmp_path)
        assert [p.split(": ", 1)[1] for p in problems] == ["E: no-signature"], problems


@pytest.mark.skipif(not SPDX_IDS.is_file(), reason="node-spdx-license-ids is not installed")
def test_rpmlint_would_see_a_licence_that_is_not_spdx(demo_appliance: DemoAppliance,
                                                      tmp_path: Path) -> None:
    recipe = load_recipe("debian-test")
    names = replace(recipe.package, license="GPLv2")
    out = tmp_path / "out"
    out.mkdir()
    image = RpmImage(demo_appliance.ova, "ova", compressed=True)
    built = build_rpm(image, recipe.meta, names, out, payload="speed", sign_key=None,
                      console=Console(), env=EPOCH).path
    assert any("invalid-license GPLv2" in p for p in rpmlint(built, tmp_path))


def test_qcow2_rpm_is_what_ovirt_457_ships(demo_qcow2_rpm: DemoQcow2Rpm, tmp_path: Path) -> None:
    package = demo_qcow2_rpm.rpm
    assert package.name == "ovirt-engine-appliance-centos9-4.5.0-0.debiantest.noarch.rpm"
    provides = rpm("-qp", "--provides", str(package)).splitlines()
    assert "ovirt-engine-appliance = 4.5.0" in provides
    root = unpack_payload(package, tmp_path / "root")
    conf, path, sha1sum = role_finds(package, root)
    assert conf == "/etc/ovirt-hosted-engine/10-appliance-centos9.conf"
    assert path == f"{INSTALL_DIR}/{QCOW2_NAME}"
    installed = root / path.lstrip("/")
    assert sha1sum == sha(installed, "sha1") == sha(demo_qcow2_rpm.image, "sha1")
    # hosted-engine-setup's glob (*-appliance.conf) does not take the qcow2 generation: it needs
    # an OVA. The role does, through rpm -ql.
    assert hosted_engine_setup_finds(root) == []
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(installed)],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["format"] == "qcow2" and info["virtual-size"] == 3 << 30
    assert info["format-specific"]["data"]["compression-type"] == "zlib"
    assert rpm("-qp", "--qf", "%{PAYLOADCOMPRESSOR} %{PAYLOADFLAGS}", str(package)) == "gzip 0"
    metadata = json.loads((root / INSTALL_DIR.lstrip("/") /
                           "ovirt-engine-appliance-centos9.json").read_text())
    assert metadata["format"] == "qcow2" and metadata["image"] == QCOW2_NAME
    assert metadata["sha256"] == sha(installed) and metadata["firmware"] == "bios"


def test_an_uncompressed_image_gets_a_compressed_payload(debian_test_disk: Path,
                                                         tmp_path: Path) -> None:
    """--compress none: nothing compressed the qcow2, so the payload does (zstd)."""
    recipe = load_recipe("debian-test")
    qcow2 = tmp_path / QCOW2_NAME
    convert_disk(BuiltDisk(debian_test_disk, "raw", recipe.meta, "x"), qcow2, "none")
    out = tmp_path / "out"
    out.mkdir()
    built = build_rpm(RpmImage(qcow2, "qcow2", compressed=False), recipe.meta, recipe.package,
                      out, payload="speed", sign_key=None, console=Console(), env=EPOCH).path
    assert rpm("-qp", "--qf", "%{PAYLOADCOMPRESSOR}", str(built)) == "zstd"
    assert built.stat().st_size < qcow2.stat().st_size // 2


def test_extract_the_image_from_either_rpm(demo_appliance: DemoAppliance,
                                           demo_qcow2_rpm: DemoQcow2Rpm, tmp_path: Path
                                           ) -> None:
    ova = extract_appliance_from_rpm(demo_appliance.rpm, tmp_path / "a")
    assert ova.name == OVA_NAME and sha(ova) == sha(demo_appliance.ova)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        OVA_NAME, "ovirt-engine-appliance.json"]
    image = extract_appliance_from_rpm(demo_qcow2_rpm.rpm, tmp_path / "b")
    assert image.name == QCOW2_NAME and sha(image) == sha(demo_qcow2_rpm.image)


def test_two_builds_with_epoch_are_identical(demo_appliance: DemoAppliance,
                                             tmp_path: Path) -> None:
    recipe = load_recipe("debian-test")
    built = []
    for name in ("a", "b"):
        out = tmp_path / name
        out.mkdir()
        image = RpmImage(demo_appliance.ova, "ova", compressed=True)
        built.append(build_rpm(image, recipe.meta, recipe.package, out, payload="speed",
                               sign_key=None, console=Console(), env=EPOCH).path)
    assert built[0].read_bytes() == built[1].read_bytes()
    assert [p.name for p in (tmp_path / "a").iterdir()] == [built[0].name]


def test_the_rpm_stage_takes_the_digests_it_is_given(demo_appliance: DemoAppliance,
                                                     tmp_path: Path) -> None:
    """The packing stage's digests go into the discovery file as they are: the RPM stage does
    not read the OVA for them (a wrong one given shows up as given)."""
    recipe = load_recipe("debian-test")
    known = file_digests(demo_appliance.ova)
    told = replace(known, sha1="0" * 40)
    out = tmp_path / "out"
    out.mkdir()
    built = build_rpm(RpmImage(demo_appliance.ova, "ova", True, told), recipe.meta,
                      recipe.package, out, payload="speed", sign_key=None, console=Console(),
                      env=EPOCH).path
    root = unpack_payload(built, tmp_path / "root")
    assert role_finds(built, root)[2] == "0" * 40


def test_description_cannot_inject_a_scriptlet(demo_appliance: DemoAppliance,
                                               tmp_path: Path) -> None:
    recipe = load_recipe("debian-test")
    meta = replace(recipe.meta, description="%post\nrm -rf / %{getenv:HOME}\n%%post\n%pre")
    out = tmp_path / "out"
    out.mkdir()
    tiny = tmp_path / OVA_NAME
    tiny.write_bytes(b"not really an OVA, but rpmbuild only packs it")
    built = build_rpm(RpmImage(tiny, "ova", True), meta, recipe.package, out, payload="speed",
                      sign_key=None, console=Console(), env=EPOCH).path
    assert rpm("-qp", "--scripts", str(built)) == ""
    description = rpm("-qp", "--qf", "%{DESCRIPTION}", str(built))
    assert "%post" in description and "%{getenv:HOME}" in description


def signing_homes_of_this_process() -> list[Path]:
    """The GnuPG homes builder.gpg made for this process and left (other test workers sign
    at the same time, in homes of their own)."""
    found = []
    for home in Path(tempfile.gettempdir()).glob(f"{HOME_PREFIX}*"):
        with contextlib.suppress(OSError):
            if (home / OWNER_FILE).read_text().strip() == str(os.getpid()):
                found.append(home)
    return found


@pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed")
def test_signed_rpm_verifies_with_the_public_key(demo_appliance: DemoAppliance,
                                                 release_key: KeyFiles, tmp_path: Path) -> None:
    """Signed with a passphrase-protected key (the passphrase from the environment), twice
    with the same SOURCE_DATE_EPOCH: the same bytes, a signature rpm verifies with the public
    key, no rpmlint error, and no agent or GnuPG home left behind."""
    recipe = load_recipe("debian-test")
    built = []
    for name in ("one", "two"):
        out = tmp_path / name
        out.mkdir()
        rpm_file = build_rpm(RpmImage(demo_appliance.ova, "ova", True), recipe.meta,
                             recipe.package, out, payload="speed",
                             sign_key=release_key.signing_key(), console=Console(),
                             env={**EPOCH, **release_key.env})
        assert rpm_file.signed_by == release_key.fingerprint
        built.append(rpm_file.path)
    assert built[0].read_bytes() == built[1].read_bytes()
    assert signing_homes_of_this_process() == []
    assert "TEST_PASSPHRASE" not in os.environ
    assert rpm_signature_check(built[0], release_key.public, tmp_path / "rpmdb").endswith(
        "digests signatures OK")
    signature = rpm("-qp", "--qf", "%{RSAHEADER:pgpsig}", str(built[0]))
    assert release_key.fingerprint[-16:].lower() in signature
    lint = subprocess.run(["rpmlint", str(built[0])], capture_output=True, text=True,
                          check=False)
    # rpmlint checks the key against the system's rpmdb, which does not know a throwaway key.
    errors = [line for line in lint.stdout.splitlines()
              if ": E: " in line and "unknown-key" not in line]
    assert errors == [], lint.stdout


@pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed")
def test_a_passphrase_that_does_not_unlock_the_key_stops_before_rpmbuild(
    demo_appliance: DemoAppliance, release_key: KeyFiles, tmp_path: Path,
) -> None:
    recipe = load_recipe("debian-test")
    with pytest.raises(InputError, match="the passphrase from env:TEST_PASSPHRASE does not "
                                         f"unlock key {release_key.fingerprint}"):
        build_rpm(RpmImage(demo_appliance.ova, "ova", True), recipe.meta, recipe.package,
                  tmp_path, payload="speed", sign_key=release_key.signing_key(),
                  console=Console(), env={**EPOCH, "TEST_PASSPHRASE": "not it"})
    assert list(tmp_path.iterdir()) == []  # no rpmbuild directory was made


@pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed")
def test_a_passphrase_that_does_not_unlock_the_key_stops_the_appliance_before_any_stage(
    release_key: KeyFiles, tmp_path: Path,
) -> None:
    """Through `he-build appliance`: the key is tried before the disk stage, so a wrong
    passphrase is one line at once, not after the disk and OVA are built."""
    cache = tmp_path / "cache"
    env = {**os.environ, "HE_BUILDER_CACHE": str(cache), "TEST_PASSPHRASE": "not it"}
    done = subprocess.run([sys.executable, "-m", "builder.cli.he_build", "appliance", "--out",
                           str(tmp_path / "out"), "--sign-key", str(release_key.secret),
                           "--sign-passphrase", "env:TEST_PASSPHRASE"],
                          capture_output=True, text=True, check=False, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[0] == (
        f"he-build: error: {release_key.secret}: the passphrase from env:TEST_PASSPHRASE does "
        f"not unlock key {release_key.fingerprint}")
    assert "not it" not in done.stderr + done.stdout
    assert not (tmp_path / "out").exists()
    assert not cache.exists() or not any(cache.glob("*/*"))  # no stage ran
