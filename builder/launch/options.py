"""he-launch's options, frozen and checked (builder.cli.he_launch parses them from argv)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Literal

from builder.errors import InputError
from builder.virt.domain import VirtChoice

DEFAULT_URI = "qemu:///system"
DEFAULT_STORAGE = Path("/var/tmp/he-launch")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
FirmwareChoice = Literal["bios", "uefi"]


@dataclass(frozen=True)
class LaunchOptions:
    """Everything one launch needs to know, validated."""

    appliance: Path
    seed: Path | None
    inventory: Path | None
    site: str | None
    fqdn: str | None
    domain_name: str | None
    uri: str
    storage: Path
    network: str | None
    bridge: str | None
    mac: str | None
    memory_mib: int | None
    vcpus: int | None
    virt_type: VirtChoice
    firmware: FirmwareChoice | None
    boot_timeout: float
    setup_timeout: float
    keep: bool
    replace: bool
    transient: bool
    health_check: bool
    health_timeout: float
    health_url: str | None
    network_from_host: str | None
    address: IPv4Address | None
    allow_secrets_from: tuple[Path, ...]
    json: bool
    debug: bool


def check_options(opts: LaunchOptions) -> None:
    problems = [*_input_problems(opts), *_vm_problems(opts)]
    if problems:
        raise InputError("invalid options", problems=problems,
                         hint="see he-launch --help")


def _input_problems(opts: LaunchOptions) -> list[str]:
    problems = []
    if opts.inventory is not None and opts.site is None:
        problems.append("--inventory needs --site NAME")
    if opts.site is None and opts.domain_name is None:
        problems.append("name the domain: --site NAME or --name NAME")
    if opts.network_from_host is not None and opts.inventory is None:
        problems.append("--network-from-host renders the seed: it needs --inventory")
    if opts.allow_secrets_from and opts.inventory is None:
        problems.append("--allow-secrets-from is for the seed rendered from --inventory")
    if opts.health_url is not None and not opts.health_url.startswith(("http://", "https://")):
        problems.append(f"--health-url {opts.health_url}: not an http:// or https:// URL")
    if opts.health_check and opts.fqdn is None and opts.inventory is None \
            and opts.health_url is None:
        problems.append("--health-check needs the FQDN: --inventory, --fqdn or --health-url")
    return problems


def _vm_problems(opts: LaunchOptions) -> list[str]:
    problems = []
    if opts.mac is not None and not MAC_RE.match(opts.mac):
        problems.append(f"--mac {opts.mac}: not a MAC address (aa:bb:cc:dd:ee:ff)")
    if opts.domain_name is not None and not NAME_RE.match(opts.domain_name):
        problems.append(f"--name {opts.domain_name}: use letters, digits, '.', '_' and '-'")
    for flag, value in (("--memory", opts.memory_mib), ("--vcpus", opts.vcpus)):
        if value is not None and value < 1:
            problems.append(f"{flag} must be positive")
    for flag, seconds in (("--boot-timeout", opts.boot_timeout),
                          ("--setup-timeout", opts.setup_timeout),
                          ("--health-timeout", opts.health_timeout)):
        if seconds <= 0:
            problems.append(f"{flag} must be positive")
    return problems
