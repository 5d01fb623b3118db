"""DHCP and DNS registrations for the engine VMs: dnsmasq, ISC dhcpd, and zone-file A/PTR lines.

A DHCP site is registered by its fixed MAC (with its reserved address when the inventory gives
one); every site with a known address also gets forward (A/AAAA) and reverse (PTR) records, since
engine-setup checks that the FQDN resolves both ways.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from builder.atomic import write_atomic
from builder.inventory.models import Site

DNSMASQ_NAME = "dnsmasq.conf"
DHCPD_NAME = "dhcpd.conf"
ZONE_NAME = "records.zone"


@dataclass(frozen=True)
class Registration:
    """What DHCP and DNS need to know about one engine VM."""

    site: str
    fqdn: str
    hostname: str
    mac: str
    dhcp: bool
    addresses: tuple[IPv4Address | IPv6Address, ...]


@dataclass(frozen=True)
class DhcpExport:
    """The three texts, and the registrations they were made from."""

    registrations: tuple[Registration, ...]
    dnsmasq: str
    dhcpd: str
    zone: str


def registration(site: Site) -> Registration:
    net = site.network
    addresses = tuple(cfg.address.ip for cfg in (net.ipv4, net.ipv6) if cfg is not None)
    return Registration(site=site.name, fqdn=site.fqdn, hostname=site.hostname,
                        mac=site.mac, dhcp=net.mode == "dhcp", addresses=addresses)


def build_dhcp_export(sites: Sequence[Site]) -> DhcpExport:
    regs = tuple(registration(site) for site in sites)
    return DhcpExport(registrations=regs, dnsmasq=render_dnsmasq(regs),
                      dhcpd=render_dhcpd(regs), zone=render_zone(regs))


def render_dnsmasq(regs: Sequence[Registration]) -> str:
    """`dhcp-host=MAC[,IPv4][,[IPv6]],HOSTNAME` for each DHCP site."""
    lines = ["# Engine VMs with a fixed MAC (dnsmasq --conf-file or /etc/dnsmasq.d/)"]
    for reg in regs:
        if not reg.dhcp:
            continue
        fields = [reg.mac]
        fields += [str(a) if a.version == 4 else f"[{a}]" for a in reg.addresses]
        fields.append(reg.hostname)
        lines.append(f"# site {reg.site}")
        lines.append("dhcp-host=" + ",".join(fields))
    return "\n".join(lines) + "\n"


def render_dhcpd(regs: Sequence[Registration]) -> str:
    """One ISC dhcpd `host` block for each DHCP site."""
    blocks = ["# Engine VMs with a fixed MAC (include from dhcpd.conf)"]
    for reg in regs:
        if not reg.dhcp:
            continue
        body = [f"  hardware ethernet {reg.mac};"]
        body += [f"  fixed-address {a};" for a in reg.addresses if a.version == 4]
        body.append(f'  option host-name "{reg.hostname}";')
        blocks.append(f"# site {reg.site}\nhost {reg.site}-engine {{\n" + "\n".join(body) + "\n}")
    return "\n".join(blocks) + "\n"


def render_zone(regs: Sequence[Registration]) -> str:
    """Absolute-name A/AAAA and PTR lines, to paste into the forward and reverse zones."""
    lines = ["; Engine VMs: forward (A/AAAA) and reverse (PTR) records"]
    for reg in regs:
        lines.append(f"; site {reg.site}")
        if not reg.addresses:
            lines.append(f"; {reg.fqdn}: no reserved address in the inventory; add its A and "
                         "PTR records once the DHCP server has leased one")
        for address in reg.addresses:
            kind = "A" if address.version == 4 else "AAAA"
            lines.append(f"{reg.fqdn}. IN {kind} {address}")
            lines.append(f"{address.reverse_pointer}. IN PTR {reg.fqdn}.")
    return "\n".join(lines) + "\n"


def write_dhcp_export(export: DhcpExport, directory: Path) -> dict[str, Path]:
    """Write the three files under `directory` (atomically each); return name -> path."""
    texts = {DNSMASQ_NAME: export.dnsmasq, DHCPD_NAME: export.dhcpd, ZONE_NAME: export.zone}
    paths = {}
    for name, text in texts.items():
        write_atomic(directory / name, text.encode("utf-8"), mode=0o644)
        paths[name] = directory / name
    return paths
