"""SHA256SUMS checked by coreutils' `sha256sum -c` and its signature by `gpg --verify`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from builder.errors import InputError, IntegrityError
from builder.gpg import signing_home, verify_detached
from builder.release.checksums import sign_sha256sums, verify_sha256sums, write_sha256sums
from tests.fixtures.release import EPOCH, KeyFiles, gpg_verify

pytestmark = pytest.mark.integration


def publish_tree(root: Path) -> Path:
    (root / "repo" / "Packages").mkdir(parents=True)
    (root / "repo" / "Packages" / "a-1.0-1.noarch.rpm").write_bytes(b"rpm bytes")
    (root / "repo" / "RPM-GPG-KEY-x").write_text("key\n")
    (root / "appliance.ova").write_bytes(os.urandom(100_000))
    (root / "sbom.spdx.json").write_text("{}\n")
    (root / "name with spaces.txt").write_text("x\n")
    return root


def sha256sum_check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=root,
                          capture_output=True, text=True, check=False)


def test_sha256sum_and_gpg_accept_the_signed_sums(release_key: KeyFiles, tmp_path: Path) -> None:
    root = publish_tree(tmp_path / "publish")
    with signing_home(release_key.signing_key(), release_key.env,
                      signature_time=EPOCH) as signer:
        sums = write_sha256sums(root)
        signature = sign_sha256sums(signer, sums)
    assert signature.name == "SHA256SUMS.asc"
    lines = sums.read_text().splitlines()
    assert [line.split("  ", 1)[1] for line in lines] == [
        "appliance.ova", "name with spaces.txt", "repo/Packages/a-1.0-1.noarch.rpm",
        "repo/RPM-GPG-KEY-x", "sbom.spdx.json"]
    done = sha256sum_check(root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": OK") == 5
    verified = gpg_verify(signature, sums, release_key.public, tmp_path / "user-home")
    assert verified.returncode == 0, verified.stderr
    assert verify_detached(signature, sums, release_key.public) == release_key.fingerprint
    assert verify_sha256sums(root) == 5


def test_a_rewrite_lists_the_same_files_and_ignores_its_own(tmp_path: Path) -> None:
    root = publish_tree(tmp_path / "publish")
    first = write_sha256sums(root).read_bytes()
    (root / "SHA256SUMS.asc").write_text("an old signature\n")
    assert write_sha256sums(root).read_bytes() == first


def test_tampering_is_found_by_sha256sum_and_by_us(tmp_path: Path) -> None:
    root = publish_tree(tmp_path / "publish")
    write_sha256sums(root)
    (root / "sbom.spdx.json").write_text("{\"changed\": true}\n")
    done = sha256sum_check(root)
    assert done.returncode != 0
    assert "sbom.spdx.json: FAILED" in done.stdout
    with pytest.raises(IntegrityError, match=r"sbom\.spdx\.json does not match"):
        verify_sha256sums(root)


def test_an_unlisted_or_missing_file_fails_verification(tmp_path: Path) -> None:
    root = publish_tree(tmp_path / "publish")
    write_sha256sums(root)
    (root / "extra.bin").write_bytes(b"smuggled")
    with pytest.raises(IntegrityError, match=r"extra\.bin is not in SHA256SUMS"):
        verify_sha256sums(root)
    (root / "extra.bin").unlink()
    (root / "appliance.ova").unlink()
    with pytest.raises(IntegrityError, match=r"appliance\.ova is listed in SHA256SUMS but missing"):
        verify_sha256sums(root)


@pytest.mark.parametrize("name", ["back\\slash", "line\nbreak"])
def test_names_sha256sum_would_escape_are_refused(tmp_path: Path, name: str) -> None:
    root = tmp_path / "publish"
    root.mkdir()
    (root / name).write_text("x")
    with pytest.raises(InputError, match="backslash or line break"):
        write_sha256sums(root)
    assert not (root / "SHA256SUMS").exists()


def test_links_are_refused(tmp_path: Path) -> None:
    root = publish_tree(tmp_path / "publish")
    (root / "link").symlink_to(root / "appliance.ova")
    with pytest.raises(InputError, match="link is not a regular file"):
        write_sha256sums(root)
