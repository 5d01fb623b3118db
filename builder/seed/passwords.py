"""The root password as a SHA-512 crypt hash, salted deterministically so seeds are reproducible."""

from __future__ import annotations

import hashlib
import hmac
import warnings
from collections.abc import Callable
from types import ModuleType

from builder.errors import InputError

with warnings.catch_warnings():
    # passlib imports the stdlib crypt module, deprecated since 3.11 (gone in 3.13, where
    # passlib falls back to its own implementation).
    warnings.simplefilter("ignore", DeprecationWarning)
    from passlib.hash import sha512_crypt

# glibc's default for $6$: what `mkpasswd -m sha-512` and /etc/shadow use.
ROUNDS = 5000
SALT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SALT_LENGTH = 16
SALT_CONTEXT = b"he-builder root password salt\x1f"

Hasher = Callable[[str, str], str]


def derive_salt(site_name: str, password: str) -> str:
    """16 crypt-alphabet characters from an HMAC keyed by the password over the site name.

    The same site and password give the same hash (so the seed and its instance-id do not
    change on re-runs); different sites or passwords give unrelated salts.
    """
    digest = hmac.new(password.encode("utf-8"), SALT_CONTEXT + site_name.encode("utf-8"),
                      hashlib.sha256).digest()
    return "".join(SALT_ALPHABET[byte & 63] for byte in digest[:SALT_LENGTH])


def hash_root_password(site_name: str, password: str) -> str:
    """`$6$salt$hash` for cloud-init's chpasswd (type: hash)."""
    problem = _password_problem(password)
    if problem:
        message = f"site {site_name}: root_password: {problem}"
        raise InputError(message, problems=[message])
    return _HASHER(password, derive_salt(site_name, password))


def _password_problem(password: str) -> str | None:
    if not password:
        return "is empty"
    if "\x00" in password:
        return "contains a NUL character, which crypt cannot hash"
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (lone surrogate)"
    return None


def _stdlib_crypt() -> ModuleType | None:
    """glibc's crypt(3) through the stdlib module (deprecated in 3.11, gone in 3.13)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt  # noqa: PLC0415
        except ImportError:
            return None
    return crypt


def _glibc_hasher(crypt: ModuleType) -> Hasher:
    def hash_password(password: str, salt: str) -> str:
        hashed: str = crypt.crypt(password, f"$6${salt}")
        return hashed
    return hash_password


def _passlib_hash(password: str, salt: str) -> str:
    hashed: str = sha512_crypt.using(salt=salt, rounds=ROUNDS).hash(password)
    return hashed


def _pick_hasher() -> Hasher:
    # glibc directly when it is there: one crypt call per hash where passlib's os_crypt
    # backend makes two; the output is the same string (a test checks it).
    crypt = _stdlib_crypt()
    return _passlib_hash if crypt is None else _glibc_hasher(crypt)


_HASHER = _pick_hasher()
