"""Checks that span fields or sites: network mode, gateways, and cross-site conflicts."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface

from builder.inventory.models import Network, Site
from builder.inventory.problems import Problem


def check_site(site: Site) -> list[Problem]:
    """What one site's fields can't express alone."""
    return [*check_network(site.network), *check_fleet_fields(site)]


def check_network(net: Network) -> list[Problem]:
    problems: list[Problem] = []
    if net.mode == "static" and net.ipv4 is None and net.ipv6 is None:
        problems.append(Problem(("network", "mode"), "static mode needs ipv4 and/or ipv6"))
    for family, static in (("ipv4", net.ipv4), ("ipv6", net.ipv6)):
        if static is None:
            continue
        path = ("network", family)
        if net.mode == "dhcp":
            problems.append(Problem(path, "only allowed with mode: static"))
        problems.extend(check_gateway(path, static.address, static.gateway))
    return problems


def check_gateway(
    path: tuple[str, ...],
    address: IPv4Interface | IPv6Interface,
    gateway: IPv4Address | IPv6Address | None,
) -> list[Problem]:
    if gateway is None:
        return []
    where = (*path, "gateway")
    if gateway not in address.network:
        return [Problem(where, f"{gateway} is outside the subnet {address.network}")]
    if gateway == address.ip:
        return [Problem(where, f"{gateway} is the site's own address")]
    return []


def check_conflicts(
    sites: Sequence[Site], derived_macs: Collection[str]
) -> list[tuple[str, Problem]]:
    """Values two sites must not share; reported on the later site, naming the first one."""
    seen: dict[tuple[str, str], str] = {}
    problems: list[tuple[str, Problem]] = []
    for site in sites:
        for path, label, value in unique_values(site, site.name in derived_macs):
            first = seen.setdefault((path[-1], value), site.name)
            if first != site.name:
                message = f"{label} {value} is also used by site {first}"
                problems.append((site.name, Problem(path, message)))
    return problems


Unique = tuple[tuple[str, ...], str, str]


def unique_values(site: Site, mac_derived: bool) -> list[Unique]:
    """(path, label, value) of everything that must be unique across sites."""
    net = site.network
    values: list[Unique] = [(("fqdn",), "FQDN", site.fqdn.lower())]
    if net.mac is not None:
        values.append((("network", "mac"), "derived MAC" if mac_derived else "MAC", net.mac))
    for family, static in (("ipv4", net.ipv4), ("ipv6", net.ipv6)):
        if static is not None:
            values.append((("network", family, "address"), "address", str(static.address.ip)))
    if site.instance_id is not None:
        values.append((("instance_id",), "instance-id", site.instance_id))
    return values


def check_fleet_fields(site: Site) -> list[Problem]:
    """deploy_host needs an address once merged (defaults may give only user, port, become);
    a label listed twice is a typo."""
    problems = []
    if site.deploy_host is not None and site.deploy_host.address is None:
        problems.append(Problem(("deploy_host", "address"), "required"))
    seen: set[str] = set()
    for index, label in enumerate(site.labels):
        if label in seen:
            problems.append(Problem(("labels", index), f"label {label!r} is listed twice"))
        seen.add(label)
    return problems
