"""OpenPGP signing in a private, short-lived GnuPG home, or with a key of the operator's own
GnuPG home unlocked in its gpg-agent: detached signatures, RPM signatures, public key export
and verification. The passphrase never reaches argv or a file of ours."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.atomic import staged_file, write_atomic
from builder.errors import CommandError, InputError, IntegrityError, MissingPrerequisiteError
from builder.inventory.files import FileRefused, read_regular_file
from builder.inventory.secrets import read_env
from builder.repro import sha256_file
from builder.run import require_tool, run

# gpg-agent's socket lives in the home when /run/user/UID does not exist: a unix socket path
# must stay under 108 bytes, so the home is made in /tmp when TMPDIR is long.
MAX_HOME_PARENT = 60
HOME_PREFIX = "he-gpg-"
# The pid of the process a signing home belongs to: a home whose process is gone is swept.
OWNER_FILE = "owner.pid"
# A home with no readable owner this long after its last change was left by a process killed
# while making it (the owner is written before any key is imported): it is swept too.
UNOWNED_HOME_GRACE_S = 60.0
GPG_CONF = (
    "batch\n"
    "no-tty\n"
    # Never ask a pinentry: the passphrase is preset in the agent, or signing fails at once.
    "pinentry-mode loopback\n"
    # No SHA-1 signatures (EL9's crypto policy refuses them).
    "personal-digest-preferences SHA512 SHA384 SHA256\n"
    "digest-algo SHA512\n"
)
AGENT_CONF = "allow-preset-passphrase\n"
# What GPG_CONF says, given on every command line instead for a key of the operator's home
# (whose gpg.conf is not ours to edit). --no-autostart: the operator's agent is used, never
# started; --pinentry-mode error: a key that is not unlocked fails at once; --trust-model
# always: no trustdb is read, created or updated.
AGENT_OPTIONS = ("--no-autostart", "--batch", "--no-tty", "--pinentry-mode", "error",
                 "--trust-model", "always", "--digest-algo", "SHA512")
# Seconds an agent asked to exit is given before it is killed.
AGENT_STOP_GRACE = 5.0
PROBE = b"he-builder signing probe\n"
# The test signature goes to stdout (captured, dropped): gpg removes its --output file when
# signing fails, and as root that would be /dev/null itself.
PROBE_ARGS = ("--detach-sign", "--local-user")
# Seconds the operator's agent is given for the test signature (it never asks a pinentry).
AGENT_PROBE_TIMEOUT = 60.0
MAX_PASSPHRASE_BYTES = 4096
# `agent:FINGERPRINT`: a key of the operator's own GnuPG home, unlocked in its gpg-agent.
AGENT_PREFIX = "agent:"
FINGERPRINT_PATTERN = re.compile(r"[0-9A-F]{40}")


@dataclass(frozen=True)
class SigningKey:
    """An armored (or binary) secret key export, and where its passphrase comes from.

    `passphrase` is a reference in the inventory's syntax: `env:NAME` or `file:PATH`; None when
    the key is not protected. `fingerprint` picks one key when the file holds several."""

    key_file: Path
    passphrase: str | None = None
    fingerprint: str | None = None


@dataclass(frozen=True)
class AgentKey:
    """The secret key `fingerprint` (40 hex digits) of the operator's GnuPG home `home`,
    already unlocked in that home's running gpg-agent (preset, or cached). Nothing is written
    into that home, no agent is started or stopped there, and no passphrase is read."""

    fingerprint: str
    home: Path

    @property
    def reference(self) -> str:
        return f"{AGENT_PREFIX}{self.fingerprint}"

    @classmethod
    def from_reference(cls, reference: str, env: Mapping[str, str]) -> AgentKey:
        """`agent:FINGERPRINT` as a key of the operator's home (GNUPGHOME, else ~/.gnupg).
        Whether that home holds it, unlocked, `agent_key_missing` and `signing_home` tell."""
        return cls(agent_fingerprint(reference), gnupg_home(env))


def is_agent_reference(reference: str) -> bool:
    return reference.startswith(AGENT_PREFIX)


def agent_fingerprint(reference: str) -> str:
    """The fingerprint of `agent:FINGERPRINT`, spaces dropped, upper case; ValueError when it
    is not a full one (a short key id may name several keys)."""
    fingerprint = reference.removeprefix(AGENT_PREFIX).replace(" ", "").upper()
    if not FINGERPRINT_PATTERN.fullmatch(fingerprint):
        raise ValueError("agent:FINGERPRINT needs the key's full fingerprint, 40 hex digits "
                         "(spaces allowed)")
    return fingerprint


def gnupg_home(env: Mapping[str, str]) -> Path:
    """The operator's GnuPG home: GNUPGHOME from the environment, else ~/.gnupg."""
    if env.get("GNUPGHOME"):
        return Path(env["GNUPGHOME"]).absolute()
    return Path(env.get("HOME") or Path.home()).absolute() / ".gnupg"


