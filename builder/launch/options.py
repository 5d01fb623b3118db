"""he-launch's options, frozen and checked (builder.cli.he_launch parses them from argv).

The checks run before anything else: while an option or an input path is wrong, no libvirt
connection is opened, no directory made, no domain replaced. Each problem is one line naming
the option and the value given (quoted, so that blanks and control characters show)."""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from builder.errors import InputError
from builder.inventory.patterns import (
    FQDN_PATTERN,
    INTERFACE_PATTERN,
    MAC_PATTERN,
    SITE_NAME_PATTERN,
)
from builder.virt.domain import VirtChoice

DEFAULT_URI = "qemu:///system"
DEFAULT_STORAGE = Path("/var/tmp/he-launch")
HINT = "see he-launch --help"

# The inventory's own patterns, matched with fullmatch: a `$` alone lets a trailing line break
# through.
MAC_RE = re.compile(MAC_PATTERN)
FQDN_RE = re.compile(FQDN_PATTERN)
SITE_NAME_RE = re.compile(SITE_NAME_PATTERN)
INTERFACE_RE = re.compile(INTERFACE_PATTERN)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# Whitespace and control characters (C0, C1, line and paragraph separators, lone surrogates).
BLANK_OR_CONTROL_RE = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# Far above any engine VM; what libvirt would refuse only after the disk was unpacked.
MAX_MEMORY_MIB = 16 << 20  # 16 TiB
MAX_VCPUS = 4096
# he-launch sets its storage directory's mode and owner (0710 root:qemu, or 0700): never one
# of these, which other programs and users share.
SYSTEM_DIRS = frozenset(Path(p) for p in (
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/media", "/mnt", "/opt",
    "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/local",
    "/usr/share", "/var", "/var/cache", "/var/lib", "/var/lib/libvirt",
    "/var/lib/libvirt/images", "/var/log", "/var/tmp",
))
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
    """InputError naming every problem: the one problem as its message, or their count."""
    problems = [*_combination_problems(opts), *_name_problems(opts), *_vm_problems(opts),
                *_run_problems(opts), *_path_problems(opts)]
    if len(problems) == 1:
        raise InputError(problems[0], hint=HINT)
    if problems:
        raise InputError(f"{len(problems)} problems with the options", problems=problems,
                         hint=HINT)


def quoted(value: object) -> str:
    """The value as given, quoted: blanks visible, control characters escaped."""
    return repr(str(value))


def _combination_problems(opts: LaunchOptions) -> list[str]:
    problems = []
    if opts.inventory is not None and opts.site is None:
        problems.append("--inventory needs --site NAME")
    if opts.site is None and opts.domain_name is None:
        problems.append("name the domain: --site NAME or --name NAME")
    if opts.network_from_host is not None and opts.inventory is None:
        problems.append("--network-from-host renders the seed: it needs --inventory")
    if opts.address is not None and opts.network_from_host is None:
        problems.append("--address is the engine's address for --network-from-host: "
                        "it needs --network-from-host IFACE")
    if opts.allow_secrets_from and opts.inventory is None:
        problems.append("--allow-secrets-from is for the seed rendered from --inventory")
    # A seed ISO names the FQDN (he-build's manifest, or its user-data).
    if opts.health_check and opts.fqdn is None and opts.inventory is None \
            and opts.seed is None and opts.health_url is None:
        problems.append("--health-check needs the FQDN: --inventory, --seed, --fqdn or "
                        "--health-url")
    return problems


def _name_problems(opts: LaunchOptions) -> list[str]:
    """Names that end up in paths, the domain XML and URLs."""
    problems = []
    if opts.site is not None and not SITE_NAME_RE.fullmatch(opts.site):
        problems.append(f"--site {quoted(opts.site)}: not a site name (lowercase letters, "
                        "digits and '-', starting with a letter)")
    if opts.domain_name is not None and not NAME_RE.fullmatch(opts.domain_name):
        problems.append(f"--name {quoted(opts.domain_name)}: not a domain name (up to 63 "
                        "letters, digits, '.', '_' and '-', starting with a letter or digit)")
    if opts.fqdn is not None and not FQDN_RE.fullmatch(opts.fqdn):
        problems.append(f"--fqdn {quoted(opts.fqdn)}: not a fully qualified domain name")
    for flag, iface in (("--bridge", opts.bridge),
                        ("--network-from-host", opts.network_from_host)):
        if iface is not None and not INTERFACE_RE.fullmatch(iface):
            problems.append(f"{flag} {quoted(iface)}: not an interface name (at most 15 "
                            "letters, digits, '.', '_' and '-')")
    if opts.network is not None and (not opts.network or "/" in opts.network
                                     or BLANK_OR_CONTROL_RE.search(opts.network)):
        problems.append(f"--network {quoted(opts.network)}: not a libvirt network name")
    return problems


