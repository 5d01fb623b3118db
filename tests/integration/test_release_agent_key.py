"""Signing with `agent:FINGERPRINT`: a key of the operator's own GnuPG home, unlocked in its
running gpg-agent (real gpg, gpg-agent, gpg-preset-passphrase, rpmsign, rpmkeys).

The "operator's home" is a throwaway GNUPGHOME under a short /tmp path (the agent's socket
path must fit in 108 bytes) holding the committed demo key, preset in its agent as an operator
would, and the release key of tests/fixtures/release.py, never unlocked. Every test checks
that the release left that home as it was and its agent running."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from builder.console import Console
from builder.disk.registry import load_recipe
from builder.errors import InputError
from builder.gpg import (
    AgentKey,
    SigningKey,
    agent_key_missing,
    export_public_key,
    fingerprint_of,
    sign_detached,
    sign_rpm,
    signing_home,
    verify_detached,
)
from builder.resources import data_path
from builder.rpm import RpmImage, build_rpm
from tests.fixtures.appliance import DemoAppliance
from tests.fixtures.release import EPOCH, KeyFiles, gpg_verify, rpm_signature_check

pytestmark = pytest.mark.integration

KEYS = data_path("examples", "keys")
DEMO_FINGERPRINT = "2EC3AEDE1EE9F3D790D266DF646642753200F72A"
DEMO_KEYGRIP = "E4C50EEE37B163FA9AD886B6FB929458E5C0841C"
DEMO_PASSPHRASE = (KEYS / "demo-release.passphrase").read_text().rstrip("\n")
PRESET = Path("/usr/lib/gnupg/gpg-preset-passphrase")


@dataclass(frozen=True)
class OperatorHome:
    """A GnuPG home with a running agent: the demo key unlocked (preset), `locked` not."""

    home: Path
    agent_pid: int
    locked: str

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "GNUPGHOME": str(self.home)}


def gpg(home: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", *args], input=stdin,
                          capture_output=True, check=True, timeout=60)


def agent_pid(home: Path) -> int | None:
    done = subprocess.run(["gpg-connect-agent", "--no-autostart", "--homedir", str(home),
                           "getinfo pid", "/bye"], capture_output=True, text=True, check=False,
                          timeout=30)
    pids = [int(line[2:]) for line in done.stdout.splitlines() if line.startswith("D ")]
    return pids[0] if pids else None


def snapshot(home: Path) -> dict[str, tuple[int, str]]:
    """Every entry of the home: its mode and, for a file, its content's digest. gpg takes
    (and removes) lock files in the home while it reads the keyring, so the directory's own
    mtime is left out; nothing else changes when a release signs with a key in use."""
    entries = {}
    for path in sorted(home.rglob("*")):
        mode = path.lstat().st_mode
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        entries[path.relative_to(home).as_posix()] = (mode, digest)
    return entries


@contextlib.contextmanager
def operator_home(locked: KeyFiles) -> Iterator[OperatorHome]:
    """A throwaway home with a running agent: the demo key preset in it, `locked` not. The
    agent is killed and the home removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="he-op-", dir="/tmp"))
    try:
        home.chmod(0o700)
        (home / "gpg-agent.conf").write_text("allow-preset-passphrase\n")
        gpg(home, "--import", str(KEYS / "demo-release.sec.asc"))
        gpg(home, "--import", str(locked.secret))
        subprocess.run(["gpg-connect-agent", "--homedir", str(home), "/bye"], check=True,
                       capture_output=True, timeout=30)
        subprocess.run([str(PRESET), "--preset", DEMO_KEYGRIP], input=DEMO_PASSPHRASE.encode(),
                       env={**os.environ, "GNUPGHOME": str(home)}, check=True, timeout=30)
        # The operator has signed with the key before: gpg-agent rewrites an imported key's
        # file in its own format the first time it unlocks it (the one change gpg would
        # otherwise make in the home), and the preset is checked.
        gpg(home, "--pinentry-mode", "error", "--local-user", DEMO_FINGERPRINT,
            "--detach-sign", stdin=b"warm-up\n")
        pid = agent_pid(home)
        assert pid is not None
        yield OperatorHome(home, pid, locked.fingerprint)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False,
                       timeout=30)
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def left_as_it_was(operator: OperatorHome) -> Iterator[OperatorHome]:
    """Checks afterwards that the home holds the same files with the same bytes, and that
    its agent still runs."""
    before = snapshot(operator.home)
    yield operator
    assert snapshot(operator.home) == before
    assert agent_pid(operator.home) == operator.agent_pid