def key_inputs(key: SigningKey | AgentKey) -> dict[str, Any]:
    """What a signing stage's cache key holds of its key: a key file by its digest, an agent
    key by its fingerprint and its public half (a new user id or expiry signs again, as a
    changed key file does)."""
    if isinstance(key, AgentKey):
        return {"key": key.reference,
                "public-key": hashlib.sha256(agent_public_key(key)).hexdigest()}
    return {"key": sha256_file(key.key_file) if key.key_file.is_file() else str(key.key_file),
            "fingerprint": key.fingerprint}


def check_key_signs(key: SigningKey | AgentKey, env: Mapping[str, str]) -> None:
    """The key imports and its passphrase unlocks it (an agent key: its agent holds it
    unlocked): what a pipeline checks before any stage when a stage will sign, so a key that
    cannot sign is one line at once, not after a long build."""
    with signing_home(key, env):
        pass


@dataclass(frozen=True)
class Signer:
    """A GnuPG home holding one usable secret key, for the lifetime of `signing_home`.

    `options` go on every gpg command line (rpmsign's too): empty for a private home (its
    gpg.conf holds them), AGENT_OPTIONS and the signature time for an agent key."""

    home: Path
    gpg: str
    fingerprint: str
    created: int
    signature_time: int | None
    options: tuple[str, ...] = ()

    @property
    def key_id(self) -> str:
        return self.fingerprint[-16:]

    def argv(self, *args: str | Path) -> list[str | Path]:
        return [self.gpg, "--homedir", self.home, *self.options, *args]


@dataclass(frozen=True)
class _SecretKey:
    fingerprint: str
    created: int
    validity: str
    keygrips: tuple[str, ...]
    # The creation time of its newest part that can sign (gpg signs with the newest signing
    # subkey): a signature time before it is clamped to it.
    signing_created: int = 0


def read_passphrase(reference: str, env: Mapping[str, str]) -> str:
    """The passphrase named by `env:NAME` or `file:PATH` (one trailing newline dropped)."""
    where = "signing key passphrase"
    if reference.startswith("env:"):
        value = read_env(where, reference.removeprefix("env:"), env)
    elif reference.startswith("file:"):
        value = _read_passphrase_file(where, Path(reference.removeprefix("file:")))
    else:
        # Not echoed: a literal passphrase put here by mistake must not reach a log.
        raise InputError(f"{where}: the reference is neither env:NAME nor file:PATH",
                         hint="a passphrase is never given literally")
    if "\n" in value or "\r" in value:
        raise InputError(f"{where}: the passphrase holds a line break (one line only)")
    return value


def _read_passphrase_file(where: str, path: Path) -> str:
    """A regular file of at most 4 KiB, UTF-8, one trailing newline dropped."""
    try:
        value = read_regular_file(path, limit=MAX_PASSPHRASE_BYTES).data.decode("utf-8")
    except FileRefused as exc:
        raise InputError(f"{where}: cannot read {path}: {exc.reason}") from None
    except UnicodeDecodeError:
        raise InputError(f"{where}: cannot read {path}: not UTF-8 text") from None
    value = value.removesuffix("\n")
    if not value:
        raise InputError(f"{where}: file {path} is empty")
    return value


