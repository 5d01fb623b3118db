"""`he-launch --prune-images`: free the storage directory of what no engine VM boots from.

What goes:
- an unpacked image (`images/KEY/`) that nothing backs onto and no launch has unpacked or
  reused for DAYS days. "Backs onto" is read through qemu-img's backing chain from every disk
  of every domain on the connection (running or only defined) and from every qcow2 file left
  in the storage directory (an overlay kept with `--keep`, or a domain's on another
  connection). A disk whose chain cannot be read keeps every image;
- an OVA taken out of an appliance RPM (`rpms/KEY/`) no launch has used for DAYS days;
- a verification record (`images/verified/*.json`) whose appliance file is gone or changed
  (it can never match again);
- what killed launches left half-written.

An entry goes under its lock (never while a launch unpacks or adopts it) and only if no
launch stamped it meanwhile: renamed out of sight in one step, then deleted.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.atomic import sweep_stale_partials
from builder.console import utc_time
from builder.launch.image import VERIFIED, file_identity
from builder.pipeline.store import CacheEntry, StageCache
from builder.virt.hypervisor import Hypervisor
from builder.virt.qemu_img import backing_chain

IMAGES = "images"
RPMS = "rpms"
# images/KEY: the first 16 hex digits of the disk's SHA-256 (builder.launch.image.image_key);
# rpms/KEY: 24 (file_identity).
KEY_RE = {IMAGES: re.compile(r"[0-9a-f]{16}"), RPMS: re.compile(r"[0-9a-f]{24}")}


@dataclass(frozen=True)
class Pruned:
    """One thing removed (or, in a dry run, that would be)."""

    kind: str  # "image", "rpm" or "record"
    path: Path
    size: int
    last_used: float


@dataclass(frozen=True)
class InUse:
    """An image kept because disks back onto it."""

    path: Path
    users: tuple[str, ...]


@dataclass
class PruneReport:
    storage: Path
    dry_run: bool
    removed: list[Pruned] = field(default_factory=list)
    in_use: list[InUse] = field(default_factory=list)
    # kept: used in the period, or being written. An entry another prune removed meanwhile
    # (renamed away under its lock, then deleted) is neither kept nor removed by this one.
    recent: int = 0
    unreadable: list[str] = field(default_factory=list)  # disks whose chain could not be read
    unsure: int = 0  # images kept because of those disks

    @property
    def freed(self) -> int:
        return sum(item.size for item in self.removed)

    def count(self, kind: str) -> int:
        return sum(1 for item in self.removed if item.kind == kind)


@dataclass(frozen=True)
class Users:
    """Which files disks back onto, and the disks whose chain could not be read."""

    chains: dict[Path, tuple[str, ...]]  # a file in some chain -> the disks above it
    unreadable: tuple[str, ...]

    def of(self, entry: Path) -> tuple[str, ...]:
        """The disks whose chain runs through a file inside `entry`."""
        inside = entry.resolve()
        found: list[str] = []
        for path, disks in self.chains.items():
            if inside == path or inside in path.parents:
                found += [d for d in disks if d not in found]
        return tuple(found)


def prune_storage(storage: Path, uri: str, *, unused_since: float, dry_run: bool) -> PruneReport:
    """Remove (or with `dry_run` only list) what `storage` holds for no domain on `uri` and no
    launch since `unused_since` (seconds since the epoch)."""
    report = PruneReport(storage, dry_run)
    if not storage.is_dir():
        return report
    users = find_users(storage, uri)
    report.unreadable = list(users.unreadable)
    cache = StageCache(storage)
    if not dry_run:
        sweep_stale_partials(storage / IMAGES)
        sweep_stale_partials(storage / RPMS)
    for entry in _entries(cache, IMAGES):
        holders = users.of(entry.path)
        if holders:
            report.in_use.append(InUse(entry.path, holders))
        elif users.unreadable:
            report.unsure += 1
        elif cache.remove(entry, unused_since=unused_since, dry_run=dry_run):
            report.removed.append(Pruned("image", entry.path, entry.size, entry.last_used))
        elif entry.path.exists():
            report.recent += 1
    for entry in _entries(cache, RPMS):
        if cache.remove(entry, unused_since=unused_since, dry_run=dry_run):
            report.removed.append(Pruned("rpm", entry.path, entry.size, entry.last_used))
        elif entry.path.exists():
            report.recent += 1
    gone = [item.path for item in report.removed]
    report.removed += _dead_records(storage / IMAGES / VERIFIED, gone, dry_run)
    return report


def _entries(cache: StageCache, stage: str) -> list[CacheEntry]:
    return [e for e in cache.entries(stage) if KEY_RE[stage].fullmatch(e.key)]


def find_users(storage: Path, uri: str) -> Users:
    """The backing chains of every domain's disks on `uri` and of every qcow2 file in
    `storage` outside the images and RPM extracts."""
    labels: dict[Path, list[str]] = {}
    with Hypervisor(uri) as hv:
        for domain in hv.domains():
            for name in domain.files():
                labels.setdefault(Path(name), []).append(f"{name} (domain {domain.name})")
    for overlay in _qcow2_files(storage):
        labels.setdefault(overlay, [str(overlay)])  # a domain's disk is named with its domain
    chains: dict[Path, list[str]] = {}
    unreadable: list[str] = []
    for disk, names in sorted(labels.items()):
        if not disk.exists():
            continue  # names nothing: backs onto nothing
        chain = backing_chain(disk)
        if chain is None:
            unreadable.append(str(disk))
            continue
        for layer in chain:
            chains.setdefault(layer.resolve(), []).extend(names)
    return Users({path: tuple(names) for path, names in chains.items()}, tuple(unreadable))


def _qcow2_files(storage: Path) -> Iterator[Path]:
    for directory, subdirectories, files in os.walk(storage):
        if Path(directory) == storage:
            subdirectories[:] = [d for d in subdirectories if d not in (IMAGES, RPMS)]
        for name in files:
            if name.endswith(".qcow2"):
                yield Path(directory, name)


def _dead_records(verified: Path, gone: list[Path], dry_run: bool) -> list[Pruned]:
    """The verification records of appliance files that are gone or changed (or, in a dry
    run, would be gone): their identity can never match again."""
    try:
        records = sorted(verified.glob("*.json"))
    except OSError:
        return []
    dead = []
    for record in records:
        try:
            st = record.stat()
            source = Path(json.loads(record.read_text())["source"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written, or not ours to judge
        if not source.is_absolute() or not _is_dead(record, source, gone):
            continue
        if not dry_run:
            record.unlink(missing_ok=True)
        dead.append(Pruned("record", record, st.st_blocks * 512, st.st_mtime))
    return dead


def _is_dead(record: Path, source: Path, gone: list[Path]) -> bool:
    if any(source == path or path in source.parents for path in gone):
        return True
    try:
        return file_identity(source) != record.stem
    except OSError:
        return True


def report_data(report: PruneReport, unused_for_days: float) -> dict[str, Any]:
    """The report as `--json` prints it."""
    return {
        "storage": str(report.storage), "dry_run": report.dry_run,
        "unused_for_days": unused_for_days,
        "removed": [{"kind": i.kind, "path": str(i.path), "size": i.size,
                     "last_used": utc_time(i.last_used)} for i in report.removed],
        "in_use": [{"path": str(i.path), "users": list(i.users)} for i in report.in_use],
        "kept_recent": report.recent, "unreadable": report.unreadable,
        "kept_unsure": report.unsure, "freed": report.freed,
    }
