"""A seed rendered on the spot from the inventory (Jinja2: loaded only for this)."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from builder.errors import InputError
from builder.inventory.fields import parse, to_json
from builder.inventory.load import Inventory, load_inventory
from builder.inventory.models import Site
from builder.inventory.problems import InvalidFields
from builder.launch.hostnet import HostNetwork
from builder.launch.seeding import SeedPlan, attach_copy
from builder.launch.storage import StorageModes
from builder.seed.master import ANSWERS_NAME, write_site_seed
from builder.seed.read import password_lines


def render_site_seed(
    inventory: Path, site_name: str, workdir: Path, *, env: Mapping[str, str],
    host_network: HostNetwork | None = None, address: IPv4Address | None = None,
    allow_secrets_from: Sequence[Path] = (),
    modes: StorageModes | None = None,
) -> SeedPlan:
    """Render the site's seed from the inventory into `workdir/seed/SITE/`."""
    loaded = load_inventory(inventory, allow_secrets_from=allow_secrets_from)
    site = find_site(loaded, site_name)
    if host_network is not None:
        site = apply_host_network(site, host_network, address)
    secrets = loaded.resolve_secrets(site, env=env, prompt=_prompt())
    modes = modes or StorageModes()
    artifacts = write_site_seed(site, secrets, modes.private_dir(workdir / "seed"), env=env)
    # The seed directory is private (0700); qemu, running as its own user, gets a copy.
    attached = attach_copy(artifacts.iso, workdir / "seed.iso", modes)
    answers = artifacts.file(ANSWERS_NAME).path.read_text("utf-8")
    return SeedPlan(iso=attached, fqdn=site.fqdn, mac=artifacts.mac,
                    copies=(attached, workdir / "seed"), secret_lines=password_lines(answers))


def _prompt() -> Callable[[str], str] | None:
    """`prompt` secrets are asked for on a terminal, never echoed; without one they fail."""
    return _ask if sys.stdin.isatty() else None


def _ask(label: str) -> str:
    """As `he-build seed` asks; Ctrl-C ends the prompt's line, so the next message starts on
    its own."""
    try:
        return getpass.getpass(f"{label}: ")
    except KeyboardInterrupt:
        print(file=sys.stderr, flush=True)
        raise


def find_site(inventory: Inventory, name: str) -> Site:
    sites = inventory.sites
    if name not in sites:
        known = ", ".join(sites) or "none"
        raise InputError(f"site {name} is not in {inventory.path}", hint=f"sites there: {known}")
    return sites[name]


def apply_host_network(site: Site, host: HostNetwork, address: IPv4Address | None) -> Site:
    """The site with a static IPv4 config in the host's subnet (address: option, else inventory)."""
    chosen = address or (site.network.ipv4.address.ip if site.network.ipv4 else None)
    if chosen is None:
        raise InputError(f"--network-from-host: site {site.name} has no IPv4 address",
                         hint="pass --address A.B.C.D or set network.ipv4.address")
    vm_address = IPv4Interface(f"{chosen}/{host.address.network.prefixlen}")
    if vm_address.network != host.address.network:
        raise InputError(f"--network-from-host: {chosen} is not in {host.interface}'s subnet "
                         f"{host.address.network}")
    if chosen in (host.address.ip, host.address.network.network_address,
                  host.address.network.broadcast_address):
        raise InputError(f"--network-from-host: {chosen} is the host's own, the network's or "
                         f"the broadcast address of {host.address.network}")
    network = {**to_json(site.network), "mode": "static",
               "ipv4": {"address": vm_address, "gateway": host.gateway},
               "dns_servers": host.dns_servers or site.network.dns_servers}
    # Validated again as a whole site: the inventory's rules hold for what the host adds.
    try:
        return parse(Site, {**to_json(site), "network": network})
    except InvalidFields as exc:
        raise InputError(f"--network-from-host: site {site.name}: "
                         f"{exc.problems[0].message}") from None