@contextlib.contextmanager
def signing_home(key: SigningKey | AgentKey, env: Mapping[str, str], *,
                 signature_time: int | None = None) -> Iterator[Signer]:
    """A Signer for `key`: a key file is imported into a private GnuPG home and unlocked there
    (its agent is killed and the home removed on exit); an agent key is used in the operator's
    home as it is, and that home is left as it was.

    With `signature_time` (SOURCE_DATE_EPOCH), every signature made, rpmsign's too, carries
    that time (clamped to the key's creation): RSA and EdDSA signatures are then byte-identical
    from run to run."""
    if isinstance(key, AgentKey):
        yield agent_signer(key, signature_time=signature_time)
    else:
        with _private_home(key, env, signature_time=signature_time) as signer:
            yield signer


@contextlib.contextmanager
def _private_home(key: SigningKey, env: Mapping[str, str], *,
                  signature_time: int | None) -> Iterator[Signer]:
    gpg = require_tool("gpg", package="gnupg")
    require_tool("gpgconf", package="gnupg")
    if not key.key_file.is_file():
        raise InputError(f"signing key not found: {key.key_file}")
    passphrase = read_passphrase(key.passphrase, env) if key.passphrase else None
    sweep_stale_homes(Path(_short_temp_dir()))
    home = Path(tempfile.mkdtemp(prefix=HOME_PREFIX, dir=_short_temp_dir()))
    try:
        home.chmod(0o700)
        write_atomic(home / OWNER_FILE, f"{os.getpid()}\n".encode(), mode=0o600)
        (home / "gpg.conf").write_text(GPG_CONF, encoding="utf-8")
        (home / "gpg-agent.conf").write_text(AGENT_CONF, encoding="utf-8")
        secret = _import_secret_key(gpg, home, key)
        if passphrase is not None:
            _preset_passphrase(home, secret, passphrase)
        signer = Signer(home, gpg, secret.fingerprint, secret.created,
                        _clamped(signature_time, secret))
        _probe(signer, key)
        if signer.signature_time is not None:
            # Written after the import: a key "created in the future" would not import.
            with (home / "gpg.conf").open("a", encoding="utf-8") as conf:
                conf.write(f"faked-system-time {signer.signature_time}!\n")
        yield signer
    finally:
        stop_agent(home)
        remove_home(home)


def _clamped(signature_time: int | None, secret: _SecretKey) -> int | None:
    if signature_time is None:
        return None
    return max(signature_time, secret.created, secret.signing_created)


def agent_signer(key: AgentKey, *, signature_time: int | None = None) -> Signer:
    """A Signer in the operator's home for a key its agent holds unlocked; a test signature
    is made first, so a key that is not unlocked is one line now (never a pinentry)."""
    gpg = require_tool("gpg", package="gnupg")
    secret = _agent_secret_key(gpg, key)
    if secret.validity in ("e", "r"):
        state = "expired" if secret.validity == "e" else "revoked"
        raise InputError(f"{key.reference}: key {secret.fingerprint} is {state}")
    when = _clamped(signature_time, secret)
    # The signature time per invocation, not in a gpg.conf: the home is not ours.
    faked = () if when is None else ("--faked-system-time", f"{when}!")
    signer = Signer(key.home, gpg, secret.fingerprint, secret.created, when,
                    (*AGENT_OPTIONS, *faked))
    try:
        run(signer.argv(*PROBE_ARGS, signer.fingerprint), stdin=PROBE,
            timeout=AGENT_PROBE_TIMEOUT)
    except CommandError as exc:
        raise InputError(f"{key.reference}: {_agent_refusal(exc.stderr_tail, key)}",
                         hint="unlock it in the agent first (gpg-preset-passphrase, or one "
                              "signature made by hand); he-build never asks for a "
                              "passphrase") from exc
    return signer


def _agent_refusal(stderr: str, key: AgentKey) -> str:
    """Why the agent did not sign, in one line."""
    if _no_agent(stderr):
        return f"no gpg-agent runs for {key.home}"
    if "No pinentry" in stderr or "Bad passphrase" in stderr:
        return f"key {key.fingerprint} is not unlocked in the gpg-agent of {key.home}"
    last = [line for line in stderr.strip().splitlines() if "faked system time" not in line]
    return f"gpg cannot sign with key {key.fingerprint} in {key.home}: " + (
        last[-1].removeprefix("gpg: ") if last else "no reason given")