@pytest.fixture
def operator(release_key: KeyFiles) -> Iterator[OperatorHome]:
    with operator_home(release_key) as home:
        yield home


@pytest.fixture
def untouched(operator: OperatorHome) -> Iterator[OperatorHome]:
    """The operator's home, checked afterwards: same files, same bytes, same agent."""
    with left_as_it_was(operator):
        yield operator


def demo_file_key() -> SigningKey:
    return SigningKey(KEYS / "demo-release.sec.asc",
                      passphrase=f"file:{KEYS / 'demo-release.passphrase'}")


def test_an_agent_key_signs_exactly_as_its_key_file_does(untouched: OperatorHome,
                                                         small_rpm: Path,
                                                         tmp_path: Path) -> None:
    data = tmp_path / "SHA256SUMS"
    data.write_text("0" * 64 + "  file\n")
    made: dict[str, dict[str, bytes]] = {}
    for name, key in (("agent", AgentKey(DEMO_FINGERPRINT, untouched.home)),
                      ("file", demo_file_key())):
        out = tmp_path / name
        out.mkdir()
        with signing_home(key, {}, signature_time=EPOCH) as signer:
            assert signer.fingerprint == DEMO_FINGERPRINT
            assert signer.signature_time == EPOCH
            signature = sign_detached(signer, data, out / "SHA256SUMS.asc")
            public = export_public_key(signer, out / "RPM-GPG-KEY")
            rpm = sign_rpm(signer, small_rpm, out / small_rpm.name)
        made[name] = {p.name: p.read_bytes() for p in (signature, public, rpm)}
        assert fingerprint_of(public) == DEMO_FINGERPRINT
        assert verify_detached(signature, data, public) == DEMO_FINGERPRINT
        done = gpg_verify(signature, data, public, tmp_path / f"user-{name}")
        assert done.returncode == 0, done.stderr
        validsig = next(line.split() for line in done.stdout.splitlines() if "VALIDSIG" in line)
        assert validsig[2] == DEMO_FINGERPRINT and validsig[4] == str(EPOCH)
        assert rpm_signature_check(rpm, public, tmp_path / f"db-{name}").endswith(
            "digests signatures OK")
    # Same digest algorithm, same signature time, same key: the same bytes.
    assert made["agent"] == made["file"]


def test_without_a_signature_time_the_signature_is_made_now(untouched: OperatorHome,
                                                            tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(b"payload")
    with signing_home(AgentKey(DEMO_FINGERPRINT, untouched.home), {}) as signer:
        assert signer.signature_time is None
        assert not any("faked" in option for option in signer.options)
        signature = sign_detached(signer, data)
    assert verify_detached(signature, data, KEYS / "demo-release.pub.asc") == DEMO_FINGERPRINT


def test_a_key_the_agent_has_not_unlocked_fails_at_once(untouched: OperatorHome) -> None:
    with pytest.raises(InputError) as caught, \
            signing_home(AgentKey(untouched.locked, untouched.home), {}):
        pass
    assert caught.value.message == (
        f"agent:{untouched.locked}: key {untouched.locked} is not unlocked in the gpg-agent "
        f"of {untouched.home}")
    assert "gpg-preset-passphrase" in (caught.value.hint or "")
    # The failed test signature went to a pipe: gpg removes its --output file on failure, and
    # as root an `--output /dev/null` would have removed the device.
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_agent_references_are_found_only_where_gpg_lists_the_secret_key(
        untouched: OperatorHome, tmp_path: Path) -> None:
    assert agent_key_missing(AgentKey(DEMO_FINGERPRINT, untouched.home)) is None
    unknown = "0" * 40
    assert agent_key_missing(AgentKey(unknown, untouched.home)) == (
        f"no secret key {unknown} in {untouched.home}")
    assert agent_key_missing(AgentKey(DEMO_FINGERPRINT, tmp_path / "none")) == (
        f"no GnuPG home {tmp_path / 'none'}")
    # A public key only: gpg lists it, but not as a secret key.
    public_only = Path(tempfile.mkdtemp(prefix="he-pub-", dir="/tmp"))
    try:
        gpg(public_only, "--import", str(KEYS / "demo-release.pub.asc"))
        assert agent_key_missing(AgentKey(DEMO_FINGERPRINT, public_only)) == (
            f"no secret key {DEMO_FINGERPRINT} in {public_only}")
    finally:
        subprocess.run(["gpgconf", "--homedir", str(public_only), "--kill", "all"],
                       check=False, timeout=30)
        shutil.rmtree(public_only)


def test_a_home_whose_agent_is_not_running_is_not_used_and_no_agent_is_started(
        tmp_path: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="he-idle-", dir="/tmp"))
    try:
        home.chmod(0o700)
        gpg(home, "--import", str(KEYS / "demo-release.sec.asc"))
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=True,
                       timeout=30)
        assert agent_pid(home) is None
        key = AgentKey(DEMO_FINGERPRINT, home)
        assert agent_key_missing(key) == f"no gpg-agent runs for {home}"
        with pytest.raises(InputError, match=f"no gpg-agent runs for {home}"), \
                signing_home(key, {}):
            pass
        assert agent_pid(home) is None
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False,
                       timeout=30)
        shutil.rmtree(home)


