"""Seed directories: render and master in memory, stage a whole set on disk, flush it once,
switch OUT to it with one rename (builder.seed.generations)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from builder.atomic import FlushAhead, create_new, staged_dir
from builder.console import counted
from builder.errors import InputError, StorageError
from builder.heap import frozen_for_fork
from builder.inventory.models import Site
from builder.lock import Notify
from builder.repro import build_time
from builder.seed import generations
from builder.seed.answers import SeedSecrets, render_answers
from builder.seed.iso import master_iso
from builder.seed.metadata import derive_instance_id, render_meta_data
from builder.seed.network import render_network_config
from builder.seed.passwords import root_hash_of
from builder.seed.userdata import render_user_data

if TYPE_CHECKING:
    from builder.seed.dhcp import DhcpExport

ISO_NAME = "seed.iso"
ANSWERS_NAME = "heanswers.conf"
MANIFEST_NAME = "manifest.json"
SECRET_MODE = 0o600
PUBLIC_MODE = 0o644
# From this many sites on, a batch is rendered on a process pool: below it, a pool costs more
# than it saves.
POOL_THRESHOLD = 16
POOL_CHUNK = 32
# Once this share of a batch of POOL_THRESHOLD sites or more is written, the staging set's
# writeback begins in a thread (atomic.FlushAhead): the flush before the switch then waits
# for the rest only, not for all of it with every CPU idle.
FLUSH_AHEAD_SHARE = 0.7
PR_SET_PDEATHSIG = 1  # linux/prctl.h

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RenderedSeed:
    """Everything a seed holds, as text, before anything touches the disk."""

    site: str
    user_data: str
    meta_data: str
    network_config: str | None
    answers: str
    instance_id: str
    mac: str
    fqdn: str

    def iso_files(self) -> list[tuple[str, bytes]]:
        """The files cloud-init reads from the ISO, in the order they are mastered."""
        # The answer file is its own file, never in user-data (see builder.seed.userdata).
        files = [("user-data", self.user_data), ("meta-data", self.meta_data),
                 (ANSWERS_NAME, self.answers)]
        if self.network_config is not None:
            files.append(("network-config", self.network_config))
        return [(name, text.encode("utf-8")) for name, text in files]


@dataclass(frozen=True)
class MasteredSeed:
    """A rendered seed and its ISO image, still in memory."""

    rendered: RenderedSeed
    image: bytes


@dataclass(frozen=True)
class PreparedSeed:
    """A site directory's files as bytes with their modes and digests, ready to be written."""

    rendered: RenderedSeed
    contents: dict[str, tuple[bytes, int]]
    digests: dict[str, str]


@dataclass(frozen=True)
class WrittenFile:
    name: str
    sha256: str
    size: int
    mode: int


@dataclass(frozen=True)
class WrittenSeed:
    """A site directory once written: what its artifacts say, without the files' bytes (a
    pool worker sends this back, not the ~100 KB it wrote)."""

    site: str
    instance_id: str
    mac: str
    files: tuple[WrittenFile, ...]

    def entry(self, name: str) -> WrittenFile:
        """The file `name` (KeyError when the seed has none)."""
        for entry in self.files:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def digest(self, name: str) -> str:
        return self.entry(name).sha256


@dataclass(frozen=True)
class WriteFailed:
    """A worker could not write a site's directory (the StorageError's message)."""

    message: str


Refused = tuple[str, ...]


@dataclass(frozen=True)
class SeedFile:
    """One file of a seed directory, described the same way for every file."""

    name: str
    path: Path
    sha256: str
    size: int
    mode: int


@dataclass(frozen=True)
class SeedArtifacts:
    """What was written for one site: paths, checksums, and the ids the launcher needs (the
    paths are made when asked for: a thousand sites' worth is 8,000 of them)."""

    directory: Path
    written: WrittenSeed

    @property
    def site(self) -> str:
        return self.written.site

    @property
    def instance_id(self) -> str:
        return self.written.instance_id

    @property
    def mac(self) -> str:
        return self.written.mac

    @property
    def iso(self) -> Path:
        return self.directory / ISO_NAME

    @property
    def files(self) -> tuple[SeedFile, ...]:
        return tuple(self._described(f) for f in self.written.files)

    @property
    def checksums(self) -> dict[str, str]:
        return {f.name: f.sha256 for f in self.written.files}

    def digest(self, name: str) -> str:
        """The SHA-256 of the file `name` (KeyError when the seed has none)."""
        return self.written.digest(name)

    def file(self, name: str) -> SeedFile:
        return self._described(self.written.entry(name))

    def _described(self, entry: WrittenFile) -> SeedFile:
        return SeedFile(entry.name, self.directory / entry.name, entry.sha256, entry.size,
                        entry.mode)


