"""The seed output directory: every run publishes a whole set of sites with one rename.

    OUT/
      dc1 -> .he-seeds/current/dc1     what users and tools open: OUT/dc1/seed.iso, ...
      dhcp -> .he-seeds/current/dhcp
      .he-seeds/
        format                        marks OUT as ours
        lock                          held (flock) by the run staging or publishing a set
        current -> gen-000007         THE switch: replaced by one rename(2)
        gen-000006/                   the previous set, kept for readers still on it
        gen-000007/                   the current set: dc1/ dc2/ dhcp/ generation.json
        stage-PID-XXXXXXXX/           a set being built (0700), only while its run lives

Every path a reader resolves goes through `current` once, so it sees the old set or the new
one, never a mix; a crash at any moment leaves one of the two (plus leftovers that only the
next run, holding the lock, removes). The per-site links never change while a site stays in
the set: a new site's link is made before the switch, while the set is written (until the
switch it leads nowhere: the site is absent), a dropped site's link is removed after it.
(The same scheme as Kubernetes' atomic writer for ConfigMap volumes.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from builder.atomic import (
    check_directory_target,
    create_new,
    fsync_path,
    private_temp_dir,
    remove_tree,
    staged_dir,
    sweep_stale_partials,
    sync_filesystem,
)
from builder.errors import InputError, StorageError
from builder.lock import Notify, locked

log = logging.getLogger(__name__)

STATE = ".he-seeds"
FORMAT_NAME = "format"
FORMAT_TEXT = "he-builder seed set, format 1\n"
LOCK_NAME = "lock"
CURRENT = "current"
GEN_RE = re.compile(r"^gen-(\d{6,})$")
STAGE_PREFIX = "stage-"
INDEX_NAME = "generation.json"
DHCP_DIR = "dhcp"
MANIFEST_NAME = "manifest.json"
# The previous set stays one more run: a reader that resolved it just before a switch (say
# he-launch between reading user-data and copying seed.iso) can still finish.
KEEP_PREVIOUS = 1
# Up to this many files, each is fsynced; above, one syncfs of OUT's filesystem is cheaper.
FSYNC_FILES_MAX = 96
PUBLIC_DIR_MODE = 0o755
PRIVATE_DIR_MODE = 0o700
# What a fresh filesystem or our own first steps put in an OUT that is otherwise empty.
FOREIGN_BUT_HARMLESS = ("lost+found",)


@dataclass(frozen=True)
class SeedSet:
    """OUT while this process holds its lock."""

    out: Path

    @property
    def state(self) -> Path:
        return self.out / STATE

    def current(self) -> Path | None:
        """The current generation's directory, or None before the first publication."""
        try:
            target = str((self.state / CURRENT).readlink())
        except OSError:
            return None
        path = self.state / target
        return path if GEN_RE.match(target) and path.is_dir() else None

    def current_sites(self) -> list[str]:
        gen = self.current()
        if gen is None:
            return []
        return sorted(p.name for p in gen.iterdir() if p.is_dir() and p.name != DHCP_DIR)

    def generations(self) -> dict[int, Path]:
        found = {}
        for path in self.state.iterdir():
            match = GEN_RE.match(path.name)
            if match and not path.is_symlink():
                found[int(match[1])] = path
        return found


@dataclass(frozen=True)
class Publication:
    """What a run published."""

    generation: int
    sites: tuple[str, ...]
    dhcp: bool


@contextlib.contextmanager
def locked_seed_set(out: Path, *, notify: Notify | None = None) -> Iterator[SeedSet]:
    """OUT, checked to be ours (or new, or empty), locked, and tidied of what killed runs left.

    A second run on the same OUT waits here for the first to finish (`notify` says so)."""
    seeds = SeedSet(out)
    _claim(out)
    with locked(seeds.state / LOCK_NAME, notify=notify, what=f"publishing seeds in {out}"):
        tidy(seeds)
        yield seeds


def _claim(out: Path) -> None:
    """Make sure OUT is ours: create it, or adopt it empty; refuse anything else untouched."""
    if out.is_symlink() and not out.exists():
        raise InputError(f"--out {out}: a link to nowhere")
    check_directory_target(out, "--out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {out}: {exc.strerror}") from exc
    state = out / STATE
    sweep_stale_partials(out, finals=(STATE,))
    if state.is_dir():
        _check_format(out)
        return
    _check_empty(out)
    with staged_dir(state, replace=False) as temp:
        create_new(temp / FORMAT_NAME, FORMAT_TEXT.encode("ascii"), 0o644)
        (temp / LOCK_NAME).touch(mode=0o600)
        temp.chmod(PUBLIC_DIR_MODE)
    _check_format(out)


