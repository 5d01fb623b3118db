"""The "quick and dirty" static network: the engine VM joins the host's IPv4 subnet."""

from __future__ import annotations

import json
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, ip_address
from pathlib import Path
from typing import Any

from builder.errors import InputError
from builder.inventory.models import Network, Site, StaticIPv4
from builder.run import require_tool, run

RESOLV_CONF = Path("/etc/resolv.conf")


@dataclass(frozen=True)
class HostNetwork:
    """What the host's interface says: its address with prefix, default gateway, DNS servers."""

    interface: str
    address: IPv4Interface
    gateway: IPv4Address | None
    dns_servers: tuple[IPv4Address, ...]


def read_host_network(interface: str, *, resolv_conf: Path = RESOLV_CONF) -> HostNetwork:
    """Read `interface`'s IPv4 address, the default route through it, and the DNS servers."""
    ip = require_tool("ip", package="iproute2")
    addrs = _json(run([ip, "-j", "-4", "addr", "show", "dev", interface], check=False).text)
    infos = [a for link in addrs for a in link.get("addr_info", []) if a.get("family") == "inet"]
    if not infos:
        raise InputError(f"--network-from-host {interface}: the interface has no IPv4 address")
    address = IPv4Interface(f"{infos[0]['local']}/{infos[0]['prefixlen']}")
    routes = _json(run([ip, "-j", "-4", "route", "show", "default", "dev", interface],
                       check=False).text)
    gateways = [IPv4Address(r["gateway"]) for r in routes if "gateway" in r]
    return HostNetwork(interface=interface, address=address,
                       gateway=gateways[0] if gateways else None,
                       dns_servers=read_dns_servers(resolv_conf))


def _json(text: str) -> list[dict[str, Any]]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def read_dns_servers(resolv_conf: Path) -> tuple[IPv4Address, ...]:
    """The IPv4 `nameserver` lines of resolv.conf, loopback stubs left out (the VM has its own)."""
    try:
        lines = resolv_conf.read_text().splitlines()
    except OSError:
        return ()
    found: list[IPv4Address] = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                addr = ip_address(fields[1])
            except ValueError:
                continue
            if isinstance(addr, IPv4Address) and not addr.is_loopback:
                found.append(addr)
    return tuple(found)


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
    if chosen == host.address.ip:
        raise InputError(f"--network-from-host: {chosen} is the host's own address")
    network = Network(
        mode="static", mac=site.network.mac, interface=site.network.interface,
        ipv4=StaticIPv4(address=vm_address, gateway=host.gateway),
        ipv6=site.network.ipv6, dns_servers=host.dns_servers or site.network.dns_servers,
        search_domains=site.network.search_domains,
    )
    return site.model_copy(update={"network": network})
