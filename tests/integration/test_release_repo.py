"""The signed yum repository, judged by a real client: Debian's dnf installs from it over
file:// into a scratch --installroot with gpgcheck=1 and repo_gpgcheck=1, and refuses it
once anything is tampered with. createrepo_c, rpmsign, gpg and dnf are all the real tools."""

from __future__ import annotations

import configparser
import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

from builder.errors import InputError, IntegrityError
from builder.gpg import Signer, sign_detached, sign_rpm, signing_home
from builder.release.repo import RepoOptions, build_repository, run_createrepo
from tests.fixtures.appliance import DemoAppliance
from tests.fixtures.release import EPOCH, KeyFiles, build_small_rpm

pytestmark = pytest.mark.integration

DNF_CONF = """\
[main]
gpgcheck=1
repo_gpgcheck=1
install_weak_deps=0
keepcache=0
"""


def options(base_url: str, **changes: object) -> RepoOptions:
    values: dict[str, object] = {"repo_id": "he-test", "name": "he-builder test repository",
                                 "base_url": base_url, "key_name": "RPM-GPG-KEY-he-test",
                                 "revision": EPOCH}
    values.update(changes)
    return RepoOptions(**values)  # type: ignore[arg-type]


def signed(signer: Signer, rpms: list[Path], out: Path) -> list[Path]:
    return [sign_rpm(signer, rpm, out / rpm.name) for rpm in rpms]


def dnf_install(repo_file: Path, work: Path, *packages: str) -> subprocess.CompletedProcess[str]:
    """dnf as a host would run it, with only the published .repo file configured."""
    work.mkdir()
    (work / "repos.d").mkdir()
    shutil.copy(repo_file, work / "repos.d")
    (work / "dnf.conf").write_text(DNF_CONF)
    (work / "root").mkdir()
    try:
        return subprocess.run(
            ["dnf", "-y", "--config", str(work / "dnf.conf"), "--installroot",
             str(work / "root"), "--releasever", "9", "--setopt",
             f"reposdir={work / 'repos.d'}", "--setopt", f"cachedir={work / 'cache'}",
             "install", *packages],
            capture_output=True, text=True, check=False)
    finally:
        # librepo checks repomd.xml.asc in a GnuPG home of its own and leaves its agent on.
        for home in (work / "cache").glob("*/pubring"):
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)


def installed(work: Path) -> list[str]:
    return subprocess.run(["rpm", "--root", str(work / "root"), "-qa", "--qf", "%{NAME}\n"],
                          capture_output=True, text=True, check=True).stdout.split()


