"""SHA-512 crypt (`$6$`), the one password hash he-builder writes (seeds and customized images).

libxcrypt's `crypt_rn` does the work through ctypes (the library behind `passwd`, PAM and
`mkpasswd`); where it is missing or fails its known answer, Drepper's specification
("Unix crypt using SHA-256 and SHA-512") in Python gives the same string. Neither Python's
`crypt` module (removed in 3.13) nor passlib is used.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import hmac
import re
from collections.abc import Callable
from typing import Literal

from builder.errors import InputError, IntegrityError

DEFAULT_ROUNDS = 5000  # what glibc, libxcrypt and `mkpasswd -m sha-512` use without rounds=
MIN_ROUNDS = 1000
MAX_ROUNDS = 999_999_999
# libxcrypt refuses a phrase of 512 bytes or more (CRYPT_MAX_PASSPHRASE_SIZE, NUL included),
# and the old crypt() then returned "*0", a hash no password matches. PAM's limit is the same.
MAX_PASSWORD_BYTES = 511
SALT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SALT_LENGTH = 16  # the most SHA-512 crypt uses
HASH_LENGTH = 86  # 64 digest bytes in the crypt alphabet

Backend = Literal["libxcrypt", "python"]
CryptRn = Callable[[bytes, bytes, ctypes.Array[ctypes.c_char], int], bytes | None]

# libxcrypt's sonames: .2 is its own ABI (EL9), .1 the glibc-compatible one (Debian).
_LIBCRYPT_NAMES = ("libcrypt.so.2", "libcrypt.so.1")
# sizeof(struct crypt_data) in libxcrypt; crypt_rn fails (NULL) if a newer one needs more.
_CRYPT_DATA_SIZE = 32768
# The test vector of Drepper's specification: a libcrypt that does not give it is not used.
_KNOWN_PHRASE = b"Hello world!"
_KNOWN_SETTING = b"$6$saltstring"
_KNOWN_HASH = (b"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4"
               b"OTLiBFdcbYEdFCoEOfaS35inz1")
_SALT = re.compile(f"[{re.escape(SALT_ALPHABET)}]{{1,{SALT_LENGTH}}}\\Z")
# Drepper's byte order for the final base-64 encoding: groups of three digest bytes.
_ENCODE_ORDER = tuple((22 * k % 63, (22 * k + 21) % 63, (22 * k + 42) % 63) for k in range(21))


def password_problem(password: str) -> str | None:
    """Why `password` cannot become a SHA-512 crypt hash, or None when it can."""
    if not password:
        return "is empty"
    if "\x00" in password:
        return "contains a NUL character, which crypt cannot hash"
    try:
        size = len(password.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid Unicode text (lone surrogate)"
    if size > MAX_PASSWORD_BYTES:
        return (f"is {size} bytes long in UTF-8; SHA-512 crypt (libxcrypt, PAM) takes at most "
                f"{MAX_PASSWORD_BYTES}")
    return None


def derive_salt(context: bytes, identity: str) -> str:
    """A reproducible 16-character salt for `identity` (a site, an appliance) within `context`.

    The password is deliberately not an input: a salt computed cheaply from the password
    would let anyone holding the hash test guesses with one HMAC instead of 5,000 rounds.
    """
    digest = hmac.new(context, identity.encode("utf-8"), hashlib.sha256).digest()
    return "".join(SALT_ALPHABET[byte & 63] for byte in digest[:SALT_LENGTH])


def sha512_crypt(password: str, salt: str, *, field: str, rounds: int = DEFAULT_ROUNDS) -> str:
    """`$6$[rounds=N$]salt$hash` of `password`; `field` names the value in error messages.

    InputError (one line) for a password that cannot be hashed; IntegrityError when the
    result is not a well-formed hash of this salt (it is never returned then)."""
    problem = password_problem(password)
    if problem:
        message = f"{field}: {problem}"
        raise InputError(message, problems=[message])
    setting = make_setting(salt, rounds)
    hashed = crypt_sha512(password.encode("utf-8"), setting)
    return check_hash(hashed, setting, field)


def make_setting(salt: str, rounds: int = DEFAULT_ROUNDS) -> str:
    """The `$6$...` prefix crypt reads its parameters from (rounds= only when not default)."""
    if not _SALT.match(salt):
        raise ValueError(f"a SHA-512 crypt salt is 1 to {SALT_LENGTH} of {SALT_ALPHABET!r}")
    if not MIN_ROUNDS <= rounds <= MAX_ROUNDS:
        raise ValueError(f"SHA-512 crypt rounds must be {MIN_ROUNDS}..{MAX_ROUNDS}")
    return f"$6${salt}" if rounds == DEFAULT_ROUNDS else f"$6$rounds={rounds}${salt}"


def check_hash(hashed: str | None, setting: str, field: str) -> str:
    """`hashed` when it is `setting` + `$` + 86 crypt characters, else IntegrityError."""
    if hashed is None:
        reason = "crypt failed"
    elif not hashed.startswith(setting + "$"):
        reason = "it does not start with $6$ and this salt"
    elif len(hashed) != len(setting) + 1 + HASH_LENGTH:
        reason = f"it is {len(hashed)} characters long, not {len(setting) + 1 + HASH_LENGTH}"
    elif not set(hashed[len(setting) + 1:]) <= set(SALT_ALPHABET):
        reason = "its hash part has characters outside the crypt alphabet"
    else:
        return hashed
    raise IntegrityError(f"{field}: the SHA-512 crypt hash came out malformed ({reason}); "
                         "nothing was written")


def crypt_sha512(phrase: bytes, setting: str) -> str | None:
    """The crypt string of `phrase` for a checked `setting`, from the best backend here."""
    crypt_rn = _libxcrypt()
    if crypt_rn is None:
        salt, rounds = _parse_setting(setting)
        return drepper_sha512(phrase, salt, rounds)
    return libxcrypt_sha512(crypt_rn, phrase, setting)


def active_backend() -> Backend:
    """Which implementation `sha512_crypt` uses on this machine."""
    return "python" if _libxcrypt() is None else "libxcrypt"


def libxcrypt_sha512(crypt_rn: CryptRn, phrase: bytes, setting: str) -> str | None:
    """One call of libxcrypt's reentrant crypt_rn (None where it fails, never "*0");
    the work area holding a copy of the phrase is zeroed afterwards."""
    data = ctypes.create_string_buffer(_CRYPT_DATA_SIZE)
    try:
        result = crypt_rn(phrase, setting.encode("ascii"), data, _CRYPT_DATA_SIZE)
        return None if result is None else result.decode("ascii", errors="replace")
    finally:
        ctypes.memset(data, 0, _CRYPT_DATA_SIZE)


def load_libxcrypt() -> CryptRn | None:
    """libxcrypt's crypt_rn, if a libcrypt with it is installed and gives the known answer."""
    for name in _LIBCRYPT_NAMES:
        crypt_rn = _checked_crypt_rn(name)
        if crypt_rn is not None:
            return crypt_rn
    found = ctypes.util.find_library("crypt")  # runs ldconfig: only when the sonames failed
    return None if found is None else _checked_crypt_rn(found)


