"""--network-from-host: the host's address, gateway and DNS, from `ip -j` output and resolv.conf."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest

from builder.errors import InputError
from builder.inventory.models import Network, Site, StaticIPv4
from builder.launch.hostnet import (
    HostNetwork,
    parse_host_network,
    parse_nameservers,
    read_dns_servers,
    read_host_network,
)
from builder.launch.site_seed import apply_host_network

# What `ip -j -4 addr show dev br0` prints on a host with a secondary and a link-local address.
ADDR_BR0 = json.dumps([{
    "ifindex": 5, "ifname": "br0", "flags": ["BROADCAST", "UP"], "addr_info": [
        {"family": "inet", "local": "169.254.7.7", "prefixlen": 16, "scope": "link"},
        {"family": "inet", "local": "192.0.2.99", "prefixlen": 24, "scope": "global",
         "secondary": True},
        {"family": "inet", "local": "192.0.2.5", "prefixlen": 24, "scope": "global",
         "dynamic": True},
    ]}])
# `ip -j -4 route show default`: two uplinks, and a lower-metric default on the bridge.
ROUTES = json.dumps([
    {"dst": "default", "gateway": "198.51.100.1", "dev": "eth1", "metric": 50},
    {"dst": "default", "gateway": "192.0.2.254", "dev": "br0", "metric": 600},
    {"dst": "default", "gateway": "192.0.2.1", "dev": "br0", "metric": 100},
])
DNS = (IPv4Address("192.0.2.53"),)


def test_the_primary_global_address_and_the_best_gateway_on_its_subnet() -> None:
    host = parse_host_network("br0", ADDR_BR0, ROUTES, DNS)
    assert host == HostNetwork("br0", IPv4Interface("192.0.2.5/24"), IPv4Address("192.0.2.1"),
                               DNS)


def test_a_gateway_through_another_interface_or_subnet_is_not_used() -> None:
    routes = json.dumps([{"dst": "default", "gateway": "198.51.100.1", "dev": "eth1"},
                         {"dst": "default", "gateway": "203.0.113.1", "dev": "br0"}])
    assert parse_host_network("br0", ADDR_BR0, routes, DNS).gateway is None


@pytest.mark.parametrize("addr_json", ["[]", "", "not json", json.dumps([{
    "ifname": "br0", "addr_info": [{"family": "inet6", "local": "2001:db8::5", "prefixlen": 64}],
}])])
def test_an_interface_without_ipv4_is_refused(addr_json: str) -> None:
    with pytest.raises(InputError, match="br0: the interface has no IPv4 address"):
        parse_host_network("br0", addr_json, ROUTES, DNS)


def test_nameservers_skip_loopback_stubs_ipv6_and_junk() -> None:
    text = ("# x\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nnameserver 2001:db8::1\n"
            "nameserver bogus\nsearch example.com\nnameserver\n")
    assert parse_nameservers(text) == (IPv4Address("192.0.2.53"),)


def test_a_stub_resolver_falls_back_to_the_upstream_file(tmp_path: Path) -> None:
    stub, upstream = tmp_path / "resolv.conf", tmp_path / "upstream.conf"
    stub.write_text("nameserver 127.0.0.53\n")
    upstream.write_text("nameserver 192.0.2.53\nnameserver 192.0.2.54\n")
    assert read_dns_servers([stub, upstream]) == (IPv4Address("192.0.2.53"),
                                                 IPv4Address("192.0.2.54"))
    assert read_dns_servers([tmp_path / "missing", stub]) == ()


def test_the_host_network_is_read_from_the_real_loopback() -> None:
    host = read_host_network("lo")
    assert host.address == IPv4Interface("127.0.0.1/8")
    assert host.gateway is None
    with pytest.raises(InputError, match="no IPv4 address"):
        read_host_network("he-no-such-if0")


def site(ipv4: str | None = None) -> Site:
    network = Network(mode="static", mac="00:16:3e:00:00:01",
                      ipv4=StaticIPv4(address=IPv4Interface(ipv4)) if ipv4 else None)
    return Site(name="dc1", fqdn="engine.dc1.example.com", network=network,
                root_password="prompt", admin_password="prompt")


HOST = HostNetwork(interface="eth0", address=IPv4Interface("192.0.2.5/24"),
                   gateway=IPv4Address("192.0.2.1"), dns_servers=(IPv4Address("192.0.2.53"),))


def test_the_host_network_gives_prefix_gateway_and_dns() -> None:
    derived = apply_host_network(site("192.0.2.10/32"), HOST, None)
    assert derived.network.ipv4 is not None
    assert derived.network.ipv4.address == IPv4Interface("192.0.2.10/24")
    assert derived.network.ipv4.gateway == IPv4Address("192.0.2.1")
    assert derived.network.dns_servers == (IPv4Address("192.0.2.53"),)
    assert derived.network.mac == "00:16:3e:00:00:01"


@pytest.mark.parametrize(("address", "problem"), [
    ("198.51.100.20", "not in eth0's subnet"),
    ("192.0.2.5", "the host's own"),
    ("192.0.2.0", "the host's own, the network's or the broadcast"),
    ("192.0.2.255", "the host's own, the network's or the broadcast"),
])
def test_an_address_outside_or_taken_is_refused(address: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        apply_host_network(site(), HOST, IPv4Address(address))


def test_the_address_option_wins_and_one_is_needed() -> None:
    derived = apply_host_network(site("192.0.2.10/24"), HOST, IPv4Address("192.0.2.20"))
    assert derived.network.ipv4 is not None
    assert str(derived.network.ipv4.address) == "192.0.2.20/24"
    with pytest.raises(InputError, match="no IPv4 address"):
        apply_host_network(site(), HOST, None)