def _vm_problems(opts: LaunchOptions) -> list[str]:
    problems = []
    if opts.mac is not None:
        problems.extend(_mac_problems(opts.mac))
    for flag, value, limit in (("--memory", opts.memory_mib, MAX_MEMORY_MIB),
                               ("--vcpus", opts.vcpus, MAX_VCPUS)):
        if value is not None and not 1 <= value <= limit:
            problems.append(f"{flag} {value}: must be from 1 to {limit:,}")
    uri = uri_problem(opts.uri)
    return problems if uri is None else [*problems, uri]


def uri_problem(uri: str) -> str | None:
    """Why `--uri` is not a libvirt URI, None when it may be one: an empty value (an unset
    shell variable) would connect to libvirt's own default, not to qemu:///system."""
    if not uri or BLANK_OR_CONTROL_RE.search(uri):
        return (f"--uri {quoted(uri)}: not a libvirt URI (an empty one would connect to "
                "libvirt's default)")
    return None


def _mac_problems(mac: str) -> list[str]:
    if not MAC_RE.fullmatch(mac):
        return [f"--mac {quoted(mac)}: not a MAC address (aa:bb:cc:dd:ee:ff)"]
    if int(mac[:2], 16) & 1:
        return [f"--mac {quoted(mac)}: a multicast address; a NIC needs a unicast one "
                "(an even first byte)"]
    return []


def _run_problems(opts: LaunchOptions) -> list[str]:
    problems = []
    for flag, seconds in (("--boot-timeout", opts.boot_timeout),
                          ("--setup-timeout", opts.setup_timeout),
                          ("--health-timeout", opts.health_timeout)):
        # Neither nan (`nan <= 0` is false) nor inf would ever time out.
        if not (math.isfinite(seconds) and seconds > 0):
            problems.append(f"{flag} {seconds:g}: must be a positive number of seconds")
    if opts.health_url is not None and not _is_http_url(opts.health_url):
        problems.append(f"--health-url {quoted(opts.health_url)}: not an http:// or https:// "
                        "URL with a host (and a port up to 65535)")
    return problems


def _is_http_url(url: str) -> bool:
    if BLANK_OR_CONTROL_RE.search(url):
        return False
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _path_problems(opts: LaunchOptions) -> list[str]:
    """What the file system says about the paths given: checked before anything is done."""
    problems = [_missing("--appliance", opts.appliance) or _special("--appliance", opts.appliance)]
    if opts.seed is not None:
        problems.append(_missing("--seed", opts.seed) or _not_a_file("--seed", opts.seed))
    if opts.inventory is not None:
        problems.append(_missing("--inventory", opts.inventory)
                        or _not_a_file("--inventory", opts.inventory))
    for allowed in opts.allow_secrets_from:
        problems.append(_missing("--allow-secrets-from", allowed)
                        or _not_a_directory("--allow-secrets-from", allowed))
    problems.append(storage_problem(opts.storage))
    return [problem for problem in problems if problem]


def _stat(path: Path) -> os.stat_result | str:
    """The path's stat, or why there is none (the system's words: "No such file or directory")."""
    try:
        return path.stat()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    except ValueError:  # an embedded NUL byte
        return "not a usable path"


def _missing(flag: str, path: Path) -> str:
    found = _stat(path)
    return f"{flag} {quoted(path)}: {found}" if isinstance(found, str) else ""


def _not_a_file(flag: str, path: Path) -> str:
    found = _stat(path)
    if isinstance(found, str) or stat.S_ISREG(found.st_mode):
        return ""
    return f"{flag} {quoted(path)}: {_kind(found.st_mode)}, not a regular file"


def _special(flag: str, path: Path) -> str:
    """A FIFO, a socket or a device where a file or a directory is expected."""
    found = _stat(path)
    if isinstance(found, str) or stat.S_ISREG(found.st_mode) or stat.S_ISDIR(found.st_mode):
        return ""
    return f"{flag} {quoted(path)}: {_kind(found.st_mode)}, not a file or a directory"


def _not_a_directory(flag: str, path: Path) -> str:
    found = _stat(path)
    if isinstance(found, str) or stat.S_ISDIR(found.st_mode):
        return ""
    return f"{flag} {quoted(path)}: {_kind(found.st_mode)}, not a directory"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISREG, "a regular file"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "a special file"


def storage_problem(storage: Path) -> str:
    """A directory of he-launch's own (made when missing), never a shared system one."""
    try:
        real = Path(os.path.realpath(storage))
    except (OSError, ValueError):
        real = storage
    if real in SYSTEM_DIRS:
        return (f"--storage {quoted(storage)}: a system directory; he-launch sets the mode and "
                f"owner of its storage, so name a directory of its own (default "
                f"{DEFAULT_STORAGE})")
    try:
        storage.stat()
    except FileNotFoundError:
        return ""  # made by the launch, with its parents
    except (OSError, ValueError):
        return _missing("--storage", storage)
    return _not_a_directory("--storage", storage)