def _checked_crypt_rn(name: str) -> CryptRn | None:
    try:
        function = ctypes.CDLL(name).crypt_rn
    except (OSError, AttributeError):  # not installed, or an old libcrypt without crypt_rn
        return None
    function.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int)
    function.restype = ctypes.c_char_p
    crypt_rn: CryptRn = function
    known = libxcrypt_sha512(crypt_rn, _KNOWN_PHRASE, _KNOWN_SETTING.decode())
    return crypt_rn if known == _KNOWN_HASH.decode() else None


@functools.cache
def _libxcrypt() -> CryptRn | None:
    # Loaded (and checked) once per process, on first use.
    return load_libxcrypt()


def _parse_setting(setting: str) -> tuple[bytes, int | None]:
    parts = setting.split("$")  # "", "6", ["rounds=N",] salt
    rounds = int(parts[2].removeprefix("rounds=")) if len(parts) == 4 else None
    return parts[-1].encode("ascii"), rounds


def drepper_sha512(phrase: bytes, salt: bytes, rounds: int | None = None) -> str:
    """SHA-512 crypt in Python, step by step as Drepper's specification describes it
    (`rounds` None: the default 5,000, not written into the result)."""
    salt = salt[:SALT_LENGTH]
    prefix = "$6$" if rounds is None else f"$6$rounds={rounds}$"
    length = len(phrase)
    alternate = hashlib.sha512(phrase + salt + phrase).digest()
    first = hashlib.sha512(phrase + salt)
    first.update(_repeat(alternate, length))
    bits = length
    while bits:
        first.update(alternate if bits & 1 else phrase)
        bits >>= 1
    digest = first.digest()
    p_bytes = _repeat(hashlib.sha512(phrase * length).digest(), length)
    s_bytes = _repeat(hashlib.sha512(salt * (16 + digest[0])).digest(), len(salt))
    digest = _stretch(digest, p_bytes, s_bytes, DEFAULT_ROUNDS if rounds is None else rounds)
    return f"{prefix}{salt.decode('ascii')}${_encode(digest)}"


def _repeat(block: bytes, length: int) -> bytes:
    """`block` repeated and cut to `length` bytes (the spec's "sequence" P and S)."""
    return (block * (length // len(block) + 1))[:length]


def _stretch(digest: bytes, p_bytes: bytes, s_bytes: bytes, rounds: int) -> bytes:
    # Round r hashes (P or C) [+ S if r % 3] [+ P if r % 7] + (C or P): the middle depends on
    # r only, so it is built once for each of the four cases.
    middles = [(s_bytes if r % 3 else b"") + (p_bytes if r % 7 else b"") for r in range(42)]
    sha512 = hashlib.sha512
    for r in range(rounds):
        middle = middles[r % 42]
        if r & 1:
            digest = sha512(p_bytes + middle + digest).digest()
        else:
            digest = sha512(digest + middle + p_bytes).digest()
    return digest


def _encode(digest: bytes) -> str:
    """The 64 digest bytes in the crypt alphabet, in the specification's order."""
    out = []
    for a, b, c in _ENCODE_ORDER:
        out.append(_b64_24bit(digest[a], digest[b], digest[c], 4))
    out.append(_b64_24bit(0, 0, digest[63], 2))
    return "".join(out)


def _b64_24bit(high: int, middle: int, low: int, chars: int) -> str:
    word = (high << 16) | (middle << 8) | low
    return "".join(SALT_ALPHABET[(word >> (6 * i)) & 63] for i in range(chars))