# --- through the release pipeline ----------------------------------------------------------

INVENTORY = """\
sites:
  agentsmoke:
    fqdn: engine.agentsmoke.example.com
    root_password: file:root-password
    admin_password: file:admin-password
"""


def release_file(work: Path, *keys: str) -> Path:
    """A release of the demo recipe whose signing.key lists `keys`, and no passphrase."""
    for name in ("root-password", "admin-password"):
        (work / name).write_text(f"{name}-4-Tests\n")
        (work / name).chmod(0o600)
    (work / "inventory.yaml").write_text(INVENTORY)
    path = work / "release.yaml"
    path.write_text("recipe: debian-test\nsigning:\n  key:\n"
                    + "".join(f"    - {key}\n" for key in keys)
                    + "smoke:\n  inventory: inventory.yaml\n  site: agentsmoke\n")
    return path


def key_of(release: Path, operator: OperatorHome, tmp_path: Path) -> SigningKey | AgentKey:
    from builder.pipeline.release import release_context, signing_key  # noqa: PLC0415
    from builder.release.config import load_release  # noqa: PLC0415

    ctx = release_context(load_release(release), publish=None, cache_root=tmp_path / "cache",
                          env={"GNUPGHOME": str(operator.home), "HOME": str(tmp_path)})
    return signing_key(ctx)


def test_the_first_agent_key_the_home_holds_is_chosen(untouched: OperatorHome,
                                                      tmp_path: Path) -> None:
    unknown = "0123456789ABCDEF0123456789ABCDEF01234567"
    spaced = " ".join(DEMO_FINGERPRINT[i:i + 4] for i in range(0, 40, 4)).lower()
    demo_file = f"file:{KEYS / 'demo-release.sec.asc'}"
    release = release_file(tmp_path, f"agent:{unknown}", f"agent:{spaced}", demo_file)
    assert key_of(release, untouched, tmp_path) == AgentKey(DEMO_FINGERPRINT, untouched.home)
    # An unknown fingerprint is passed over for the next reference, a file here.
    release = release_file(tmp_path, f"agent:{unknown}", demo_file)
    assert key_of(release, untouched, tmp_path) == SigningKey(KEYS / "demo-release.sec.asc")
    # Nothing usable: one line naming the field, with what each reference lacked.
    release = release_file(tmp_path, f"agent:{unknown}", "env:HE_NO_SUCH_KEY")
    with pytest.raises(InputError) as caught:
        key_of(release, untouched, tmp_path)
    assert caught.value.message == (
        f"{release}: signing.key: none of agent:{unknown} (no secret key {unknown} in "
        f"{untouched.home}), env:HE_NO_SUCH_KEY is set or exists")


