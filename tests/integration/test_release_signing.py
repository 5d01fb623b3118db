"""Signing in a private GnuPG home (real gpg, gpgv, rpmbuild, rpmsign, rpmkeys)."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest

from builder.errors import InputError, IntegrityError
from builder.gpg import (
    SigningKey,
    export_public_key,
    fingerprint_of,
    sign_detached,
    sign_rpm,
    signing_home,
    verify_detached,
)
from tests.fixtures.release import (
    EPOCH,
    KEY_CREATED,
    PASSPHRASE,
    KeyFiles,
    gpg_verify,
    rpm_signature_check,
)

pytestmark = pytest.mark.integration

def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def agent_running_for(home: Path) -> bool:
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"gpg-agent" in cmdline and str(home).encode() in cmdline:
            return True
    return False


def test_detached_signature_verifies_with_gpg_and_gpgv(release_key: KeyFiles,
                                                      tmp_path: Path) -> None:
    data = tmp_path / "SHA256SUMS"
    data.write_text("0" * 64 + "  file\n")
    with signing_home(release_key.signing_key(), release_key.env) as signer:
        assert signer.fingerprint == release_key.fingerprint
        signature = sign_detached(signer, data)
        public = export_public_key(signer, tmp_path / "RPM-GPG-KEY-test")
        home = signer.home
    assert signature == tmp_path / "SHA256SUMS.asc"
    assert signature.read_text().startswith("-----BEGIN PGP SIGNATURE-----")
    assert fingerprint_of(public) == release_key.fingerprint
    done = gpg_verify(signature, data, public, tmp_path / "user-home")
    assert done.returncode == 0, done.stderr
    assert f"VALIDSIG {release_key.fingerprint}" in done.stdout
    assert verify_detached(signature, data, public) == release_key.fingerprint
    # The private home and its agent are gone.
    assert not home.exists()
    assert not agent_running_for(home)


def test_passphrase_from_a_file(release_key: KeyFiles, tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    key = SigningKey(release_key.secret, passphrase=f"file:{secret}")
    data = tmp_path / "data"
    data.write_bytes(b"payload")
    with signing_home(key, {}) as signer:
        sign_detached(signer, data)
    assert verify_detached(tmp_path / "data.asc", data, release_key.public)


def test_the_passphrase_stays_out_of_logs_and_of_the_home(
        release_key: KeyFiles, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    with signing_home(release_key.signing_key(), release_key.env) as signer:
        for path in signer.home.rglob("*"):
            if path.is_file():
                assert PASSPHRASE.encode() not in path.read_bytes(), path
    assert "gpg-preset-passphrase" in caplog.text  # the preset ran, and was logged...
    assert PASSPHRASE not in caplog.text  # ...without the secret


@pytest.mark.parametrize(("reference", "env", "message"), [
    ("env:TEST_PASSPHRASE", {"TEST_PASSPHRASE": "wrong"}, "does not unlock key"),
    (None, {}, "cannot sign without a passphrase"),
    ("env:UNSET_VARIABLE", {}, "environment variable UNSET_VARIABLE is not set"),
    ("hunter2", {}, "is neither env:NAME nor file:PATH"),
    ("file:/nonexistent/passphrase", {}, "cannot read /nonexistent/passphrase"),
])
def test_bad_passphrases_are_one_line(release_key: KeyFiles, reference: str | None,
                                      env: dict[str, str], message: str) -> None:
    with pytest.raises(InputError, match=message) as caught, \
            signing_home(SigningKey(release_key.secret, passphrase=reference), env):
        pass
    assert "\n" not in caught.value.message
    assert "wrong" not in caught.value.message and "hunter2" not in caught.value.message
    # The failed test signature went to a pipe, not to `--output /dev/null`: gpg removes its
    # output file when signing fails, and as root that removed the device itself.
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_file_without_a_secret_key_is_refused(release_key: KeyFiles, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="holds no secret key"), \
            signing_home(SigningKey(release_key.public), {}):
        pass
    junk = tmp_path / "junk.asc"
    junk.write_text("not a key\n")
    with pytest.raises(InputError, match="not an OpenPGP key"), signing_home(SigningKey(junk), {}):
        pass


def test_a_file_with_two_keys_needs_a_fingerprint(release_key: KeyFiles, foreign_key: KeyFiles,
                                                 tmp_path: Path) -> None:
    both = tmp_path / "both.asc"
    both.write_bytes(foreign_key.secret.read_bytes() + release_key.secret.read_bytes())
    with pytest.raises(InputError, match="holds 2 secret keys"), \
            signing_home(SigningKey(both), {}):
        pass
    chosen = SigningKey(both, passphrase="env:TEST_PASSPHRASE",
                        fingerprint=release_key.fingerprint[-16:])
    with signing_home(chosen, release_key.env) as signer:
        assert signer.fingerprint == release_key.fingerprint


def test_signatures_at_a_fixed_time_are_byte_identical(release_key: KeyFiles,
                                                      tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(b"same bytes")
    signatures = []
    for run_number in (1, 2):
        with signing_home(release_key.signing_key(), release_key.env,
                          signature_time=EPOCH) as signer:
            signatures.append(sign_detached(signer, data, tmp_path / f"sig{run_number}.asc"))
    assert signatures[0].read_bytes() == signatures[1].read_bytes()
    done = gpg_verify(signatures[0], data, release_key.public, tmp_path / "user-home")
    validsig = next(line.split() for line in done.stdout.splitlines() if "VALIDSIG" in line)
    assert validsig[4] == str(EPOCH)  # the signature's creation time


def test_a_fixed_time_before_the_key_is_clamped_to_its_creation(release_key: KeyFiles,
                                                               tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(b"bytes")
    with signing_home(release_key.signing_key(), release_key.env,
                      signature_time=KEY_CREATED - 1000) as signer:
        assert signer.signature_time == KEY_CREATED
        sign_detached(signer, data)
    done = gpg_verify(tmp_path / "data.asc", data, release_key.public, tmp_path / "user-home")
    assert done.returncode == 0
    assert f" {KEY_CREATED} " in next(
        line for line in done.stdout.splitlines() if "VALIDSIG" in line)


def test_verify_refuses_tampered_data_and_other_keys(release_key: KeyFiles, foreign_key: KeyFiles,
                                                     tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(b"original")
    with signing_home(release_key.signing_key(), release_key.env) as signer:
        signature = sign_detached(signer, data)
    with pytest.raises(IntegrityError, match="not a good signature"):
        verify_detached(signature, data, foreign_key.public)
    data.write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="not a good signature"):
        verify_detached(signature, data, release_key.public)


def test_sign_rpm_writes_a_signed_copy(release_key: KeyFiles, small_rpm: Path,
                                       tmp_path: Path) -> None:
    before = sha256(small_rpm)
    with signing_home(release_key.signing_key(), release_key.env,
                      signature_time=EPOCH) as signer:
        first = sign_rpm(signer, small_rpm, tmp_path / "one" / small_rpm.name)
        second = sign_rpm(signer, small_rpm, tmp_path / "two" / small_rpm.name)
    assert sha256(small_rpm) == before  # the input is untouched
    assert first.read_bytes() == second.read_bytes()  # deterministic at a fixed time
    assert rpm_signature_check(first, release_key.public, tmp_path / "db").endswith(
        "digests signatures OK")
    info = subprocess.run(["rpm", "-qp", "--qf", "%{RSAHEADER:pgpsig}", str(first)],
                          capture_output=True, text=True, check=True).stdout
    assert release_key.fingerprint[-16:].lower() in info
    unsigned = rpm_signature_check(small_rpm, release_key.public, tmp_path / "db")
    assert "signatures" not in unsigned  # rpm's word for a package nobody signed
    assert not list(first.parent.glob(".*partial*"))