@pytest.fixture(scope="module")
def published(release_key: KeyFiles, small_rpm: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository of two signed packages, its base URL the directory itself."""
    work = tmp_path_factory.mktemp("repo")
    other = build_small_rpm(work, "he-other", "2.0")
    dest = work / "published"
    with signing_home(release_key.signing_key(), release_key.env,
                      signature_time=EPOCH) as signer:
        rpms = signed(signer, [small_rpm, other], work / "signed")
        build_repository(rpms, dest, signer=signer, options=options(f"file://{dest}"))
    return dest


def test_layout_and_repo_file(published: Path, release_key: KeyFiles) -> None:
    assert sorted(p.name for p in published.iterdir()) == [
        "Packages", "RPM-GPG-KEY-he-test", "he-test.repo", "repodata"]
    assert sorted(p.name for p in (published / "Packages").iterdir()) == [
        "he-hello-1.0-1.noarch.rpm", "he-other-2.0-1.noarch.rpm"]
    assert (published / "repodata" / "repomd.xml.asc").read_text().startswith(
        "-----BEGIN PGP SIGNATURE-----")
    assert not list((published / "repodata").glob("*.sqlite*"))
    repo = configparser.RawConfigParser()
    repo.read(published / "he-test.repo")
    assert dict(repo["he-test"]) == {
        "name": "he-builder test repository", "baseurl": f"file://{published}", "enabled": "1",
        "gpgcheck": "1", "repo_gpgcheck": "1",
        "gpgkey": f"file://{published}/RPM-GPG-KEY-he-test"}
    key_listing = subprocess.run(["gpg", "--batch", "--with-colons", "--show-keys",
                                  str(published / "RPM-GPG-KEY-he-test")],
                                 capture_output=True, text=True, check=True).stdout
    assert release_key.fingerprint in key_listing
    assert "<revision>1700000000</revision>" in (published / "repodata/repomd.xml").read_text()
    assert (published.stat().st_mode & 0o777) == 0o755


def test_dnf_installs_with_both_gpg_checks(published: Path, tmp_path: Path) -> None:
    done = dnf_install(published / "he-test.repo", tmp_path / "dnf", "he-hello", "he-other")
    assert done.returncode == 0, done.stdout + done.stderr
    # dnf took the key from the URL in the .repo file, and checked with it.
    assert "Importing GPG key" in done.stderr
    assert sorted(installed(tmp_path / "dnf")) == ["gpg-pubkey", "he-hello", "he-other"]
    assert (tmp_path / "dnf/root/usr/share/he-hello/version").read_text() == "1.0\n"


def test_dnf_refuses_a_tampered_rpm(published: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(published, copy)
    rpm = copy / "Packages" / "he-hello-1.0-1.noarch.rpm"
    data = bytearray(rpm.read_bytes())
    data[-100] ^= 0xFF  # one bit pattern in the payload
    rpm.write_bytes(bytes(data))
    repo_file = tmp_path / "he-test.repo"
    repo_file.write_text((copy / "he-test.repo").read_text().replace(str(published), str(copy)))
    done = dnf_install(repo_file, tmp_path / "dnf", "he-hello")
    assert done.returncode != 0
    assert "he-hello" not in installed(tmp_path / "dnf")


def test_dnf_refuses_a_tampered_repomd(published: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(published, copy)
    repomd = copy / "repodata" / "repomd.xml"
    repomd.write_text(repomd.read_text().replace("<revision>1700000000<",
                                                 "<revision>1700000001<"))
    repo_file = tmp_path / "he-test.repo"
    repo_file.write_text((copy / "he-test.repo").read_text().replace(str(published), str(copy)))
    done = dnf_install(repo_file, tmp_path / "dnf", "he-hello")
    assert done.returncode != 0
    assert "repomd.xml GPG signature verification error" in done.stdout + done.stderr
    assert "he-hello" not in installed(tmp_path / "dnf")


def test_dnf_refuses_a_package_signed_by_another_key(
        published: Path, release_key: KeyFiles, foreign_key: KeyFiles, small_rpm: Path,
        tmp_path: Path) -> None:
    # A mirror that rebuilt the metadata (and even had it signed) cannot swap a package:
    # gpgcheck=1 checks the package's own signature against the published key.
    copy = tmp_path / "copy"
    shutil.copytree(published, copy)
    with signing_home(foreign_key.signing_key(), {}) as other:
        sign_rpm(other, small_rpm, copy / "Packages" / small_rpm.name)
    shutil.rmtree(copy / "repodata")
    run_createrepo(copy, options(f"file://{copy}"))
    with signing_home(release_key.signing_key(), release_key.env) as signer:
        sign_detached(signer, copy / "repodata" / "repomd.xml")
    repo_file = tmp_path / "he-test.repo"
    repo_file.write_text((copy / "he-test.repo").read_text().replace(str(published), str(copy)))
    done = dnf_install(repo_file, tmp_path / "dnf", "he-hello")
    assert done.returncode != 0
    assert "GPG check FAILED" in done.stdout + done.stderr
    assert "he-hello" not in installed(tmp_path / "dnf")


def test_same_inputs_give_the_same_bytes(release_key: KeyFiles, small_rpm: Path,
                                         tmp_path: Path) -> None:
    roots = []
    for run_number in (1, 2):
        with signing_home(release_key.signing_key(), release_key.env,
                          signature_time=EPOCH) as signer:
            rpms = signed(signer, [small_rpm], tmp_path / f"signed{run_number}")
            dest = tmp_path / f"repo{run_number}"
            build_repository(rpms, dest, signer=signer,
                             options=options("https://example.invalid/he"))
        roots.append(dest)
    files = sorted(str(p.relative_to(roots[0])) for p in roots[0].rglob("*") if p.is_file())
    assert "repodata/repomd.xml.asc" in files
    match, mismatch, errors = filecmp.cmpfiles(roots[0], roots[1], files, shallow=False)
    assert (mismatch, errors) == ([], [])
    assert len(match) == len(files)


def test_unsigned_or_foreign_packages_are_not_published(
        release_key: KeyFiles, foreign_key: KeyFiles, small_rpm: Path, tmp_path: Path) -> None:
    with signing_home(foreign_key.signing_key(), {}) as other:
        foreign = sign_rpm(other, small_rpm, tmp_path / "foreign" / small_rpm.name)
    dest = tmp_path / "repo"
    with signing_home(release_key.signing_key(), release_key.env) as signer:
        with pytest.raises(IntegrityError, match="not signed"):
            build_repository([small_rpm], dest, signer=signer, options=options("file:///r"))
        with pytest.raises(IntegrityError, match="SIGNATURES NOT OK"):
            build_repository([foreign], dest, signer=signer, options=options("file:///r"))
        with pytest.raises(InputError, match="two RPMs named"):
            build_repository([foreign, foreign], dest, signer=signer,
                             options=options("file:///r"))
    assert not dest.exists()
    assert list(tmp_path.glob(".repo*")) == []  # no staging directory left behind


def test_the_demo_appliance_rpm_installs_from_the_repository(
        demo_appliance: DemoAppliance, release_key: KeyFiles, tmp_path: Path) -> None:
    dest = tmp_path / "published"
    with signing_home(release_key.signing_key(), release_key.env,
                      signature_time=EPOCH) as signer:
        rpm = sign_rpm(signer, demo_appliance.rpm, tmp_path / "signed" / demo_appliance.rpm.name)
        build_repository([rpm], dest, signer=signer, options=options(f"file://{dest}"))
    done = dnf_install(dest / "he-test.repo", tmp_path / "dnf", "ovirt-engine-appliance")
    assert done.returncode == 0, done.stdout + done.stderr
    ova = tmp_path / "dnf/root/usr/share/ovirt-engine-appliance" / demo_appliance.ova.name
    assert filecmp.cmp(ova, demo_appliance.ova, shallow=False)
