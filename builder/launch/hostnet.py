"""The "quick and dirty" static network: the engine VM joins the host's IPv4 subnet."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, ip_address
from pathlib import Path
from typing import Any

from builder.errors import InputError
from builder.run import require_tool, run

# With a local stub resolver (systemd-resolved) the upstream servers are in the second file.
RESOLV_CONFS = (Path("/etc/resolv.conf"), Path("/run/systemd/resolve/resolv.conf"))


@dataclass(frozen=True)
class HostNetwork:
    """What the host's interface says: its address with prefix, default gateway, DNS servers."""

    interface: str
    address: IPv4Interface
    gateway: IPv4Address | None
    dns_servers: tuple[IPv4Address, ...]


def read_host_network(
    interface: str, *, resolv_confs: Sequence[Path] = RESOLV_CONFS
) -> HostNetwork:
    """Read `interface`'s IPv4 address, the default route through it, and the DNS servers."""
    ip = require_tool("ip", package="iproute2")
    addrs = run([ip, "-j", "-4", "addr", "show", "dev", interface], check=False).text
    routes = run([ip, "-j", "-4", "route", "show", "default"], check=False).text
    return parse_host_network(interface, addrs, routes, read_dns_servers(resolv_confs))


def parse_host_network(
    interface: str, addr_json: str, route_json: str, dns_servers: tuple[IPv4Address, ...]
) -> HostNetwork:
    """The HostNetwork from `ip -j -4 addr show dev IFACE` and `ip -j -4 route show default`."""
    address = primary_address(interface, _json(addr_json))
    return HostNetwork(interface=interface, address=address,
                       gateway=default_gateway(interface, address, _json(route_json)),
                       dns_servers=dns_servers)


def primary_address(interface: str, links: list[dict[str, Any]]) -> IPv4Interface:
    """The interface's primary IPv4 address: global scope first, secondary addresses last."""
    infos = [a for link in links if link.get("ifname", interface) == interface
             for a in link.get("addr_info", []) if a.get("family") == "inet"]
    if not infos:
        raise InputError(f"--network-from-host {interface}: the interface has no IPv4 address")
    best = min(infos, key=lambda a: (a.get("scope") != "global", bool(a.get("secondary"))))
    return IPv4Interface(f"{best['local']}/{best['prefixlen']}")


def default_gateway(
    interface: str, address: IPv4Interface, routes: list[dict[str, Any]]
) -> IPv4Address | None:
    """The default route's gateway through `interface` (lowest metric), when it is on its subnet."""
    candidates = sorted((int(r.get("metric", 0)), str(r["gateway"])) for r in routes
                        if r.get("dst") == "default" and r.get("dev") == interface
                        and "gateway" in r)
    for _, text in candidates:
        gateway = IPv4Address(text)
        if gateway in address.network:
            return gateway
    return None


def _json(text: str) -> list[dict[str, Any]]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def read_dns_servers(resolv_confs: Sequence[Path]) -> tuple[IPv4Address, ...]:
    """The IPv4 `nameserver`s of the first resolv.conf that names any besides loopback stubs
    (the VM cannot reach the host's stub resolver)."""
    for conf in resolv_confs:
        try:
            found = parse_nameservers(conf.read_text())
        except OSError:
            continue
        if found:
            return found
    return ()


def parse_nameservers(text: str) -> tuple[IPv4Address, ...]:
    found: list[IPv4Address] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0] != "nameserver":
            continue
        try:
            addr = ip_address(fields[1])
        except ValueError:
            continue
        if isinstance(addr, IPv4Address) and not addr.is_loopback:
            found.append(addr)
    return tuple(found)
