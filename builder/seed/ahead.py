"""Root passwords hashed while the inventory loads.

A seed's SHA-512 crypt (5,000 rounds) is about half of the CPU it costs, and `he-build seed`
loads its inventory on one CPU. So while it loads, a thread hashes the root password of each
site that has passed its own checks; libxcrypt runs without the GIL, on a CPU the load leaves
idle. The sites hashed by the time their seeds are handed out carry their hash
(HashedSecrets: the same string their seed would have made); the seeds' workers hash the rest.
A site with a secret asked for at a prompt is left to the usual path; a password that cannot be
hashed is reported by the seed, as it always was. What reading a site's secrets gave, warnings
(a file others can read) and errors included, is held until the site's secrets are asked for,
so the command reports it once, in the order it always did, and not at all when the inventory
does not load. A small batch (fewer than POOL_THRESHOLD sites, rendered without a pool) starts
no thread.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from types import TracebackType
from typing import TYPE_CHECKING

from builder.errors import InputError
from builder.inventory.models import Site
from builder.inventory.secrets import (
    SecretFiles,
    SiteSecrets,
    log_warning,
    needs_prompt,
    resolve_site_secrets,
)
from builder.seed.master import POOL_THRESHOLD
from builder.seed.passwords import HashedSecrets, hash_root_password

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor


class HashesAhead:
    """Use `site_loaded` as load_inventory's `on_site`, `stop()` once it has returned, then
    `secrets_of` each site. As a context manager, stops whatever happens."""

    def __init__(self, env: Mapping[str, str], *, wanted: Collection[str] | None = None) -> None:
        self._env = env
        self._wanted = None if wanted is None else frozenset(wanted)
        self._thread: ThreadPoolExecutor | None = None
        self._secrets: dict[str, SiteSecrets] = {}
        self._refused: dict[str, InputError] = {}
        self._warnings: dict[str, list[str]] = {}
        self._hashes: dict[str, Future[str]] = {}

    def site_loaded(self, site: Site, files: SecretFiles) -> None:
        """Read the site's secrets and queue its root password for hashing; a site with a
        secret asked for at a prompt, or not wanted, is left alone."""
        if (self._wanted is not None and site.name not in self._wanted) or needs_prompt(site):
            return
        warnings = self._warnings.setdefault(site.name, [])
        try:
            secrets = resolve_site_secrets(site, files, env=self._env, prompt=None,
                                           warn=warnings.append)
        except InputError as exc:
            self._refused[site.name] = exc
            return
        self._secrets[site.name] = secrets
        if self._thread is not None:
            self._submit(self._thread, site.name, secrets)
        elif len(self._secrets) >= POOL_THRESHOLD:
            # Imported only for a batch this big.
            from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hash-ahead")
            for name, read in self._secrets.items():
                self._submit(self._thread, name, read)

    def _submit(self, thread: ThreadPoolExecutor, site: str, secrets: SiteSecrets) -> None:
        self._hashes[site] = thread.submit(hash_root_password, site, secrets.root_password)

    def stop(self, *, finish: bool = False) -> None:
        """Drop the hashes not begun and wait for the one under way (a millisecond or two);
        `finish`: make every queued hash first."""
        if self._thread is not None:
            self._thread.shutdown(wait=True, cancel_futures=not finish)

    def secrets_of(self, site: Site) -> SiteSecrets | HashedSecrets | None:
        """After stop(): the site's secrets, with its hash when made, once the warnings their
        reading gave are logged; the InputError it gave; None when they were not read."""
        for message in self._warnings.pop(site.name, ()):
            log_warning(message)
        refused = self._refused.get(site.name)
        if refused is not None:
            raise refused
        secrets = self._secrets.get(site.name)
        found = self._hashes.get(site.name)
        # A hash not made (dropped, or not finished) or that failed: the seed makes it.
        if (secrets is None or found is None or not found.done() or found.cancelled()
                or found.exception() is not None):
            return secrets
        return HashedSecrets(secrets.root_password, secrets.admin_password, found.result())

    def __enter__(self) -> HashesAhead:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
