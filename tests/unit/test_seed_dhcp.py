"""DHCP and DNS registration texts for a DHCP site and a static one (golden, whole text)."""

from __future__ import annotations

from pathlib import Path

from builder.repro import stable_mac
from builder.seed.dhcp import build_dhcp_export, write_dhcp_export
from tests.fixtures.seeds import dhcp_site, static_site


def test_dnsmasq_registers_only_dhcp_sites() -> None:
    export = build_dhcp_export([dhcp_site(), static_site()])
    assert export.dnsmasq == (
        "# Engine VMs with a fixed MAC (dnsmasq --conf-file or /etc/dnsmasq.d/)\n"
        "# site dc1\n"
        f"dhcp-host={stable_mac('dc1')},engine\n"
    )


def test_dhcpd_host_block() -> None:
    export = build_dhcp_export([dhcp_site(), static_site()])
    assert export.dhcpd == (
        "# Engine VMs with a fixed MAC (include from dhcpd.conf)\n"
        "# site dc1\n"
        "host dc1-engine {\n"
        f"  hardware ethernet {stable_mac('dc1')};\n"
        '  option host-name "engine";\n'
        "}\n"
    )


def test_zone_has_forward_and_reverse_records_for_known_addresses() -> None:
    zone = build_dhcp_export([dhcp_site(), static_site()]).zone.splitlines()
    assert zone[3:] == [
        "; site dc2",
        "engine.dc2.example.net. IN A 198.51.100.10",
        "10.100.51.198.in-addr.arpa. IN PTR engine.dc2.example.net.",
        "engine.dc2.example.net. IN AAAA 2001:db8:2::10",
        "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. "
        "IN PTR engine.dc2.example.net.",
    ]
    assert zone[1:3] == [
        "; site dc1",
        "; engine.dc1.example.com: no reserved address in the inventory; add its A and PTR "
        "records once the DHCP server has leased one",
    ]


def test_files_are_written(tmp_path: Path) -> None:
    export = build_dhcp_export([dhcp_site()])
    paths = write_dhcp_export(export, tmp_path / "dhcp")
    assert {name: path.read_text() for name, path in paths.items()} == {
        "dnsmasq.conf": export.dnsmasq, "dhcpd.conf": export.dhcpd,
        "records.zone": export.zone}
