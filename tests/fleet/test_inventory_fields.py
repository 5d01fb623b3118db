"""The fleet's inventory fields: deploy_host and labels, validated like every other field."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.inventory.load import load_inventory
from tests.fixtures.inventory_text import BASE, problems_of, site

CASES: list[tuple[str, str, str]] = [
    ("address not a host", site("deploy_host: {address: 'host 1'}\n"),
     "6: site dc1: deploy_host.address: not an IP address, host name or FQDN: 'host 1'"),
    ("address missing", site("deploy_host:\n  user: admin\n"),
     "6: site dc1: deploy_host.address: required"),
    ("bad user", site("deploy_host:\n  address: 192.0.2.11\n  user: Admin\n"),
     "8: site dc1: deploy_host.user: not a user name (lowercase letters, digits, '_', '-'): "
     "'Admin'"),
    ("port zero", site("deploy_host:\n  address: 192.0.2.11\n  port: 0\n"),
     "8: site dc1: deploy_host.port: must be at least 1, got 0"),
    ("port too high", site("deploy_host:\n  address: 192.0.2.11\n  port: 70000\n"),
     "8: site dc1: deploy_host.port: must be at most 65535, got 70000"),
    ("become not a bool", site("deploy_host:\n  address: 192.0.2.11\n  become: maybe\n"),
     "8: site dc1: deploy_host.become: expected true or false, got 'maybe'"),
    ("unknown deploy key", site("deploy_host:\n  address: 192.0.2.11\n  adress: x\n"),
     "8: site dc1: deploy_host.adress: unknown field; did you mean 'address'?"),
    ("label not a group name", site("labels: [prod, 9x]\n"),
     "6: site dc1: labels[1]: '9x' is not a label (letters, digits and '_', not starting "
     "with a digit; it becomes an Ansible group)"),
    ("label reserved", site("labels:\n  - all\n"),
     "7: site dc1: labels[0]: 'all' is Ansible's own group; choose another label"),
    ("label twice", site("labels: [prod, emea, prod]\n"),
     "6: site dc1: labels[2]: label 'prod' is listed twice"),
    ("labels not a list", site("labels: prod\n"),
     "6: site dc1: labels: expected a list, got 'prod'"),
    ("defaults deploy_host without address reaches the site",
     site("vcpus: 2\n", defaults="deploy_host: {user: admin}\n"),
     "4: site dc1: deploy_host.address: required"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_fleet_field_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    assert problems_of(tmp_path, text) == [expected]


def test_bad_default_is_reported_once_under_defaults(tmp_path: Path) -> None:
    text = site("deploy_host: {address: 192.0.2.11}\n",
                defaults="deploy_host: {port: -1}\n")
    assert problems_of(tmp_path, text) == ["2: defaults: deploy_host.port: must be at least 1, "
                                           "got -1"]


def test_deploy_host_merges_with_defaults_and_labels_replace(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(site(
        "deploy_host: {address: host1.dc1.example.com}\nlabels: [emea]\n",
        defaults="deploy_host: {user: admin, port: 2222, become: true}\nlabels: [prod]\n")
        + "  dc2:\n    fqdn: engine.dc2.example.com\n    root_password: prompt\n"
          "    admin_password: prompt\n    deploy_host: {address: '2001:DB8::11', user: ops}\n")
    inv = load_inventory(path)
    dc1, dc2 = inv.sites["dc1"], inv.sites["dc2"]
    assert dc1.deploy_host is not None and dc2.deploy_host is not None
    assert (dc1.deploy_host.address, dc1.deploy_host.user, dc1.deploy_host.port,
            dc1.deploy_host.become) == ("host1.dc1.example.com", "admin", 2222, True)
    assert dc1.labels == ("emea",)
    # An IP address is stored in its canonical form.
    assert (dc2.deploy_host.address, dc2.deploy_host.user) == ("2001:db8::11", "ops")
    assert dc2.labels == ("prod",)


def test_sites_without_deploy_host_still_load(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(BASE)
    site_ = load_inventory(path).sites["dc1"]
    assert site_.deploy_host is None and site_.labels == ()