def render_seed(site: Site, secrets: SeedSecrets) -> RenderedSeed:
    """Render every text of the seed; InputError (and nothing written) on a bad value."""
    answers = render_answers(site, secrets.admin_password)
    root_hash = root_hash_of(site.name, secrets)
    user_data = render_user_data(site, root_hash=root_hash)
    network_config = render_network_config(site)
    instance_id = derive_instance_id(site, user_data=user_data, network_config=network_config,
                                     answers=answers)
    return RenderedSeed(
        site=site.name, user_data=user_data, meta_data=render_meta_data(site, instance_id),
        network_config=network_config, answers=answers, instance_id=instance_id,
        mac=site.mac, fqdn=site.fqdn,
    )


def master_seed(site: Site, secrets: SeedSecrets, *, epoch: int) -> MasteredSeed:
    rendered = render_seed(site, secrets)
    return MasteredSeed(rendered, master_iso(rendered.iso_files(), epoch=epoch))


def write_site_seed(
    site: Site, secrets: SeedSecrets, directory: Path, *, env: Mapping[str, str]
) -> SeedArtifacts:
    """Write `directory/SITE/` (seed.iso, user-data, meta-data, network-config, heanswers.conf,
    manifest.json) for one-off use, such as he-launch's private work directory: it appears
    complete or not at all, replacing an older one. (A published OUT is `build_seeds`'.) ISO
    dates come from SOURCE_DATE_EPOCH in `env` (else now)."""
    outcome = _prepare_job((site, secrets), build_time(env))
    if not isinstance(outcome, PreparedSeed):
        raise _refused(list(outcome))
    final = directory / site.name
    with staged_dir(final) as temp:
        written = _write_site(temp, outcome)
    return SeedArtifacts(final, written)


def build_seeds(
    jobs: Sequence[tuple[Site, SeedSecrets]], out_root: Path, *, epoch: int,
    progress: Progress | None = None, whole_set: bool = False, dhcp: DhcpExport | None = None,
    notify: Notify | None = None,
) -> list[SeedArtifacts]:
    """Render, master and write every site's seed directory, then publish them all or none.

    The new set is `jobs`' sites plus, unless `whole_set`, the current set's other sites
    (hard links). OUT/dhcp/ is `dhcp` when given, else the current set's. Big batches are
    rendered on every CPU while this process writes the finished ones into the staging set.
    Every bad value of every site is collected into one InputError, and then nothing is
    published. A second run on the same OUT waits for the first (`notify` says so).
    """
    return publish_seeds(jobs, out_root, epoch=epoch, progress=progress, whole_set=whole_set,
                         dhcp=dhcp, notify=notify)[0]


def publish_seeds(
    jobs: Sequence[tuple[Site, SeedSecrets]], out_root: Path, *, epoch: int,
    progress: Progress | None = None, whole_set: bool = False, dhcp: DhcpExport | None = None,
    notify: Notify | None = None,
) -> tuple[list[SeedArtifacts], generations.Publication]:
    """`build_seeds`, also returning what the switch published (generation, sites)."""
    names = [site.name for site, _ in jobs]
    _check_reserved(names)
    with generations.locked_seed_set(out_root, notify=notify) as seeds:
        kept = [] if whole_set else [n for n in seeds.current_sites() if n not in names]
        generations.check_names(seeds, [*names, *kept])
        if dhcp is not None:
            generations.check_names(seeds, [generations.DHCP_DIR])
        # Every name this run publishes a link for (those new to OUT get it while the pool
        # writes).
        to_link = [*names, *([generations.DHCP_DIR] if dhcp is not None else [])]

        def link_names() -> None:
            generations.link_new_names(seeds, to_link)

        try:
            with generations.staging(seeds) as stage:
                written = write_seeds(jobs, stage, epoch=epoch, progress=progress,
                                      meanwhile=link_names)
                _complete_set(seeds, stage, kept, dhcp)
                manifests = {seed.site: seed.digest(MANIFEST_NAME) for seed in written}
                published = generations.publish(seeds, stage, manifests)
        except BaseException:
            generations.unlink_unpublished(seeds, to_link)
            raise
    return [SeedArtifacts(out_root / seed.site, seed) for seed in written], published


