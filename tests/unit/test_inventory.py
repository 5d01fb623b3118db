"""Loading the inventory: the bundled example, defaults, derived MACs, site selection, schema."""

from __future__ import annotations

import textwrap
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from builder.errors import InputError
from builder.inventory.load import DEFAULT_INVENTORY, load_inventory, select_sites
from builder.inventory.schema import render_schema
from builder.repro import stable_mac


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_bundled_example_loads_with_no_edits() -> None:
    inv = load_inventory(DEFAULT_INVENTORY)
    assert list(inv.sites) == ["dc1", "dc2"]
    dc1, dc2 = inv.sites["dc1"], inv.sites["dc2"]
    assert dc1.network.mode == "dhcp" and dc1.mac == stable_mac("dc1")
    assert len(dc1.hosts_entries) == 2 and dc1.ssh_keys and dc1.ntp_servers
    assert dc2.network.mode == "static"
    assert dc2.network.ipv4 is not None and dc2.network.ipv6 is not None
    assert dc2.network.ipv4.gateway in dc2.network.ipv4.address.network
    for site in (dc1, dc2):
        for ref in (site.root_password, site.admin_password):
            assert ref.startswith("file:secrets/")
            assert (inv.base_dir / ref.removeprefix("file:")).is_file()


def test_bundled_example_uses_documentation_ranges() -> None:
    inv = load_inventory(DEFAULT_INVENTORY)
    for site in inv.sites.values():
        assert site.fqdn.endswith((".example.com", ".example.net"))
        for static in (site.network.ipv4, site.network.ipv6):
            if static is not None:
                assert static.address.ip.is_private  # 192.0.2/24, 198.51.100/24, 2001:db8::/32


def test_defaults_are_merged_deeply_and_sites_win(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        defaults:
          vcpus: 2
          network:
            dns_servers: [192.0.2.53]
          engine:
            configure_grafana: true
            organization: Default Org
          extra_answers:
            OVESETUP_A/shared: {type: int, value: 1}
        sites:
          dc1:
            fqdn: engine.example.com
            vcpus: 6
            network:
              mode: static
              ipv4: {address: 192.0.2.10/24, gateway: 192.0.2.1}
            engine:
              organization: Site Org
            extra_answers:
              OVESETUP_A/own: {type: multi-str, value: [a, b]}
            root_password: env:ROOT
            admin_password: env:ADMIN
        """)
    site = load_inventory(path).sites["dc1"]
    assert site.vcpus == 6
    assert site.network.dns_servers == (IPv4Address("192.0.2.53"),)
    assert site.network.ipv4 is not None
    assert site.network.ipv4.address == IPv4Interface("192.0.2.10/24")
    assert site.engine.configure_grafana is True and site.engine.organization == "Site Org"
    assert sorted(site.extra_answers) == ["OVESETUP_A/own", "OVESETUP_A/shared"]
    assert site.extra_answers["OVESETUP_A/own"].value == ["a", "b"]


def test_secrets_can_come_from_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        defaults: {root_password: prompt, admin_password: 'file:admin.txt'}
        sites:
          dc1: {fqdn: engine.example.com}
        """)
    assert load_inventory(path).sites["dc1"].admin_password == "file:admin.txt"


def test_derived_mac_is_stable_and_in_the_kvm_range(tmp_path: Path) -> None:
    text = """\
        sites:
          zeta: {fqdn: engine.zeta.example.com, root_password: prompt, admin_password: prompt}
          alpha: {fqdn: engine.alpha.example.com, root_password: prompt, admin_password: prompt}
        """
    first = load_inventory(write(tmp_path, text))
    again = load_inventory(write(tmp_path, text))
    assert list(first.sites) == ["zeta", "alpha"]  # file order, not sorted
    macs = [site.mac for site in first.sites.values()]
    assert macs == [site.mac for site in again.sites.values()]
    assert macs == [stable_mac("zeta"), stable_mac("alpha")]
    assert all(mac is not None and mac.startswith("00:16:3e:") for mac in macs)


def test_mac_is_lowered_and_unquoted_mac_is_text(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        sites:
          dc1:
            fqdn: engine.dc1.example.com
            network: {mac: 00:16:3E:AB:CD:EF}
            root_password: prompt
            admin_password: prompt
          dc2:
            fqdn: engine.dc2.example.com
            network: {mac: 52:54:00:12:34:56}
            root_password: prompt
            admin_password: prompt
        """)
    sites = load_inventory(path).sites
    # YAML 1.1 would read 52:54:00:12:34:56 as a base-60 number.
    assert [s.mac for s in sites.values()] == ["00:16:3e:ab:cd:ef", "52:54:00:12:34:56"]


def test_select_sites_by_name_all_and_unknown() -> None:
    inv = load_inventory(DEFAULT_INVENTORY)
    assert [s.name for s in select_sites(inv, ["dc2", "dc1", "dc2"], False)] == ["dc2", "dc1"]
    assert [s.name for s in select_sites(inv, [], True)] == ["dc1", "dc2"]
    with pytest.raises(InputError) as info:
        select_sites(inv, ["dc9"], False)
    assert info.value.message == f"inventory {DEFAULT_INVENTORY} has no site dc9 (known: dc1, dc2)"
    with pytest.raises(InputError, match="no site chosen"):
        select_sites(inv, [], False)


def objects_in(node: Any) -> list[dict[str, Any]]:
    """Every schema object that declares properties."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append(node)
        for value in node.values():
            found.extend(objects_in(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(objects_in(value))
    return found


def test_schema_is_valid_json_schema_and_closed() -> None:
    schema = render_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    objects = objects_in(schema)
    assert len(objects) >= 8
    assert all(obj.get("additionalProperties") is False for obj in objects)
    assert "name" not in schema["$defs"]["Site"]["properties"]
    assert "fqdn" not in schema["$defs"]["Defaults"]["properties"]


def test_schema_accepts_the_example_and_rejects_unknown_keys() -> None:
    validator = jsonschema.Draft202012Validator(render_schema())
    data = yaml.safe_load(DEFAULT_INVENTORY.read_text())
    assert list(validator.iter_errors(data)) == []
    data["sites"]["dc1"]["colour"] = "red"
    data["sites"]["dc2"]["network"]["mac"] = "not-a-mac"
    errors = {tuple(error.absolute_path): error.message for error in validator.iter_errors(data)}
    assert sorted(errors) == [("sites", "dc1"), ("sites", "dc2", "network", "mac")]
    assert "'colour' was unexpected" in errors["sites", "dc1"]


def test_documented_example_is_the_bundled_file() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "inventory.md").read_text()
    block = docs.split("## Complete example", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    assert block == DEFAULT_INVENTORY.read_text()
