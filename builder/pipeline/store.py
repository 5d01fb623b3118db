"""The stage cache: a finished stage is found again by the hash of its inputs.

An entry is built in a private partial directory while its builder holds the entry's lock, and
appears (one rename) only when complete; it is never replaced afterwards. A build killed half
way leaves its partial with a free lock: the next store anywhere in the cache removes it.
A lookup that finds another process building the same entry waits for it.

Every hit stamps its entry's modification time, so `entries()` can tell what has not been used
for a while and `remove()` can take it away (`he-build cache prune`): under the entry's lock,
renamed out of sight in one step, then deleted.

A build whose key is known only once it is done (he-launch's unpacked image is keyed by the
SHA-256 of the disk it unpacks) builds in `scratch()`, a partial of the same protocol, and
`adopt()` makes it the entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.atomic import (
    check_directory_target,
    lock_path,
    partial_dir,
    partial_prefix,
    put_in_place,
    remove_tree,
    staged_dir,
    staged_file,
    sweep_stale_partials,
)
from builder.errors import StorageError
from builder.lock import Notify, locked, try_lock, wait_until_free
from builder.sparse import copy_sparse

ENV_CACHE = "HE_BUILDER_CACHE"


def default_cache_root(env: Mapping[str, str]) -> Path:
    """`$HE_BUILDER_CACHE`, else `~/.cache/he-builder`."""
    override = env.get(ENV_CACHE)
    if override:
        return Path(override)
    return Path(env.get("HOME", str(Path.home()))) / ".cache" / "he-builder"


def usable_cache_root(env: Mapping[str, str]) -> Path:
    """`default_cache_root`, refused (InputError, one line) when it can never be a directory:
    before any stage runs, not at the first lock file inside it."""
    root = default_cache_root(env)
    check_directory_target(root, "the cache")
    return root


def hash_inputs(inputs: Mapping[str, Any]) -> str:
    """A stable hex key for a stage: canonical JSON of its inputs, hashed."""
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class CacheEntry:
    """One complete entry: its disk usage (blocks, each hard-linked file once) and when it
    was last stored or found (seconds since the epoch)."""

    stage: str
    key: str
    path: Path
    size: int
    last_used: float


@dataclass(frozen=True)
class StageCache:
    """Entries live at `<root>/<stage>/<key>/`; an entry exists only when complete.

    `notify` hears why a lookup or a store waits (another process building the same entry).
    """

    root: Path
    notify: Notify | None = field(default=None, compare=False)

    def entry(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def lookup(self, stage: str, key: str) -> Path | None:
        """The complete entry, waiting first if another process is building it; else None.

        What killed builds left is removed on the way, even when every stage is a hit (a build
        killed just after its entry appeared left a lock file)."""
        path = self.entry(stage, key)
        if not path.is_dir():
            wait_until_free(lock_path(path), notify=self.notify,
                            what=f"the {stage} stage ({key})")
        self.sweep()
        if not path.is_dir():
            return None
        stamp_used(path)
        return path

    @contextlib.contextmanager
    def store(self, stage: str, key: str) -> Iterator[Path]:
        """A private temp directory that becomes the entry when the block finishes without
        error. Stale partials of killed builds are removed first. Should another process have
        stored the same entry meanwhile, that one is kept and this one dropped."""
        self.sweep()
        with staged_dir(self.entry(stage, key), replace=False, notify=self.notify) as temp:
            yield temp

    @contextlib.contextmanager
    def scratch(self, stage: str) -> Iterator[Path]:
        """A private temp directory among the stage's entries, for a build whose key is known
        only at its end: adopt() makes it an entry. Removed when the block ends (after an
        adoption, what it replaced goes with it); one left by a killed process is swept."""
        self.sweep()
        with partial_dir(self.root / stage / f"scratch-{secrets.token_hex(8)}") as temp:
            yield temp

    def adopt(self, stage: str, key: str, built: Path, *, replace: bool = False) -> Path:
        """Make `built` (a scratch() directory) the entry `key`, in one rename. An existing
        entry is kept (`built` is dropped with its scratch) unless `replace`: then the two are
        exchanged, and the old one goes with the scratch."""
        entry = self.entry(stage, key)
        with locked(lock_path(entry), transient=True, notify=self.notify,
                    what=f"the {stage} stage ({key})"):
            put_in_place(built, entry, replace=replace)
        return entry

    def entries(self, stage_name: str | None = None) -> list[CacheEntry]:
        """Every complete entry of every stage (or of `stage_name`), by stage and key."""
        found = []
        stages = _directories(self.root) if stage_name is None else [self.root / stage_name]
        for stage in stages:
            for entry in _directories(stage):
                with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                    found.append(CacheEntry(stage.name, entry.name, entry, disk_usage(entry),
                                            entry.stat().st_mtime))
        return found

    def remove(self, entry: CacheEntry, *, unused_since: float, dry_run: bool = False) -> bool:
        """Remove `entry` if nobody is building or adopting it and it was not used after
        `unused_since`; False when it stays. Files already published from it (hard links,
        copies) keep their data. `dry_run`: only whether it would go (nothing is removed)."""
        if entry.last_used > unused_since:  # as listed: no need to look under the lock
            return False
        held = try_lock(lock_path(entry.path), transient=True)
        if held is None:
            return False
        try:
            try:
                if entry.path.stat().st_mtime > unused_since:
                    return False
                if dry_run:
                    return True
                hidden = entry.path.with_name(f"{partial_prefix(entry.path)}removed")
                entry.path.rename(hidden)
            except FileNotFoundError:
                return False
            except OSError as exc:
                raise StorageError(f"cannot remove {entry.path}: {exc.strerror}") from exc
            remove_tree(hidden)  # a removal killed half way is swept as a partial
            return True
        finally:
            held.release()

    def claim(self, entry: Path, member: Path) -> bool:
        """Stamp `entry` used now, under its lock, if `member` is still in it; False when a
        prune took the entry first. Whoever has just made something depend on an entry (an
        overlay backing onto its image) claims it: a prune that has not removed it by then
        either waits for the lock and sees a stamp newer than its start, or started after the
        dependency existed and finds it."""
        with locked(lock_path(entry), transient=True, notify=self.notify,
                    what=f"with {entry}"):
            if not member.exists():
                return False
            stamp_used(entry)
            return True

    def sweep(self) -> list[Path]:
        """Remove the partials of builds that are gone, in every stage and inside entries
        (a sidecar written into a finished entry); return what was removed."""
        removed: list[Path] = []
        for stage in _directories(self.root):
            removed += sweep_stale_partials(stage)
            for entry in _directories(stage):
                removed += sweep_stale_partials(entry)
        return removed


def stamp_used(entry: Path) -> None:
    """Record a hit on the entry's directory (a read-only cache stays unstamped)."""
    with contextlib.suppress(OSError):
        os.utime(entry)  # now


def disk_usage(path: Path) -> int:
    """The bytes allocated under `path`, counting a file linked several times once, as du."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, _, files in os.walk(path):
        for name in [".", *files]:
            with contextlib.suppress(FileNotFoundError):
                st = Path(directory, name).lstat()
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
    return total


def _directories(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir()
                      if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}") from exc


def link_or_copy(source: Path, final: Path, *, link: bool = True) -> None:
    """Publish a cached file at `final` atomically: a hard link when allowed and possible,
    else a sparse copy. Temp files of a publication killed earlier are removed first."""
    sweep_stale_partials(final.parent)
    with staged_file(final, mode=0o644) as temp:
        if link:
            temp.unlink()
            try:
                os.link(source, temp)
            except OSError:
                copy_sparse(source, temp)
        else:
            copy_sparse(source, temp)