def _agent_secret_key(gpg: str, key: AgentKey) -> _SecretKey:
    found = _listed_agent_key(gpg, key)
    if isinstance(found, str):
        raise InputError(f"{key.reference}: {found}")
    return found


def _no_agent(stderr: str) -> bool:
    """gpg's words (--no-autostart) for a home whose agent is not running."""
    return "No agent running" in stderr or "no gpg-agent running" in stderr


def _listed_agent_key(gpg: str, key: AgentKey) -> _SecretKey | str:
    """The secret key `key.fingerprint` as gpg in the operator's home lists it, or why not."""
    done = run([gpg, "--homedir", key.home, *AGENT_OPTIONS, "--with-colons", "--with-keygrip",
                "--list-secret-keys", key.fingerprint], check=False)
    found = [k for k in parse_secret_keys(done.text) if k.fingerprint == key.fingerprint]
    if done.returncode == 0 and found:
        return found[0]
    if _no_agent(done.stderr.decode("utf-8", errors="replace")):
        return f"no gpg-agent runs for {key.home}"
    if not key.home.is_dir():
        return f"no GnuPG home {key.home}"
    return f"no secret key {key.fingerprint} in {key.home}"


def agent_key_missing(key: AgentKey) -> str | None:
    """Why `key` cannot be used (no agent, no such secret key in the home), None when gpg in
    that home lists it: how `agent:` references are resolved. Nothing is started or written."""
    found = _listed_agent_key(require_tool("gpg", package="gnupg"), key)
    return found if isinstance(found, str) else None


def agent_public_key(key: AgentKey) -> bytes:
    """The agent key's public half as `export_public_key` writes it (what a stage's key hashes
    in place of a key file's digest)."""
    gpg = require_tool("gpg", package="gnupg")
    return run([gpg, "--homedir", key.home, *AGENT_OPTIONS, "--armor", "--export-options",
                "export-minimal", "--export", key.fingerprint]).stdout


def sweep_stale_homes(parent: Path) -> list[Path]:
    """Remove the signing homes of processes that are gone (a release killed while signing
    left its home, holding the imported key, and its agent): the agent is stopped first.
    Only this user's homes are looked at."""
    now = time.time()
    removed = []
    for home in parent.glob(f"{HOME_PREFIX}*"):
        if not _stale_home(home, now):
            continue
        stop_agent(home)
        remove_home(home)
        removed.append(home)
    return removed


def _stale_home(home: Path, now: float) -> bool:
    try:
        info = home.lstat()
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return False
    owner = _home_owner(home)
    if owner is None:
        return info.st_mtime < now - UNOWNED_HOME_GRACE_S
    return not _alive(owner)


