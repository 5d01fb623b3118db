"""Make an installed root tree the same on every build: remove what depends on when, where or
how the installation ran (logs, caches of the host's state, backups, the host's identity),
date the account files and every timestamp at SOURCE_DATE_EPOCH at the latest.

What the installation itself must do (run with SOURCE_DATE_EPOCH in its environment, so that
the initramfs and Python's byte code come out the same) is the caller's part."""

from __future__ import annotations

import os
from pathlib import Path

SECONDS_PER_DAY = 86400
# Written while packages were installed, read by nobody in the appliance.
BUILD_LEFTOVERS = (
    # Logs of the installation: times and the order in which dpkg ran.
    "var/log/dpkg.log", "var/log/bootstrap.log", "var/log/alternatives.log",
    "var/log/apt/history.log", "var/log/apt/term.log", "var/log/apt/eipp.log.xz",
    # ldconfig's cache of inode numbers and ctimes of the build's libraries.
    "var/cache/ldconfig/aux-cache",
    # debconf's and dpkg's previous states, and the account files' backups (with their dates).
    "var/cache/debconf/config.dat-old", "var/cache/debconf/templates.dat-old",
    "etc/passwd-", "etc/group-", "etc/shadow-", "etc/gshadow-",
    # The build host's identity and resolver, copied in by debootstrap.
    "etc/resolv.conf", "var/lib/dbus/machine-id",
)
SHADOW = "etc/shadow"
DIRECTORY_MODE = 0o755
LAST_CHANGE_FIELD = 2


def make_directories(path: Path) -> None:
    """`path` and its missing parents, mode 0755 whatever the builder's umask."""
    missing = [p for p in [path, *path.parents] if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for created in missing:
        created.chmod(DIRECTORY_MODE)


def remove_leftovers(root: Path) -> None:
    for rel in BUILD_LEFTOVERS:
        (root / rel).unlink(missing_ok=True)


def date_password_changes(root: Path, epoch: int) -> None:
    """/etc/shadow's "last change" (days since 1970) is the day of the build: make it the
    epoch's day. Empty fields (no date) stay empty."""
    path = root / SHADOW
    if not path.is_file():
        return
    day = str(epoch // SECONDS_PER_DAY)
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split(":")
        if len(fields) > LAST_CHANGE_FIELD and fields[LAST_CHANGE_FIELD]:
            fields[LAST_CHANGE_FIELD] = day
        lines.append(":".join(fields))
    stat = path.stat()
    replacement = path.with_name(path.name + ".he-new")
    replacement.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.chown(replacement, stat.st_uid, stat.st_gid)
    replacement.chmod(stat.st_mode & 0o7777)
    replacement.replace(path)


def clamp_times(root: Path, epoch: int) -> None:
    """Every entry newer than `epoch` (files the installation wrote, directories it changed)
    gets `epoch` as its mtime and atime; older ones (from the packages) keep theirs. Links are
    dated themselves, never their targets. A file hard-linked elsewhere is only touched when
    it is newer, so a tree already clamped is left as it is."""
    for path in _walk(root):
        if path.lstat().st_mtime > epoch:
            os.utime(path, (epoch, epoch), follow_symlinks=False)


def _walk(root: Path) -> list[Path]:
    entries = [root]
    for directory, dirs, files in os.walk(root):
        base = Path(directory)
        entries.extend(base / name for name in dirs + files)
    return entries


def normalize_root(root: Path, epoch: int) -> None:
    remove_leftovers(root)
    date_password_changes(root, epoch)
    clamp_times(root, epoch)