def _complete_set(seeds: generations.SeedSet, stage: Path, kept: Sequence[str],
                  dhcp: DhcpExport | None) -> None:
    """The staging set's other entries: the kept sites, and the new DHCP/DNS records or the
    current ones."""
    generations.carry_over(seeds, stage, kept)
    if dhcp is not None:
        from builder.seed.dhcp import write_dhcp_export  # noqa: PLC0415

        write_dhcp_export(dhcp, stage / generations.DHCP_DIR)
    else:
        generations.carry_over(seeds, stage, [generations.DHCP_DIR])


def _check_reserved(names: Sequence[str]) -> None:
    if generations.DHCP_DIR in names:
        raise InputError(f"site {generations.DHCP_DIR}: name: reserved for the DHCP/DNS "
                         f"records (OUT/{generations.DHCP_DIR}/); rename the site")


def write_seeds(
    jobs: Sequence[tuple[Site, SeedSecrets]], directory: Path, *, epoch: int,
    progress: Progress | None = None, meanwhile: Callable[[], None] | None = None,
) -> list[WrittenSeed]:
    """Write each site's directory into `directory`, a private staging directory, unflushed.

    Big batches are written by the pool's workers, each site by the worker that rendered it.
    `meanwhile` runs in this process once the work is handed out (while a pool's workers
    render). A big batch's writeback begins before its last sites are written
    (FLUSH_AHEAD_SHARE); the caller's flush makes it durable. Every bad value of every site is
    collected into one InputError: the caller drops the staging directory, with whatever sites
    were written into it.
    """
    written: list[WrittenSeed] = []
    problems: list[str] = []
    work = _write_each(jobs, epoch, directory, meanwhile or _nothing)
    flush_at = round(len(jobs) * FLUSH_AHEAD_SHARE) if len(jobs) >= POOL_THRESHOLD else 0
    with contextlib.closing(work) as outcomes, FlushAhead(directory) as flush:
        for done, outcome in enumerate(outcomes, start=1):
            if done == flush_at:
                flush.start()
            if isinstance(outcome, WriteFailed):
                raise StorageError(outcome.message)
            if isinstance(outcome, WrittenSeed):
                written.append(outcome)
            else:
                problems.extend(outcome)
            if progress is not None:
                progress(done, len(jobs))
    if problems:
        raise _refused(problems)
    return written


def _refused(problems: Sequence[str]) -> InputError:
    return InputError(f"{counted(len(problems), 'value')} cannot go into a seed; "
                      "nothing was written", problems=problems)


def _nothing() -> None:
    pass