def _check_format(out: Path) -> None:
    try:
        text = (out / STATE / FORMAT_NAME).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    if text != FORMAT_TEXT:
        raise InputError(f"--out {out}: {STATE}/{FORMAT_NAME} is not {FORMAT_TEXT.strip()!r}: "
                         "not a seed set of this he-build; choose another --out")


def _check_empty(out: Path) -> None:
    own = f".{STATE}."  # the lock and the temp directory of a concurrent first run
    entries = sorted(p.name for p in out.iterdir()
                     if p.name not in FOREIGN_BUT_HARMLESS and not p.name.startswith(own))
    if not entries:
        return
    shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
    legacy = [name for name in entries if (out / name / MANIFEST_NAME).is_file()]
    if legacy:
        raise InputError(f"--out {out}: holds site directories written by an earlier he-build "
                         f"({shown}), without generations; remove them once or choose another "
                         "--out (he-build leaves them alone)")
    raise InputError(f"--out {out}: not empty and not made by he-build seed ({shown}); choose "
                     "another --out or empty it (he-build leaves it alone)")


def tidy(seeds: SeedSet) -> list[Path]:
    """Remove what killed runs left: staging sets, sets never switched to, links to sites that
    are not in the current set, and generations older than the policy keeps.

    Only called under the lock: nobody else is staging or publishing in this OUT."""
    state = seeds.state
    removed: list[Path] = []
    current = seeds.current()
    current_number = _number(current)
    for path in sorted(state.iterdir()):
        if path.name.startswith(STAGE_PREFIX) or (
                path.name.startswith(f"{CURRENT}.") and path.is_symlink()):
            removed.append(path)
    gens = seeds.generations()
    unpublished = [gens[n] for n in sorted(gens) if current_number is None or n > current_number]
    older = [gens[n] for n in sorted(gens, reverse=True)
             if current_number is not None and n < current_number]
    removed = [*_dangling_links(seeds, current), *removed, *unpublished,
               *older[KEEP_PREVIOUS:]]
    done = []
    for path in removed:
        try:
            remove_tree(path)
        except StorageError as exc:  # not a reason to fail this run: the next one tries again
            log.warning("%s", exc.message)
            continue
        done.append(path)
    return done


def _number(gen: Path | None) -> int | None:
    if gen is None:
        return None
    match = GEN_RE.match(gen.name)
    return int(match[1]) if match else None


def _dangling_links(seeds: SeedSet, current: Path | None) -> list[Path]:
    """Our links in OUT whose name the current set does not have."""
    keep = _names_in(current)
    return [path for path in sorted(seeds.out.iterdir())
            if path.name not in keep and _is_our_link(path)]


def _names_in(gen: Path | None) -> set[str]:
    """The names (sites, dhcp) a generation holds."""
    return {p.name for p in gen.iterdir()} if gen is not None else set()


def _link_target(name: str) -> str:
    return f"{STATE}/{CURRENT}/{name}"


def _is_our_link(path: Path) -> bool:
    try:
        return str(path.readlink()) == _link_target(path.name)
    except OSError:
        return False


def check_names(seeds: SeedSet, names: Iterable[str]) -> None:
    """Refuse, before anything is written, names OUT already uses for something not ours."""
    for name in names:
        path = seeds.out / name
        if os.path.lexists(path) and not _is_our_link(path):
            raise InputError(f"--out {seeds.out}: {path} exists and was not made by he-build "
                             "seed; move it away or choose another --out")


@contextlib.contextmanager
def staging(seeds: SeedSet) -> Iterator[Path]:
    """A private (0700) directory for the next set; removed unless `publish` took it."""
    with private_temp_dir(seeds.state, f"{STAGE_PREFIX}{os.getpid()}-") as stage:
        yield stage


def site_dir(stage: Path, name: str) -> Path:
    """A new site directory in the staging set, private from the start."""
    path = stage / name
    path.mkdir(mode=PRIVATE_DIR_MODE)
    path.chmod(PRIVATE_DIR_MODE)  # whatever the umask
    return path


def carry_over(seeds: SeedSet, stage: Path, names: Sequence[str]) -> None:
    """Put the current set's `names` (sites, or dhcp) into the staging set unchanged: hard
    links (published files are never modified), copies where the filesystem has no links."""
    current = seeds.current()
    if current is None:
        return
    for name in names:
        if (current / name).is_dir():
            _link_tree(current / name, stage / name)


