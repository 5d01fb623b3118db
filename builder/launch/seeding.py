"""The seed a launch boots with: a private copy of a seed ISO, and what the ISO says."""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pycdlib
import yaml

from builder.atomic import staged_file
from builder.errors import InputError

SECRET_MODE = 0o600


@dataclass(frozen=True)
class SeedPlan:
    """The ISO to attach, what it says about the engine, and the copies to delete afterwards."""

    iso: Path
    fqdn: str | None
    mac: str | None
    copies: tuple[Path, ...]


def copy_seed(iso: Path, workdir: Path) -> SeedPlan:
    """Copy a seed ISO into the work directory (mode 0600): that copy is ejected and deleted."""
    if not iso.is_file():
        raise InputError(f"seed ISO not found: {iso}")
    facts = read_seed_facts(iso)
    final = private_copy(iso, workdir / "seed.iso")
    return SeedPlan(iso=final, fqdn=facts.get("fqdn"), mac=facts.get("mac"), copies=(final,))


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


def read_seed_facts(iso: Path) -> dict[str, str]:
    """The FQDN (user-data) and MAC (network-config) a seed ISO carries, when it says so."""
    documents = _read_iso_documents(iso, ("user-data", "network-config"))
    facts: dict[str, str] = {}
    user_data = documents.get("user-data")
    if isinstance(user_data, dict) and isinstance(user_data.get("fqdn"), str):
        facts["fqdn"] = user_data["fqdn"]
    mac = _first_mac(documents.get("network-config"))
    if mac is not None:
        facts["mac"] = mac
    return facts


def _read_iso_documents(iso: Path, names: tuple[str, ...]) -> dict[str, Any]:
    image = pycdlib.PyCdlib()
    try:
        image.open(str(iso))
    except Exception as exc:  # pycdlib raises its own types and OSError alike
        raise InputError(f"{iso} is not a readable ISO 9660 image: {exc}") from exc
    try:
        return {name: doc for name in names if (doc := _read_yaml(image, name)) is not None}
    finally:
        image.close()


def _read_yaml(image: Any, name: str) -> Any:
    buffer = io.BytesIO()
    try:
        image.get_file_from_iso_fp(buffer, rr_path=f"/{name}")
    except Exception:  # absent file: the seed simply does not say
        return None
    try:
        return yaml.safe_load(buffer.getvalue())
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
