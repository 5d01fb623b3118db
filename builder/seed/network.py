"""network-config (version 2) for a static site, and the address facts other files need."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Any

from builder.errors import InputError
from builder.inventory.models import Site
from builder.repro import stable_mac
from builder.seed.documents import dump_yaml


def site_mac(site: Site) -> str:
    """The engine VM's MAC: the inventory's, or the one derived from the site name."""
    return site.network.mac or stable_mac(site.name)


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
        "match": {"macaddress": site_mac(site)},
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
