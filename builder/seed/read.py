"""The one reader of a seed: what a seed ISO tells the launcher about the engine VM.

A seed written by `he-build seed` has its manifest.json beside the ISO, which names the site's
FQDN and MAC and pins the ISO's SHA-256: those are taken from it (after checking the ISO is the
one it describes). Any other NoCloud ISO is read itself: the FQDN from user-data, the MAC from
network-config or the NetworkManager keyfile. The answer file's password lines (what the
launcher's overlay scan looks for) always come from the ISO, as the guest receives them.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pycdlib
import yaml

from builder.errors import InputError, IntegrityError
from builder.seed.network import NM_KEYFILE
from builder.seed.runner import ANSWERS_ON_SEED, SEED_ANSWERS

MANIFEST_NAME = "manifest.json"
KEYFILE_MAC = re.compile(r"^mac-address=([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5})$", re.M)


@dataclass(frozen=True)
class SeedFacts:
    """What a seed says about the engine VM."""

    fqdn: str | None = None
    mac: str | None = None
    # The inventory site he-build rendered it for (from the manifest; None for a foreign seed).
    site: str | None = None
    # The answer file's password lines, as the guest receives them: never shown.
    secret_lines: tuple[bytes, ...] = field(default=(), repr=False)


def read_seed(iso: Path) -> SeedFacts:
    """What the seed ISO `iso` says about the engine VM (see the module's docstring)."""
    if not iso.is_file():
        raise InputError(f"seed ISO not found: {iso}")
    from_iso = read_seed_facts(iso)
    manifest = read_manifest(iso)
    if manifest is None:
        return from_iso
    return SeedFacts(fqdn=manifest.get("fqdn") or from_iso.fqdn,
                     mac=manifest.get("mac") or from_iso.mac,
                     site=manifest.get("site") if isinstance(manifest.get("site"), str) else None,
                     secret_lines=from_iso.secret_lines)


def read_manifest(iso: Path) -> dict[str, Any] | None:
    """manifest.json beside `iso` when he-build wrote one for it; IntegrityError when it names
    another ISO (a tampered or mixed-up site directory)."""
    path = iso.with_name(MANIFEST_NAME)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        expected = manifest["files"][iso.name]["sha256"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not our manifest: the ISO itself is read
    actual = hashlib.sha256(iso.read_bytes()).hexdigest()
    if actual != expected:
        raise IntegrityError(f"{iso} is not the ISO its {MANIFEST_NAME} describes "
                             "(changed after he-build seed wrote it)",
                             hint="render the seed again with he-build seed")
    return manifest if isinstance(manifest, dict) else None


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
