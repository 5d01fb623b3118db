"""`he-build appliance --sign-key FILE|agent:FINGERPRINT [--sign-passphrase env:NAME|file:PATH]`:
a key or a passphrase reference that cannot be used is one line and exit 2 before anything is
built (no stage directory, no cache entry). Whether the key signs (the passphrase unlocks it,
the agent holds it unlocked), the build tries before any stage runs: with real keys in
tests/integration/test_rpm_wrap.py and tests/integration/test_release_agent_key.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.cli.he_build import main

FINGERPRINT = "2EC3AEDE1EE9F3D790D266DF646642753200F72A"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    key = tmp_path / "secret.asc"
    key.write_text("-----BEGIN PGP PRIVATE KEY BLOCK-----\n")
    return key


@pytest.mark.parametrize(("options", "message"), [
    (["--sign-passphrase", "env:PW"], "--sign-passphrase: there is no --sign-key to unlock"),
    (["--sign-key", "{tmp}/missing.asc"], "--sign-key: signing key not found: {tmp}/missing.asc"),
    (["--sign-key", "{key}", "--format", "ovf"], "--sign-key: --format ovf builds no RPM to sign"),
    (["--sign-key", "{key}", "--sign-passphrase", "env:HE_TEST_UNSET"],
     "signing key passphrase: environment variable HE_TEST_UNSET is not set"),
    (["--sign-key", "{key}", "--sign-passphrase", "hunter2"],
     "signing key passphrase: the reference is neither env:NAME nor file:PATH"),
    (["--sign-key", "{key}", "--sign-passphrase", "file:{tmp}/none"],
     "signing key passphrase: cannot read {tmp}/none: No such file or directory"),
    (["--sign-key", f"agent:{FINGERPRINT}", "--sign-passphrase", "env:PW"],
     "--sign-passphrase: an agent: key is unlocked in its gpg-agent; no passphrase is read for "
     "it"),
    (["--sign-key", f"agent:{FINGERPRINT[-8:]}"],
     "--sign-key: agent:FINGERPRINT needs the key's full fingerprint, 40 hex digits (spaces "
     "allowed)"),
], ids=["passphrase without key", "missing key", "no RPM", "unset variable", "literal passphrase",
        "missing file", "agent key with a passphrase", "agent key by its short id"])
def test_a_signing_option_that_cannot_be_used_stops_the_build_first(
    options: list[str], message: str, key_file: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HE_BUILDER_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HE_TEST_UNSET", raising=False)
    argv = [o.format(tmp=tmp_path, key=key_file) for o in options]
    assert main(["appliance", "--out", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "he-build: error: " + message.format(tmp=tmp_path)
    assert "hunter2" not in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