def _link_tree(source: Path, target: Path) -> None:
    target.mkdir(mode=PRIVATE_DIR_MODE)
    for entry in sorted(source.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            _link_tree(entry, target / entry.name)
        elif entry.is_file() and not entry.is_symlink():
            _link_or_copy(entry, target / entry.name)
    target.chmod(source.stat().st_mode & 0o7777)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        create_new(target, source.read_bytes(), source.stat().st_mode & 0o7777)


def publish(seeds: SeedSet, stage: Path, manifests: Mapping[str, str] | None = None) -> Publication:
    """Switch OUT to the staging set: flush it, name it, link new sites (unless the caller did,
    `link_new_names`), switch `current` with one rename, unlink dropped sites, prune. The
    caller holds the lock. `manifests`: the SHA-256 of the manifest.json of sites the caller
    has just written (others are read)."""
    with os.scandir(stage) as entries:  # d_type: no stat per site
        sites = tuple(sorted(e.name for e in entries if e.is_dir() and e.name != DHCP_DIR))
    has_dhcp = (stage / DHCP_DIR).is_dir()
    number = max([*seeds.generations(), _number(seeds.current()) or 0]) + 1
    _write_index(stage, number, sites, has_dhcp, manifests or {})
    make_durable(stage)
    stage.chmod(PUBLIC_DIR_MODE)
    gen = seeds.state / f"gen-{number:06d}"
    stage.rename(gen)
    fsync_path(seeds.state)
    names = [*sites, *([DHCP_DIR] if has_dhcp else [])]
    link_new_names(seeds, names)
    if set(names) - _names_in(seeds.current()):  # links that lead nowhere until the switch
        fsync_path(seeds.out)
    switch_current(seeds, gen)
    tidy(seeds)
    return Publication(number, sites, has_dhcp)


def _write_index(stage: Path, number: int, sites: Sequence[str], has_dhcp: bool,
                 manifests: Mapping[str, str]) -> None:
    """generation.json: which sites this set holds, each with its manifest's SHA-256."""
    index = {
        "format": 1, "generation": number, "dhcp": has_dhcp,
        "sites": {name: manifests.get(name) or _manifest_digest(stage / name) for name in sites},
    }
    data = (json.dumps(index, indent=2, sort_keys=True) + "\n").encode("utf-8")
    create_new(stage / INDEX_NAME, data, 0o644)


def _manifest_digest(site: Path) -> str | None:
    manifest = site / MANIFEST_NAME
    return hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else None


def make_durable(stage: Path) -> None:
    """Everything in the staging set on disk before anything points at it."""
    files: list[Path] = []
    dirs: list[Path] = []
    for root, _dirs, filenames in os.walk(stage):
        dirs.append(Path(root))
        files += [Path(root) / name for name in filenames]
        if len(files) > FSYNC_FILES_MAX:
            sync_filesystem(stage)
            return
    for path in [*files, *reversed(dirs)]:
        fsync_path(path)


def link_new_names(seeds: SeedSet, names: Sequence[str]) -> None:
    """The stable links of the names new to OUT, dangling until a switch publishes them: made
    by `publish`, or beforehand while the set is still being written (if the run fails, the
    caller passes the names to `unlink_unpublished`)."""
    for name in names:
        link = seeds.out / name
        if _is_our_link(link):
            continue
        try:
            link.symlink_to(_link_target(name))
        except OSError as exc:
            raise StorageError(f"cannot create the link {link}: {exc.strerror}",
                               hint="OUT must be on a filesystem with symbolic links (not "
                                    "FAT); copy the seeds elsewhere with cp -rL") from exc


def unlink_unpublished(seeds: SeedSet, names: Sequence[str]) -> None:
    """After a failed run, remove the links of `names` that the current set does not have:
    `link_new_names` made them for this run (`tidy` removed any older ones before it)."""
    keep = _names_in(seeds.current())
    for name in names:
        link = seeds.out / name
        if name not in keep and _is_our_link(link):
            link.unlink(missing_ok=True)


def switch_current(seeds: SeedSet, gen: Path) -> None:
    """THE switch: a new `current` link renamed over the old one."""
    temp = seeds.state / f"{CURRENT}.{os.getpid()}"
    temp.unlink(missing_ok=True)
    temp.symlink_to(gen.name)
    temp.rename(seeds.state / CURRENT)
    fsync_path(seeds.state)

