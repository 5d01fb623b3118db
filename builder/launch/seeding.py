"""The seed a launch boots with: a private copy of a seed ISO (what it says comes from
builder.seed.read), removed after the launch."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from builder.atomic import staged_file
from builder.launch.storage import StorageModes
from builder.seed.read import read_seed

SECRET_MODE = 0o600


@dataclass(frozen=True)
class SeedPlan:
    """The ISO to attach, what it says about the engine, and the copies to delete afterwards."""

    iso: Path
    fqdn: str | None
    mac: str | None
    copies: tuple[Path, ...]
    site: str | None = None
    secret_lines: tuple[bytes, ...] = field(default=(), repr=False)


def copy_seed(iso: Path, workdir: Path, modes: StorageModes | None = None) -> SeedPlan:
    """Copy a seed ISO into the work directory (mode 0600, handed to qemu's user): that copy
    is ejected and deleted."""
    facts = read_seed(iso)
    final = attach_copy(iso, workdir / "seed.iso", modes)
    return SeedPlan(iso=final, fqdn=facts.fqdn, mac=facts.mac, copies=(final,), site=facts.site,
                    secret_lines=facts.secret_lines)


def attach_copy(source: Path, final: Path, modes: StorageModes | None = None) -> Path:
    """The copy of a seed ISO that the domain's CD-ROM names: 0600, qemu's when it is not us."""
    return (modes or StorageModes()).qemu_disk(private_copy(source, final))


def private_copy(source: Path, final: Path) -> Path:
    """`source` copied to `final` with mode 0600 (libvirt hands it to qemu's user)."""
    with staged_file(final, mode=SECRET_MODE) as temp:
        shutil.copyfile(source, temp)
    return final


def remove_copies(plan: SeedPlan) -> None:
    """Delete the seed files this launch made (they hold secrets)."""
    for path in plan.copies:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