def _home_owner(home: Path) -> int | None:
    try:
        return int((home / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def remove_home(home: Path, *, grace: float = AGENT_STOP_GRACE) -> None:
    """Remove a signing home. An agent whose pid could not be read may still be unlinking
    its sockets while the tree is walked, which leaves the directory behind: walk it again
    until it is gone or `grace` seconds have passed."""
    deadline = time.monotonic() + grace
    shutil.rmtree(home, ignore_errors=True)
    while home.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
        shutil.rmtree(home, ignore_errors=True)


def stop_agent(home: Path, *, grace: float = AGENT_STOP_GRACE) -> None:
    """Stop the agent of `home` and wait until it is gone: `gpgconf --kill` only asks it to
    exit, and an agent outliving its home keeps the unlocked key in memory. One that has not
    exited after `grace` seconds is killed."""
    pid = _agent_pid(home)
    run(["gpgconf", "--homedir", home, "--kill", "all"], check=False)
    if pid is None:
        return
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _agent_pid(home: Path) -> int | None:
    """The pid of the agent serving `home`, None when none runs (none is started to ask)."""
    done = run(["gpg-connect-agent", "--no-autostart", "--homedir", home, "getinfo pid", "/bye"],
               check=False)
    for line in done.text.splitlines():
        if line.startswith("D ") and line[2:].strip().isdigit():
            return int(line[2:].strip())
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """An exited process its parent has not reaped yet (the agent's parent may be a container's
    init that never reaps)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _short_temp_dir() -> str:
    parent = tempfile.gettempdir()
    return parent if len(parent) <= MAX_HOME_PARENT else "/tmp"


def _import_secret_key(gpg: str, home: Path, key: SigningKey) -> _SecretKey:
    try:
        run([gpg, "--homedir", home, "--import", key.key_file])
    except CommandError as exc:
        raise InputError(f"{key.key_file}: not an OpenPGP key gpg can import") from exc
    listing = run([gpg, "--homedir", home, "--with-colons", "--with-keygrip",
                   "--list-secret-keys"]).text
    keys = parse_secret_keys(listing)
    if not keys:
        raise InputError(f"{key.key_file} holds no secret key to sign with")
    return _pick_key(keys, key)


def parse_secret_keys(listing: str) -> list[_SecretKey]:
    """Secret keys from `gpg --with-colons --with-keygrip --list-secret-keys` (subkeys'
    keygrips belong to their primary key)."""
    keys: list[_SecretKey] = []
    current: dict[str, str] = {}
    grips: list[str] = []
    for line in listing.splitlines():
        fields = line.split(":")
        if fields[0] == "sec":
            _flush(keys, current, grips)
            current, grips = {"validity": fields[1], "created": fields[5], "signing": "0"}, []
        if fields[0] in ("sec", "ssb") and current and _can_sign(fields):
            current["signing"] = str(max(int(current["signing"]), int(fields[5] or 0)))
        if fields[0] == "fpr" and current and "fpr" not in current:
            current["fpr"] = fields[9]
        elif fields[0] == "grp" and current:
            grips.append(fields[9])
    _flush(keys, current, grips)
    return keys


def _flush(keys: list[_SecretKey], current: dict[str, str], grips: list[str]) -> None:
    if "fpr" in current:
        keys.append(_SecretKey(current["fpr"], int(current["created"] or 0),
                               current["validity"], tuple(grips), int(current["signing"])))


def _can_sign(fields: list[str]) -> bool:
    """A usable (not expired or revoked) key or subkey with the sign capability."""
    return len(fields) > 11 and "s" in fields[11] and fields[1] not in ("e", "r")


def _pick_key(keys: list[_SecretKey], key: SigningKey) -> _SecretKey:
    if key.fingerprint is not None:
        wanted = key.fingerprint.replace(" ", "").upper()
        keys = [k for k in keys if k.fingerprint.endswith(wanted)]
        if not keys:
            raise InputError(f"{key.key_file} holds no secret key {key.fingerprint}")
    if len(keys) > 1:
        raise InputError(f"{key.key_file} holds {len(keys)} secret keys",
                         hint="name the one to sign with by its fingerprint")
    chosen = keys[0]
    if chosen.validity in ("e", "r"):
        state = "expired" if chosen.validity == "e" else "revoked"
        raise InputError(f"{key.key_file}: key {chosen.fingerprint} is {state}")
    return chosen


def _preset_passphrase(home: Path, secret: _SecretKey, passphrase: str) -> None:
    """Give the agent the passphrase for every (sub)key, on stdin: any gpg started in this
    home, rpmsign's included, then signs without asking."""
    libexec = run(["gpgconf", "--list-dirs", "libexecdir"]).text.strip()
    preset = Path(libexec) / "gpg-preset-passphrase"
    if not preset.is_file():
        raise MissingPrerequisiteError(f"required tool not found: {preset}",
                                       hint="install the Debian package gpg-agent")
    for grip in secret.keygrips:
        run([preset, "--preset", grip], stdin=passphrase.encode("utf-8"),
            env={"GNUPGHOME": str(home)}, secrets=(passphrase,))


def _probe(signer: Signer, key: SigningKey) -> None:
    """Sign a few bytes now, so a missing or wrong passphrase is one clear line up front."""
    try:
        run(signer.argv(*PROBE_ARGS, signer.fingerprint), stdin=PROBE)
    except CommandError as exc:
        if key.passphrase is None:
            raise InputError(f"{key.key_file}: key {signer.fingerprint} cannot sign without "
                             "a passphrase", hint="name one as env:NAME or file:PATH") from exc
        raise InputError(f"{key.key_file}: the passphrase from {key.passphrase} does not "
                         f"unlock key {signer.fingerprint}") from exc


def sign_detached(signer: Signer, data: Path, signature: Path | None = None) -> Path:
    """An armored detached signature of `data` (default `<data>.asc`), written atomically."""
    dest = signature or data.with_name(data.name + ".asc")
    with staged_file(dest, mode=0o644) as temp:
        run(signer.argv("--yes", "--local-user", signer.fingerprint, "--armor",
                        "--detach-sign", "--output", temp, data))
    return dest


def export_public_key(signer: Signer, dest: Path) -> Path:
    """The signing key's public half, armored, without third-party signatures."""
    armored = run(signer.argv("--armor", "--export-options", "export-minimal",
                              "--export", signer.fingerprint)).stdout
    if not armored:
        raise IntegrityError(f"gpg exported nothing for key {signer.fingerprint}")
    write_atomic(dest, armored, mode=0o644)
    return dest


def rpmsign_macros(signer: Signer) -> list[str]:
    """rpmsign's --define arguments that make it sign in `signer`'s home with its key, with
    the signer's options. Debian's rpm names gpg2, which Debian does not ship: point it at the
    gpg found."""
    macros = {"__gpg": signer.gpg, "_gpg_path": str(signer.home),
              "_gpg_name": signer.fingerprint}
    if signer.options:
        # Appended to rpm's gpg command line (__gpg_sign_cmd), split on blanks: none of the
        # options holds one.
        macros["_gpg_sign_cmd_extra_args"] = " ".join(signer.options)
    return [arg for name, value in macros.items() for arg in ("--define", f"{name} {value}")]


def sign_rpm(signer: Signer, source: Path, dest: Path) -> Path:
    """A signed copy of `source` at `dest` (complete or absent); `source` is not touched."""
    if not source.is_file():
        raise InputError(f"RPM not found: {source}")
    with staged_file(dest, mode=0o644) as temp:
        shutil.copyfile(source, temp)
        sign_rpm_in_place(signer, temp)
    return dest


def sign_rpm_in_place(signer: Signer, rpm: Path) -> None:
    """Add the signer's signature to `rpm` (rpmsign rewrites the file, then renames it)."""
    require_tool("rpmsign", package="rpm")
    run(["rpmsign", "--addsign", *rpmsign_macros(signer), rpm])


def fingerprint_of(public_key: Path) -> str:
    """The primary fingerprint of the one key in an exported public key file."""
    gpg = require_tool("gpg", package="gnupg")
    with tempfile.TemporaryDirectory(prefix="he-gpg-", dir=_short_temp_dir()) as home:
        listing = run([gpg, "--homedir", home, "--batch", "--with-colons", "--show-keys",
                       public_key]).text
    fingerprints = _primary_fingerprints(listing)
    if len(fingerprints) != 1:
        raise InputError(f"{public_key}: expected one public key, found {len(fingerprints)}")
    return fingerprints[0]


def _primary_fingerprints(listing: str) -> list[str]:
    found, after_primary = [], False
    for line in listing.splitlines():
        fields = line.split(":")
        if fields[0] in ("pub", "sec"):
            after_primary = True
        elif fields[0] == "fpr" and after_primary:
            found.append(fields[9])
            after_primary = False
        elif fields[0] in ("sub", "ssb"):
            after_primary = False
    return found


def verify_detached(signature: Path, data: Path, public_key: Path) -> str:
    """Check `signature` over `data` with only `public_key` trusted (gpgv, as apt does); the
    signing key's primary fingerprint, or IntegrityError."""
    gpg = require_tool("gpg", package="gnupg")
    gpgv = require_tool("gpgv", package="gpgv")
    with tempfile.TemporaryDirectory(prefix="he-gpg-", dir=_short_temp_dir()) as tmp:
        keyring = Path(tmp) / "trusted.gpg"
        run([gpg, "--homedir", tmp, "--batch", "--yes", "--output", keyring, "--dearmor",
             public_key])
        done = run([gpgv, "--homedir", tmp, "--keyring", keyring, "--status-fd", "1",
                    signature, data], check=False)
    for line in done.text.splitlines():
        fields = line.split()
        if done.returncode == 0 and fields[:2] == ["[GNUPG:]", "VALIDSIG"]:
            return fields[-1]
    raise IntegrityError(f"{signature}: not a good signature of {data.name} by the key in "
                         f"{public_key}")
