"""he-launch's options: parsed once from argv into a frozen `LaunchOptions`."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Literal

from builder import __version__
from builder.errors import InputError

DEFAULT_URI = "qemu:///system"
DEFAULT_STORAGE = Path("/var/tmp/he-launch")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
VirtChoice = Literal["auto", "kvm", "qemu"]
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="he-launch",
        description="Boot the engine appliance with its seed and exit with engine-setup's status.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_input_options(parser)
    _add_vm_options(parser)
    _add_run_options(parser)
    return parser


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("inputs")
    group.add_argument("--appliance", type=Path, required=True, metavar="OVA|DIR|RPM",
                       help="the appliance: an OVA, the directory holding it (the installed "
                            "RPM's /usr/share/ovirt-engine-appliance/) or the appliance RPM")
    seed = group.add_mutually_exclusive_group(required=True)
    seed.add_argument("--seed", type=Path, metavar="ISO", help="a seed ISO from he-build seed")
    seed.add_argument("--inventory", type=Path, metavar="FILE",
                      help="render the site's seed from this inventory (with --site)")
    seed.add_argument("--no-seed", action="store_true",
                      help="boot without a seed (an appliance seeded before)")
    group.add_argument("--site", metavar="NAME", help="the site (names the domain)")
    group.add_argument("--fqdn", help="the engine's FQDN (default: from the inventory or seed)")
    group.add_argument("--network-from-host", metavar="IFACE",
                       help="static IPv4 in IFACE's subnet: host prefix, gateway and DNS")
    group.add_argument("--address", type=IPv4Address,
                       help="the engine VM's IPv4 address for --network-from-host")
    # The same option as `he-build seed`'s (builder.cli.inventory), defined here so that
    # he-launch does not import the inventory models unless it renders a seed.
    group.add_argument("--allow-secrets-from", type=Path, action="append", metavar="DIR",
                       help="with --inventory: also read file: secrets from DIR (absolute "
                            "paths in the inventory; repeatable)")


def _add_vm_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("virtual machine")
    group.add_argument("--uri", default=DEFAULT_URI, help=f"libvirt URI (default {DEFAULT_URI})")
    group.add_argument("--storage", type=Path, default=DEFAULT_STORAGE, metavar="DIR",
                       help=f"where disks and logs go (default {DEFAULT_STORAGE})")
    nic = group.add_mutually_exclusive_group(required=True)
    nic.add_argument("--network", metavar="NAME", help="attach the NIC to this libvirt network")
    nic.add_argument("--bridge", metavar="BR", help="attach the NIC to this host bridge")
    nic.add_argument("--no-network", action="store_true", help="no NIC at all")
    group.add_argument("--mac", type=str.lower, help="the NIC's MAC (default: the site's)")
    group.add_argument("--name", dest="domain_name", help="domain name (default he-engine-SITE)")
    group.add_argument("--memory", dest="memory_mib", type=int, metavar="MIB",
                       help="memory in MiB (default: from the OVF)")
    group.add_argument("--vcpus", type=int, help="vCPUs (default: from the OVF)")
    group.add_argument("--virt-type", choices=("auto", "kvm", "qemu"), default="auto",
                       help="kvm, qemu (TCG), or auto: kvm when it works (default)")
    group.add_argument("--firmware", choices=("uefi", "bios"),
                       help="boot with UEFI (OVMF, secure boot off) or BIOS (default: what the "
                            "appliance's OVF says, else bios)")
    group.add_argument("--transient", action="store_true",
                       help="do not define the domain persistently")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run")
    group.add_argument("--boot-timeout", type=float, default=900.0, metavar="S",
                       help="seconds until the guest's first report (default 900)")
    group.add_argument("--setup-timeout", type=float, default=7200.0, metavar="S",
                       help="seconds from the first report to engine-setup's status (default 7200)")
    group.add_argument("--keep", action="store_true", help="keep the domain after a failure")
    group.add_argument("--replace", action="store_true",
                       help="replace an existing domain of the same name")
    group.add_argument("--health-check", action="store_true",
                       help="after success, poll the engine's health page until it answers")
    group.add_argument("--health-timeout", type=float, default=600.0, metavar="S")
    group.add_argument("--health-url", metavar="URL",
                       help="default http://FQDN/ovirt-engine/services/health")
    group.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    group.add_argument("--debug", action="store_true", help="log every step, show tracebacks")


def options_from_args(args: argparse.Namespace) -> LaunchOptions:
    """Validate what argparse cannot and freeze the result."""
    values = {k: v for k, v in vars(args).items() if k not in ("no_seed", "no_network")}
    values["allow_secrets_from"] = tuple(values.get("allow_secrets_from") or ())
    opts = LaunchOptions(**values)
    check_options(opts)
    return opts


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