def test_a_release_with_a_locked_agent_key_stops_before_any_stage(untouched: OperatorHome,
                                                                  tmp_path: Path) -> None:
    release = release_file(tmp_path, f"agent:{untouched.locked}")
    cache = tmp_path / "cache"
    env = {**untouched.env, "HE_BUILDER_CACHE": str(cache)}
    # A pinentry waiting for an answer would hang here: the timeout turns that into a failure.
    done = subprocess.run([sys.executable, "-m", "builder.cli.he_build", "release", "--file",
                           str(release), "--publish", str(tmp_path / "publish")],
                          capture_output=True, text=True, check=False, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == (f"he-build: error: agent:{untouched.locked}: key {untouched.locked} is "
                        f"not unlocked in the gpg-agent of {untouched.home}")
    assert lines[1:] == ["he-build: hint: unlock it in the agent first (gpg-preset-passphrase, "
                         "or one signature made by hand); he-build never asks for a "
                         "passphrase"]  # no stage started
    assert not (tmp_path / "publish").exists()
    assert not cache.exists() or not any(cache.glob("*/*"))  # nothing stored


# --- through he-build appliance ------------------------------------------------------------


def test_the_appliance_rpm_signed_by_an_agent_key_verifies(untouched: OperatorHome,
                                                           demo_appliance: DemoAppliance,
                                                           tmp_path: Path) -> None:
    recipe = load_recipe("debian-test")
    built = build_rpm(RpmImage(demo_appliance.ova, "ova", True), recipe.meta, recipe.package,
                      tmp_path, payload="speed",
                      sign_key=AgentKey(DEMO_FINGERPRINT, untouched.home), console=Console(),
                      env={"SOURCE_DATE_EPOCH": str(EPOCH)})
    assert built.signed_by == DEMO_FINGERPRINT
    assert rpm_signature_check(built.path, KEYS / "demo-release.pub.asc", tmp_path / "db").endswith(
        "digests signatures OK")


def appliance_argv(out: Path, key: str) -> list[str]:
    return [sys.executable, "-m", "builder.cli.he_build", "appliance", "--out", str(out),
            "--sign-key", key]


@pytest.mark.parametrize("which", ["locked", "unknown"])
def test_an_appliance_with_an_agent_key_that_cannot_sign_stops_before_any_stage(
        which: str, untouched: OperatorHome, tmp_path: Path) -> None:
    fingerprint = untouched.locked if which == "locked" else "0" * 40
    reason = (f"key {fingerprint} is not unlocked in the gpg-agent of {untouched.home}"
              if which == "locked" else f"no secret key {fingerprint} in {untouched.home}")
    cache = tmp_path / "cache"
    env = {**untouched.env, "HE_BUILDER_CACHE": str(cache)}
    done = subprocess.run(appliance_argv(tmp_path / "out", f"agent:{fingerprint.lower()}"),
                          capture_output=True, text=True, check=False, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[0] == f"he-build: error: agent:{fingerprint}: {reason}"
    assert not (tmp_path / "out").exists()
    assert not cache.exists() or not any(cache.glob("*/*"))  # no stage ran


def test_a_signature_time_before_the_signing_subkey_is_clamped_to_it(tmp_path: Path) -> None:
    """An operator's key often signs with a subkey newer than its primary key: a
    SOURCE_DATE_EPOCH between the two is moved to the subkey's creation, so gpg signs with
    the subkey it would use today (before it existed, gpg would find no key to sign with)."""
    primary_time, subkey_time = 1500000000, 1650000000
    home = Path(tempfile.mkdtemp(prefix="he-sub-", dir="/tmp"))
    try:
        home.chmod(0o700)
        make = ["--passphrase", "", "--pinentry-mode", "loopback"]
        gpg(home, *make, "--faked-system-time", f"{primary_time}!", "--quick-gen-key",
            "Subkey Signer <s@example.invalid>", "rsa2048", "cert", "0")
        listing = gpg(home, "--with-colons", "--list-secret-keys").stdout.decode()
        primary = next(line.split(":")[9] for line in listing.splitlines()
                       if line.startswith("fpr"))
        gpg(home, *make, "--faked-system-time", f"{subkey_time}!", "--quick-add-key", primary,
            "rsa2048", "sign", "0")
        data = tmp_path / "data"
        data.write_bytes(b"signed by the subkey")
        before = snapshot(home)
        with signing_home(AgentKey(primary, home), {}, signature_time=EPOCH - 10**8) as signer:
            assert signer.signature_time == subkey_time
            signature = sign_detached(signer, data)
            public = export_public_key(signer, tmp_path / "public.asc")
        assert snapshot(home) == before
        done = gpg_verify(signature, data, public, tmp_path / "user-home")
        validsig = next(line.split() for line in done.stdout.splitlines()
                        if "VALIDSIG" in line)
        assert validsig[2] != primary and validsig[-1] == primary  # the subkey signed
        assert validsig[4] == str(subkey_time)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False,
                       timeout=30)
        shutil.rmtree(home, ignore_errors=True)
