"""The engine VM's network in the seed: a NetworkManager keyfile (every site), network-config
version 2 (static sites), and the address facts other files need.

Two ways because appliances differ. oVirt's appliance disables cloud-init networking
(`network: {config: disabled}`), so network-config is ignored there and the keyfile, activated
by the runner before engine-setup, is what configures the NIC (as hosted-engine does with the
same `hosted-engine` profile). An appliance with cloud-init networking on applies
network-config from its first boot stage: it gets the same addresses early and no DHCP
fallback on a static network; the runner then activates the keyfile's profile and deletes the
profile cloud-init rendered for the same NIC, so one profile is left (docs/seeds.md).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Any

from builder.errors import InputError
from builder.inventory.models import Site
from builder.repro import stable_uuid
from builder.seed.documents import dump_yaml

# hosted-engine's own profile name and file: a later hosted-engine step that writes its
# keyfile into the disk replaces this one instead of adding a second profile for the NIC.
NM_PROFILE = "hosted-engine"
NM_KEYFILE = f"/etc/NetworkManager/system-connections/{NM_PROFILE}.nmconnection"
# What would end, escape or split a keyfile value.
_KEYFILE_BREAKING = frozenset("\\\n\r")
NM_HEADER = "# Written by he-builder's seed: the engine VM's NIC, matched by its MAC address.\n"


def static_addresses(site: Site) -> tuple[IPv4Address | IPv6Address, ...]:
    """The engine VM's own addresses when configured statically (none for DHCP)."""
    net = site.network
    if net.mode != "static":
        return ()
    found: list[IPv4Address | IPv6Address] = []
    if net.ipv4 is not None:
        found.append(net.ipv4.address.ip)
    if net.ipv6 is not None:
        found.append(net.ipv6.address.ip)
    return tuple(found)


def build_network_config(site: Site) -> dict[str, Any] | None:
    """The v2 network config for a static site; None for DHCP (cloud-init's fallback does it)."""
    net = site.network
    if net.mode != "static":
        return None
    if net.ipv4 is None and net.ipv6 is None:
        message = f"site {site.name}: network: static mode needs ipv4 and/or ipv6"
        raise InputError(message, problems=[message])
    return {"version": 2, "ethernets": {net.interface: _ethernet(site)}}


def _ethernet(site: Site) -> dict[str, Any]:
    net = site.network
    interface: dict[str, Any] = {
        "match": {"macaddress": site.mac},
        "set-name": net.interface,
        "dhcp4": False,
        "dhcp6": False,
        "addresses": [str(cfg.address) for cfg in (net.ipv4, net.ipv6) if cfg is not None],
    }
    # gateway4/gateway6 rather than `routes: [{to: ::/0}]`: cloud-init 22.4's ifupdown
    # renderer turns a ::/0 route into ::/64, while every renderer handles these keys.
    if net.ipv4 is not None and net.ipv4.gateway is not None:
        interface["gateway4"] = str(net.ipv4.gateway)
    if net.ipv6 is not None and net.ipv6.gateway is not None:
        interface["gateway6"] = str(net.ipv6.gateway)
    nameservers = _nameservers(site)
    if nameservers:
        interface["nameservers"] = nameservers
    return interface


def _nameservers(site: Site) -> dict[str, list[str]]:
    net = site.network
    found: dict[str, list[str]] = {}
    if net.dns_servers:
        found["addresses"] = [str(server) for server in net.dns_servers]
    if net.search_domains:
        found["search"] = list(net.search_domains)
    return found


def render_network_config(site: Site) -> str | None:
    """network-config text, or None when the site uses DHCP."""
    config = build_network_config(site)
    return None if config is None else dump_yaml(config)


def render_nm_keyfile(site: Site) -> str:
    """The NetworkManager keyfile of the engine VM's NIC (static or DHCP), matched by MAC.

    A family the site does not configure is `method=disabled`, as hosted-engine writes it.
    """
    sections: list[tuple[str, list[tuple[str, str]]]] = [
        ("connection", [("id", NM_PROFILE), ("uuid", str(stable_uuid("nm-profile", site.name))),
                        ("type", "ethernet"), ("autoconnect", "true"), ("zone", "public")]),
        ("ethernet", [("mac-address", site.mac.upper())]),
        ("ipv4", _nm_ipv4(site)),
        ("ipv6", _nm_ipv6(site)),
    ]
    lines = [NM_HEADER.rstrip("\n")]
    for name, entries in sections:
        lines.append(f"\n[{name}]")
        lines += [f"{key}={_keyfile_value(value)}" for key, value in entries]
    return "\n".join(lines) + "\n"


def _nm_ipv4(site: Site) -> list[tuple[str, str]]:
    net = site.network
    if net.mode == "dhcp":
        return [("method", "auto"), *_nm_dns(site, 4, searches=True)]
    if net.ipv4 is None:
        return [("method", "disabled")]
    entries = [("method", "manual"), ("address1", str(net.ipv4.address))]
    if net.ipv4.gateway is not None:
        entries.append(("gateway", str(net.ipv4.gateway)))
    return entries + _nm_dns(site, 4, searches=True)


def _nm_ipv6(site: Site) -> list[tuple[str, str]]:
    net = site.network
    if net.mode == "dhcp" or net.ipv6 is None:
        return [("method", "disabled")]
    entries = [("method", "manual"), ("address1", str(net.ipv6.address))]
    if net.ipv6.gateway is not None:
        entries.append(("gateway", str(net.ipv6.gateway)))
    # Search domains go with IPv4 when the site has it (NetworkManager merges both lists).
    return entries + _nm_dns(site, 6, searches=not _has_ipv4(site))


def _has_ipv4(site: Site) -> bool:
    return site.network.mode == "dhcp" or site.network.ipv4 is not None


def _has_ipv6(site: Site) -> bool:
    return site.network.mode == "static" and site.network.ipv6 is not None


def _nm_dns(site: Site, family: int, *, searches: bool) -> list[tuple[str, str]]:
    net = site.network
    servers = [str(server) for server in net.dns_servers if server.version == family]
    entries = [("dns", ";".join(servers) + ";")] if servers else []
    if searches and net.search_domains:
        entries.append(("dns-search", ";".join(net.search_domains) + ";"))
    return entries


def check_dns_families(site: Site) -> None:
    """NetworkManager keeps DNS servers per address family: one of a family the site leaves
    unconfigured (e.g. an IPv6 server on an IPv4-only site) would be dropped without a word."""
    net = site.network
    usable = {4: _has_ipv4(site), 6: _has_ipv6(site)}
    for index, server in enumerate(net.dns_servers):
        if not usable[server.version]:
            message = (f"site {site.name}: network.dns_servers[{index}]: {server} is IPv"
                       f"{server.version}, but the site configures no IPv{server.version} "
                       "address")
            raise InputError(message, problems=[message])


def _keyfile_value(value: str) -> str:
    """Every value here is a validated address, name or constant; a keyfile separator or
    escape in one would be a bug upstream, not something to encode."""
    if not _KEYFILE_BREAKING.isdisjoint(value) or not value.isprintable():
        raise ValueError(f"not a plain keyfile value: {value!r}")
    return value