def _write_each(
    jobs: Sequence[tuple[Site, SeedSecrets]], epoch: int, stage: Path,
    meanwhile: Callable[[], None],
) -> Generator[WrittenSeed | WriteFailed | Refused, None, None]:
    epochs, stages = [epoch] * len(jobs), [stage] * len(jobs)
    if len(jobs) < POOL_THRESHOLD or _cpu_count() < 2:
        meanwhile()
        yield from map(_seed_job, jobs, epochs, stages)
        return
    # multiprocessing is imported only when a batch is big enough for a pool.
    from concurrent.futures import ProcessPoolExecutor  # noqa: PLC0415

    with ProcessPoolExecutor(max_workers=_cpu_count(), initializer=_die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        # The workers fork at the first job: they inherit the sites frozen (builder.heap).
        with frozen_for_fork():
            outcomes = pool.map(_seed_job, jobs, epochs, stages, chunksize=POOL_CHUNK)
        try:
            meanwhile()
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
        yield from outcomes


def _die_with_parent(parent: int) -> None:
    """A pool worker ends when he-build does, even killed: it holds site secrets, and shares
    OUT's lock, which the next run must be able to take."""
    import ctypes  # noqa: PLC0415  (in the worker only)

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # he-build died before prctl took effect
        os._exit(1)


def _prepare_job(job: tuple[Site, SeedSecrets], epoch: int) -> PreparedSeed | Refused:
    """One site up to the bytes of every file: problems come back as data (exceptions lose
    their fields on the way back from a worker)."""
    site, secrets = job
    try:
        return prepare_seed(master_seed(site, secrets, epoch=epoch))
    except InputError as exc:
        return exc.problems or (exc.message,)


def _seed_job(job: tuple[Site, SeedSecrets], epoch: int,
              stage: Path) -> WrittenSeed | WriteFailed | Refused:
    """One site, in a worker: rendered, mastered, hashed and written into the staging set.
    A site with a bad value is not written (its problems come back)."""
    outcome = _prepare_job(job, epoch)
    if not isinstance(outcome, PreparedSeed):
        return outcome
    try:
        return _write_site(generations.site_dir(stage, outcome.rendered.site), outcome)
    except StorageError as exc:
        return WriteFailed(exc.message)
    except OSError as exc:
        return WriteFailed(f"cannot write in {stage}: {exc.strerror}")


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def _write_site(directory: Path, seed: PreparedSeed) -> WrittenSeed:
    for name, (data, mode) in seed.contents.items():
        create_new(directory / name, data, mode)
    rendered = seed.rendered
    files = tuple(WrittenFile(name, seed.digests[name], len(data), mode)
                  for name, (data, mode) in sorted(seed.contents.items()))
    return WrittenSeed(rendered.site, rendered.instance_id, rendered.mac, files)


def prepare_seed(seed: MasteredSeed) -> PreparedSeed:
    """Every file of the site directory with its digest, manifest.json included."""
    contents = seed_contents(seed)
    digests = {name: hashlib.sha256(data).hexdigest() for name, (data, _) in contents.items()}
    manifest = render_manifest(seed.rendered, contents, digests)
    contents[MANIFEST_NAME] = (manifest, PUBLIC_MODE)
    digests[MANIFEST_NAME] = hashlib.sha256(manifest).hexdigest()
    return PreparedSeed(seed.rendered, contents, digests)


def seed_contents(seed: MasteredSeed) -> dict[str, tuple[bytes, int]]:
    """File name -> (bytes, mode) of a site directory, manifest.json aside."""
    rendered = seed.rendered
    contents = {
        ISO_NAME: (seed.image, SECRET_MODE),
        "user-data": (rendered.user_data.encode("utf-8"), SECRET_MODE),
        "meta-data": (rendered.meta_data.encode("utf-8"), PUBLIC_MODE),
        ANSWERS_NAME: (rendered.answers.encode("utf-8"), SECRET_MODE),
    }
    if rendered.network_config is not None:
        contents["network-config"] = (rendered.network_config.encode("utf-8"), PUBLIC_MODE)
    return contents


def render_manifest(rendered: RenderedSeed, contents: Mapping[str, tuple[bytes, int]],
                    digests: Mapping[str, str]) -> bytes:
    """manifest.json: the SHA-256, size and mode of every other file, plus what identifies the
    engine VM (site, FQDN, MAC, instance-id): builder.seed.read takes them from here.

    The text of `json.dumps(..., indent=2, sort_keys=True)` plus a line break, written
    directly (the json module writes indented JSON in Python, a string alone in C)."""
    files = ",\n".join(
        f'    {_json_text(name)}: {{\n      "mode": "{mode:04o}",\n'
        f'      "sha256": {_json_text(digests[name])},\n      "size": {len(data)}\n    }}'
        for name, (data, mode) in sorted(contents.items()))
    text = (f'{{\n  "files": {{\n{files}\n  }},\n  "fqdn": {_json_text(rendered.fqdn)},\n'
            f'  "instance_id": {_json_text(rendered.instance_id)},\n'
            f'  "mac": {_json_text(rendered.mac)},\n  "site": {_json_text(rendered.site)}\n}}\n')
    return text.encode("utf-8")


def _json_text(text: str) -> str:
    return json.dumps(text)

