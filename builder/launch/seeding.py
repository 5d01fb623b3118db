"""The seed a launch boots with: a private copy of a seed ISO, and what the ISO says (the
engine's FQDN, its NIC's MAC, and the answer file's password lines the overlay scan looks for)."""

from __future__ import annotations

import io
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pycdlib
import yaml

from builder.atomic import staged_file
from builder.errors import InputError
from builder.launch.storage import StorageModes
from builder.seed.network import NM_KEYFILE
from builder.seed.runner import ANSWERS_ON_SEED, SEED_ANSWERS

SECRET_MODE = 0o600
KEYFILE_MAC = re.compile(r"^mac-address=([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5})$", re.M)


@dataclass(frozen=True)
class SeedFacts:
    """What a seed says about the engine VM."""

    fqdn: str | None = None
    mac: str | None = None
    # The answer file's password lines, as the guest receives them: never shown.
    secret_lines: tuple[bytes, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class SeedPlan:
    """The ISO to attach, what it says about the engine, and the copies to delete afterwards."""

    iso: Path
    fqdn: str | None
    mac: str | None
    copies: tuple[Path, ...]
    secret_lines: tuple[bytes, ...] = field(default=(), repr=False)


def copy_seed(iso: Path, workdir: Path, modes: StorageModes | None = None) -> SeedPlan:
    """Copy a seed ISO into the work directory (mode 0600, handed to qemu's user): that copy
    is ejected and deleted."""
    if not iso.is_file():
        raise InputError(f"seed ISO not found: {iso}")
    facts = read_seed_facts(iso)
    final = attach_copy(iso, workdir / "seed.iso", modes)
    return SeedPlan(iso=final, fqdn=facts.fqdn, mac=facts.mac, copies=(final,),
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


def read_seed_facts(iso: Path) -> SeedFacts:
    """The FQDN (user-data), the MAC (network-config, else the NetworkManager keyfile in
    user-data) and the answer file's password lines a seed ISO carries, when it says so."""
    raw = _read_iso_files(iso, ("user-data", "network-config", ANSWERS_ON_SEED))
    user_data = _yaml(raw.get("user-data"))
    user_data = user_data if isinstance(user_data, dict) else {}
    fqdn = user_data.get("fqdn")
    files = _written_files(user_data)
    mac = _first_mac(_yaml(raw.get("network-config"))) or _keyfile_mac(files.get(NM_KEYFILE))
    # Its own file on the ISO; a seed from before that carried it in user-data.
    on_seed = raw.get(ANSWERS_ON_SEED)
    answers = on_seed.decode("utf-8", "replace") if on_seed else files.get(SEED_ANSWERS)
    return SeedFacts(fqdn=fqdn if isinstance(fqdn, str) else None, mac=mac,
                     secret_lines=password_lines(answers) if answers else ())


def password_lines(answers: str) -> tuple[bytes, ...]:
    """The answer file's lines that carry a password (`KEY=str:VALUE`, the key naming a
    password): every copy of the answer file holds them, and no other file would."""
    found = []
    for line in answers.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and "password" in key.lower() and value.startswith("str:") and value != "str:":
            found.append(line.strip().encode("utf-8"))
    return tuple(found)


def _written_files(user_data: dict[str, Any]) -> dict[str, str]:
    entries = user_data.get("write_files")
    if not isinstance(entries, list):
        return {}
    return {str(e["path"]): e["content"] for e in entries
            if isinstance(e, dict) and isinstance(e.get("content"), str) and "path" in e}


def _keyfile_mac(keyfile: str | None) -> str | None:
    match = KEYFILE_MAC.search(keyfile or "")
    return match.group(1).lower() if match else None


def _read_iso_files(iso: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    image = pycdlib.PyCdlib()
    try:
        image.open(str(iso))
    except Exception as exc:  # pycdlib raises its own types and OSError alike
        raise InputError(f"{iso} is not a readable ISO 9660 image: {exc}") from exc
    try:
        return {name: data for name in names if (data := _read_file(image, name)) is not None}
    finally:
        image.close()


def _read_file(image: Any, name: str) -> bytes | None:
    buffer = io.BytesIO()
    try:
        image.get_file_from_iso_fp(buffer, rr_path=f"/{name}")
    except Exception:  # absent file: the seed simply does not say
        return None
    return buffer.getvalue()


def _yaml(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError:
        return None


def _first_mac(network_config: Any) -> str | None:
    """The first `match: macaddress:` of a network-config v2 document."""
    if not isinstance(network_config, dict):
        return None
    ethernets = network_config.get("ethernets") or network_config.get("network", {}).get(
        "ethernets", {})
    for entry in (ethernets or {}).values():
        mac = (entry or {}).get("match", {}).get("macaddress")
        if isinstance(mac, str):
            return mac.lower()
    return None
