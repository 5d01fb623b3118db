"""Checks that span fields or sites: network mode, gateways, engine options, answer keys,
secret file locations, and cross-site conflicts.

These are the rules `he-build seed` relies on: whatever it would refuse in an inventory value,
`inventory check` refuses first, with file and line.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface

from builder.inventory.models import Network, Site
from builder.inventory.otopi import AUTO_ACCEPT_KEY, DERIVED_ANSWER_KEYS
from builder.inventory.problems import Problem
from builder.inventory.secrets import SECRET_FIELDS, SecretFiles, reference_problem
from builder.inventory.syntax import MAX_ORGANIZATION


def check_site(site: Site, files: SecretFiles | None = None) -> list[Problem]:
    """What one site's fields can't express alone (`files`: where file: secrets may be)."""
    problems = [*check_network(site.network), *check_engine(site), *check_extra_answers(site),
                *check_fleet_fields(site)]
    if files is not None:
        problems += check_secret_files(site, files)
    return problems


def check_engine(site: Site) -> list[Problem]:
    engine = site.engine
    problems = []
    if engine.configure_grafana and not engine.configure_dwh:
        problems.append(Problem(("engine", "configure_grafana"), "Grafana needs the data "
                                "warehouse (set engine.configure_dwh: true)"))
    if engine.organization is None and len(site.domain) > MAX_ORGANIZATION:
        problems.append(Problem(("engine", "organization"), f"the default, the FQDN's domain, "
                                f"has {len(site.domain)} characters, more than the "
                                f"{MAX_ORGANIZATION} X.509 allows: set engine.organization"))
    return problems


def check_extra_answers(site: Site) -> list[Problem]:
    """A free-form answer may not silently replace one the seed derives from a field."""
    problems = []
    for key in site.extra_answers:
        field = DERIVED_ANSWER_KEYS.get(key)
        if key == AUTO_ACCEPT_KEY:
            message = f"{key} is set by the seed for the unattended run; it cannot be changed"
        elif field is not None:
            message = f"{key} is already set from the inventory field {field}; change it there"
        else:
            continue
        problems.append(Problem(("extra_answers", key), message))
    return problems


def check_secret_files(site: Site, files: SecretFiles) -> list[Problem]:
    problems = []
    for name in SECRET_FIELDS:
        problem = reference_problem(getattr(site, name), files)
        if problem is not None:
            problems.append(Problem((name,), problem))
    return problems


def check_network(net: Network) -> list[Problem]:
    problems: list[Problem] = []
    if net.mode == "static" and net.ipv4 is None and net.ipv6 is None:
        problems.append(Problem(("network", "mode"), "static mode needs ipv4 and/or ipv6"))
    else:
        problems += check_dns_families(net)
    for family, static in (("ipv4", net.ipv4), ("ipv6", net.ipv6)):
        if static is None:
            continue
        path = ("network", family)
        if net.mode == "dhcp":
            problems.append(Problem(path, "only allowed with mode: static"))
        problems.extend(check_gateway(path, static.address, static.gateway))
    return problems


def check_dns_families(net: Network) -> list[Problem]:
    """NetworkManager keeps DNS servers per address family, and the seed disables a family the
    site does not configure (DHCP: IPv4 only): a server of that family would be dropped."""
    configured = {4: net.mode == "dhcp" or net.ipv4 is not None,
                  6: net.mode == "static" and net.ipv6 is not None}
    return [
        Problem(("network", "dns_servers", index), f"{server} is IPv{server.version}, but the "
                f"site configures no IPv{server.version} address")
        for index, server in enumerate(net.dns_servers) if not configured[server.version]
    ]


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
    values.append((("network", "mac"), "derived MAC" if mac_derived else "MAC", site.mac))
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
