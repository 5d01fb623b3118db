"""The seed's root password: SHA-512 crypt with a salt derived from the site, so seeds are
reproducible (the hashing itself is builder.passwords, shared with the customize backend)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from builder.passwords import DEFAULT_ROUNDS, sha512_crypt
from builder.passwords import derive_salt as derive_context_salt

if TYPE_CHECKING:
    from builder.seed.answers import SeedSecrets

# glibc's default for $6$: what `mkpasswd -m sha-512` and /etc/shadow use.
ROUNDS = DEFAULT_ROUNDS
SALT_CONTEXT = b"he-builder seed root password salt"


def derive_salt(site_name: str) -> str:
    """16 crypt-alphabet characters from the site's name.

    The same site and password give the same hash (so the seed and its instance-id do not
    change on re-runs), different sites get unrelated salts, and the salt reveals nothing
    about the password."""
    return derive_context_salt(SALT_CONTEXT, site_name)


def hash_root_password(site_name: str, password: str) -> str:
    """`$6$salt$hash` for cloud-init's chpasswd (type: hash); InputError naming the site and
    field when the password cannot be hashed (empty, NUL, over 511 bytes in UTF-8)."""
    return sha512_crypt(password, derive_salt(site_name), field=f"site {site_name}: root_password",
                        rounds=ROUNDS)


@dataclass(frozen=True)
class HashedSecrets:
    """A site's secrets with its root password already hashed by `hash_root_password`
    (builder.seed.ahead); repr and str never show them."""

    root_password: str
    admin_password: str
    root_hash: str

    def __repr__(self) -> str:
        return "HashedSecrets(root_password='***', admin_password='***', root_hash='***')"

    __str__ = __repr__


def root_hash_of(site_name: str, secrets: SeedSecrets) -> str:
    """The hash `secrets` carry, else `hash_root_password` now."""
    if isinstance(secrets, HashedSecrets):
        return secrets.root_hash
    return hash_root_password(site_name, secrets.root_password)
