"""The inventory's records: each field's kind converts a YAML value or names its problem."""

from __future__ import annotations

import dataclasses
import json
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

import pytest

from builder.inventory.fields import check, parse, to_json
from builder.inventory.load import DEFAULT_INVENTORY, load_inventory
from builder.inventory.models import Network, Site
from builder.inventory.problems import InvalidFields, Problem
from builder.inventory.schema import render_schema

MINIMAL: dict[str, Any] = {"name": "dc1", "fqdn": "engine.dc1.example.com",
                           "root_password": "env:ROOT_PW", "admin_password": "prompt"}


@pytest.mark.parametrize("name", ["dc1", "dc2"])
def test_a_site_as_json_reads_back_as_the_same_site(name: str) -> None:
    site = load_inventory(DEFAULT_INVENTORY).sites[name]
    data = json.loads(json.dumps(to_json(site)))
    assert parse(Site, data) == site
    assert list(data) == [spec.name for spec in dataclasses.fields(Site)]


def test_every_problem_is_reported_not_only_the_first() -> None:
    with pytest.raises(InvalidFields) as info:
        parse(Site, {"name": "dc1", "vcpus": 0, "network": {"mode": "bridge"}})
    assert info.value.problems == [
        Problem(("fqdn",), "required"),
        Problem(("vcpus",), "must be at least 1, got 0"),
        Problem(("network", "mode"), "must be 'dhcp' or 'static', got 'bridge'"),
        Problem(("root_password",), "required"),
        Problem(("admin_password",), "required"),
    ]
    assert str(info.value).startswith("fqdn: required; vcpus: must be at least 1, got 0; ")


def test_values_are_converted_to_the_field_types() -> None:
    site = parse(Site, {**MINIMAL, "vcpus": "8", "memory_mib": 32768.0,
                        "engine": {"configure_dwh": "no", "configure_grafana": "off"},
                        "network": {"mode": "static", "mac": "00:16:3E:AA:00:01",
                                    "ipv4": {"address": "192.0.2.10/24",
                                             "gateway": "192.0.2.1"},
                                    "dns_servers": ["192.0.2.53"]}})
    assert (site.vcpus, site.memory_mib) == (8, 32768)
    assert site.engine.configure_dwh is False and site.engine.configure_grafana is False
    assert site.network.mac == "00:16:3e:aa:00:01"
    assert site.network.ipv4 is not None
    assert site.network.ipv4.address == IPv4Interface("192.0.2.10/24")
    assert site.network.ipv4.gateway == IPv4Address("192.0.2.1")
    assert site.network.dns_servers == (IPv4Address("192.0.2.53"),)


def test_defaults_fill_what_the_mapping_leaves_out() -> None:
    site = parse(Site, MINIMAL)
    assert site.network == Network() and site.network.interface == "eth0"
    assert (site.vcpus, site.timezone, site.root_ssh, site.extra_answers) == (4, "UTC", "key", {})
    assert site.engine.admin_user == "admin@internal"
    other = parse(Site, {**MINIMAL, "name": "dc2"})
    assert other.extra_answers is not site.extra_answers  # each site its own mapping


def test_records_are_frozen() -> None:
    site = parse(Site, MINIMAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        site.vcpus = 8  # type: ignore[misc]


def test_a_misspelt_nested_key_gets_a_suggestion_from_every_record() -> None:
    _, problems = check(Site, {**MINIMAL, "network": {"dns_server": ["192.0.2.53"]}})
    assert problems == [Problem(("network", "dns_server"),
                                "unknown field; did you mean 'dns_servers'?")]


def test_a_secret_reference_problem_never_echoes_the_value() -> None:
    _, problems = check(Site, {**MINIMAL, "root_password": "hunter2", "admin_password": 1234})
    assert all("hunter2" not in p.message and "1234" not in p.message for p in problems)
    assert [p.path for p in problems] == [("root_password",), ("admin_password",)]


def test_a_list_item_problem_is_reported_at_its_index_and_not_as_empty() -> None:
    _, problems = check(Site, {**MINIMAL, "hosts_entries": [
        {"ip": "192.0.2.11", "names": ["bad_name"]}]})
    assert problems == [Problem(("hosts_entries", 0, "names", 0),
                                "not a host name or FQDN: 'bad_name'")]


def test_an_answer_value_is_checked_against_its_declared_type() -> None:
    _, problems = check(Site, {**MINIMAL, "extra_answers": {
        "OVESETUP_A/b": {"type": "int", "value": "5"}}})
    assert problems == [Problem(("extra_answers", "OVESETUP_A/b"),
                                "value '5' is not an integer (type: int)")]


def test_the_schema_describes_each_record_from_its_fields() -> None:
    defs = render_schema()["$defs"]
    assert defs["StaticIPv6"]["required"] == ["address"]
    assert defs["StaticIPv6"]["properties"]["address"]["format"] == "ipv6interface"
    assert defs["StaticIPv4"]["properties"]["gateway"] == {
        "anyOf": [{"type": "string", "format": "ipv4"}, {"type": "null"}], "default": None}
    assert defs["Site"]["properties"]["vcpus"] == {
        "type": "integer", "minimum": 1, "maximum": 512, "default": 4}
    assert defs["Network"]["properties"]["mode"] == {"enum": ["dhcp", "static"],
                                                     "default": "dhcp"}
    assert defs["HostEntry"]["properties"]["names"]["minItems"] == 1
    assert defs["Network"]["description"] == "DHCP with a fixed MAC, or static IPv4 and/or IPv6."
