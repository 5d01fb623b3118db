"""`he-build cache list|prune`: what the stage cache holds, and removing what has gone unused.

The cache is `$HE_BUILDER_CACHE`, else `~/.cache/he-builder`; every hit stamps its entry, so
"unused" means neither built nor found for that long. he-launch's unpacked images live in its
own storage directory, not here (`he-launch --prune-images`, builder.launch.prune).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import TYPE_CHECKING, Any

from builder.cli.handler import CommandResult, Subcommands
from builder.console import counted, human_size, text_table, utc_time

if TYPE_CHECKING:
    from builder.console import Console
    from builder.pipeline.store import CacheEntry, StageCache

DEFAULT_UNUSED_DAYS = 30.0
DAY_S = 86400.0


def register(subparsers: Subcommands, parent: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "cache", parents=[parent], help="list or prune the stage cache",
        description="The stage cache ($HE_BUILDER_CACHE, else ~/.cache/he-builder): every "
                    "entry with its size and when a build last stored or reused it.")
    actions = parser.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", parents=[parent],
                                 help="every entry: stage, key, size, last used")
    listing.set_defaults(handler=run_list)
    prune = actions.add_parser(
        "prune", parents=[parent], help="remove the entries unused for a while",
        description="Remove the entries no build has stored or reused for DAYS days. An entry "
                    "being built is kept; files already published from an entry keep their "
                    "data.")
    prune.add_argument("--unused-for", type=days, default=DEFAULT_UNUSED_DAYS, metavar="DAYS",
                       help=f"age in days, 0 for every entry (default {DEFAULT_UNUSED_DAYS:g})")
    prune.add_argument("--dry-run", action="store_true",
                       help="print what would be removed, remove nothing")
    prune.set_defaults(handler=run_prune)


def days(text: str) -> float:
    """A --unused-for value: a finite number of days, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not 0 <= value < 1e6:
        raise argparse.ArgumentTypeError(f"must be from 0 to 999999 days, got {text!r}")
    return value


def run_list(args: argparse.Namespace, console: Console) -> CommandResult:
    cache = _cache()
    entries = cache.entries()
    total = sum(e.size for e in entries)
    data = {"ok": True, "root": str(cache.root),
            "entries": [{**_entry_data(e), **_recorded(e)} for e in entries],
            "total_size": total}
    if not entries:
        return CommandResult(data=data, text=f"{cache.root}: empty")
    rows = [("STAGE", "KEY", "SIZE", "LAST USED")]
    rows += [(e.stage, e.key, human_size(e.size), utc_time(e.last_used)) for e in entries]
    footer = f"{counted(len(entries), 'entry', 'entries')}, {human_size(total)} in {cache.root}"
    return CommandResult(data=data, text=text_table(rows) + "\n" + footer)


def run_prune(args: argparse.Namespace, console: Console) -> CommandResult:
    cache = _cache()
    unused_since = time.time() - args.unused_for * DAY_S
    removed: list[tuple[CacheEntry, dict[str, Any]]] = []
    kept = 0
    for entry in cache.entries():
        recorded = _recorded(entry)  # read while the entry is there
        if cache.remove(entry, unused_since=unused_since, dry_run=args.dry_run):
            removed.append((entry, recorded))
        else:
            kept += 1
    freed = sum(e.size for e, _ in removed)
    verb = "would remove" if args.dry_run else "removed"
    data = {"ok": True, "root": str(cache.root), "dry_run": args.dry_run,
            "unused_for_days": args.unused_for,
            "removed": [{**_entry_data(e), **recorded} for e, recorded in removed],
            "freed": freed, "kept": kept}
    lines = [f"{verb} {e.stage}/{e.key} ({human_size(e.size)}, last used {utc_time(e.last_used)})"
             for e, _ in removed]
    lines.append(f"{verb} {counted(len(removed), 'entry', 'entries')} ({human_size(freed)}), "
                 f"kept {kept}")
    return CommandResult(data=data, text="\n".join(lines))


def _cache() -> StageCache:
    from builder.pipeline.store import StageCache, usable_cache_root  # noqa: PLC0415

    return StageCache(usable_cache_root(dict(os.environ)))


def _recorded(entry: CacheEntry) -> dict[str, Any]:
    """The entry's artifacts and facts from its stage record; null for an entry without a
    readable one (kept there by another step, such as a debootstrap tree, or damaged)."""
    from builder.errors import IntegrityError  # noqa: PLC0415
    from builder.pipeline.stages import describe_result, load_result  # noqa: PLC0415

    try:
        result = load_result(entry.stage, entry.key, entry.path, reused=True, seconds=0.0)
    except IntegrityError:
        return {"artifacts": None, "facts": None}
    return describe_result(result)


def _entry_data(entry: CacheEntry) -> dict[str, Any]:
    return {"stage": entry.stage, "key": entry.key, "path": str(entry.path),
            "size": entry.size, "last_used": utc_time(entry.last_used)}
