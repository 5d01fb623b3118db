"""The Ansible collection with ansible-core from PyPI: build/install, inventory plugin, playbooks.

Every Ansible command runs with HOME and ANSIBLE_HOME in a scratch directory, the repository's
ansible/ansible.cfg, and the collection as ansible-galaxy installed it (conftest.py).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from builder.inventory.fields import to_json
from builder.inventory.load import DEFAULT_INVENTORY, load_inventory
from tests.fleet.ansible_env import (
    ANSIBLE_DIR,
    COLLECTION_SRC,
    ansible_env,
    inventory_list,
    plain,
    run,
    tool,
    write_plugin_config,
)

INSTALLED = Path("ansible_collections") / "ovirt_he" / "he_builder"


def ovirt_role_dir() -> Path:
    """oVirt's hosted_engine_setup role, as PyPI's `ansible` package ships it (ovirt.ovirt)."""
    spec = importlib.util.find_spec("ansible_collections.ovirt.ovirt")
    assert spec is not None and spec.submodule_search_locations, "pip install 'ansible>=12'"
    root = Path(next(iter(spec.submodule_search_locations)))
    manifest = json.loads((root / "MANIFEST.json").read_text())
    assert manifest["collection_info"]["version"] == "3.2.1"
    return root / "roles" / "hosted_engine_setup"


def test_collection_builds_and_installs_offline(collections_path: Path, tmp_path: Path) -> None:
    root = collections_path / INSTALLED
    manifest = json.loads((root / "MANIFEST.json").read_text())
    assert manifest["collection_info"]["namespace"] == "ovirt_he"
    assert manifest["collection_info"]["name"] == "he_builder"
    for part in ("plugins/inventory/sites.py", "plugins/callback/fleet_summary.py",
                 "plugins/filter/command_json.py", "plugins/filter/command_json.yml",
                 "roles/he_deploy/tasks/main.yml", "playbooks/deploy.yml",
                 "playbooks/ovirt_hosted_engine.yml", "meta/runtime.yml", "README.md"):
        assert (root / part).is_file(), part
    env = ansible_env(tmp_path, collections_path)
    listed = run([tool("ansible-galaxy"), "collection", "list", "ovirt_he.he_builder",
                  "--format", "json"], env)
    assert listed.returncode == 0, listed.stderr
    found = {name: info for path in json.loads(listed.stdout).values()
             for name, info in path.items()}
    assert found["ovirt_he.he_builder"]["version"] == "0.1.0"
    # The plugins' documentation is what ansible-doc shows operators: it must parse.
    for kind, name in (("inventory", "ovirt_he.he_builder.sites"),
                       ("callback", "ovirt_he.he_builder.fleet_summary"),
                       ("filter", "ovirt_he.he_builder.command_json"),
                       ("role", "ovirt_he.he_builder.he_deploy")):
        doc = run([tool("ansible-doc"), "-t", kind, "--json", name], env)
        assert doc.returncode == 0, doc.stderr
        assert name.rsplit(".", 1)[-1] in doc.stdout


def test_inventory_plugin_lists_the_example_inventory(collections_path: Path,
                                                      tmp_path: Path) -> None:
    env = ansible_env(tmp_path, collections_path)
    listed = plain(inventory_list(ANSIBLE_DIR / "fleet.he_builder.yml", env))
    groups = {name: sorted(body.get("hosts", [])) for name, body in listed.items()
              if name != "_meta" and body.get("hosts")}
    assert groups == {"he_builder_sites": ["dc1", "dc2"], "he_builder_dhcp": ["dc1"],
                      "he_builder_static": ["dc2"], "emea": ["dc1"], "lab": ["dc1"],
                      "americas": ["dc2"]}
    hostvars = listed["_meta"]["hostvars"]
    connection = {site: {k: v for k, v in hv.items() if k.startswith("ansible_")}
                  for site, hv in hostvars.items()}
    assert connection == {
        "dc1": {"ansible_host": "192.0.2.11", "ansible_user": "root", "ansible_port": 22,
                "ansible_become": False},
        "dc2": {"ansible_host": "198.51.100.11", "ansible_user": "admin", "ansible_port": 22,
                "ansible_become": True},
    }
    # The site variables are the loader's own model, secrets as references only.
    inventory = load_inventory(DEFAULT_INVENTORY)
    for name, site in inventory.sites.items():
        assert hostvars[name]["he_builder_site"] == json.loads(json.dumps(to_json(site)))
        assert hostvars[name]["he_builder_inventory"] == str(DEFAULT_INVENTORY)
    listed_text = json.dumps(listed)
    for secret in (DEFAULT_INVENTORY.parent / "secrets").glob("dc*-password"):
        assert secret.read_text().strip() not in listed_text


BAD = """\
sites:
  dc1:
    fqdn: engine_dc1
    root_password: env:ROOT_PW
    admin_password: env:ADMIN_PW
    deploy_host: {address: 192.0.2.11}
  dc2:
    fqdn: engine.dc2.example.com
    root_password: env:ROOT_PW
    admin_password: env:ADMIN_PW
"""


def test_bad_inventory_fails_the_run_with_the_loaders_lines(collections_path: Path,
                                                           tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(BAD)
    source = write_plugin_config(tmp_path / "fleet.he_builder.yml", inventory)
    env = ansible_env(tmp_path, collections_path)
    proc = run([tool("ansible-playbook"), "-i", str(source), "ovirt_he.he_builder.deploy"], env)
    assert proc.returncode != 0
    output = " ".join((proc.stdout + proc.stderr).split())  # Ansible wraps long lines
    assert f"{inventory}:3: site dc1: fqdn: not a fully qualified domain name: 'engine_dc1'" \
        in output
    assert "PLAY RECAP" not in proc.stdout
    # Without the shipped setting, Ansible only warns and deploys nothing, "successfully":
    # the very failure mode any_unparsed_is_failed prevents.
    lenient = run([tool("ansible-playbook"), "-i", str(source), "ovirt_he.he_builder.deploy"],
                  {**env, "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "false",
                   "ANSIBLE_INVENTORY_UNPARSED_FAILED": "false"})
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    assert "skipping: no hosts matched" in lenient.stdout


def test_site_without_deploy_host_is_an_error_unless_left_out(collections_path: Path,
                                                             tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(BAD.replace("engine_dc1", "engine.dc1.example.com"))
    env = ansible_env(tmp_path, collections_path)
    strict = write_plugin_config(tmp_path / "strict.he_builder.yml", inventory)
    proc = run([tool("ansible-inventory"), "-i", str(strict), "--list"], env)
    assert proc.returncode != 0
    assert f"{inventory}:7: site dc2: deploy_host: required by the fleet" in \
        " ".join(proc.stderr.split())
    lenient = write_plugin_config(tmp_path / "lenient.he_builder.yml", inventory,
                                  deploy_host_required=False)
    listed = inventory_list(lenient, env)
    assert sorted(listed["_meta"]["hostvars"]) == ["dc1"]


def test_keyed_groups_and_compose_from_site_fields(collections_path: Path,
                                                   tmp_path: Path) -> None:
    source = tmp_path / "fleet.he_builder.yml"
    source.write_text(
        f"plugin: ovirt_he.he_builder.sites\ninventory: {DEFAULT_INVENTORY}\n"
        "keyed_groups:\n  - key: he_builder_site.engine.storage_type\n    prefix: storage\n"
        "compose:\n  engine_fqdn: he_builder_site.fqdn\n")
    listed = plain(inventory_list(source, ansible_env(tmp_path, collections_path)))
    assert sorted(listed["storage_nfs"]["hosts"]) == ["dc1", "dc2"]
    assert listed["_meta"]["hostvars"]["dc2"]["engine_fqdn"] == "engine.dc2.example.net"


def role_variable_names(role: Path) -> tuple[set[str], str]:
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    used = "\n".join(path.read_text() for path in sorted((role / "tasks").rglob("*.yml")))
    used += "\n".join(path.read_text() for path in sorted((role / "templates").rglob("*.j2")))
    return set(defaults), used


def test_ovirt_role_variables_match_the_roles_own_names(collections_path: Path,
                                                        tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    text = DEFAULT_INVENTORY.read_text().replace(
        "admin_password: file:secrets/dc2-admin-password", "admin_password: env:DC2_ADMIN")
    inventory.write_text(text)
    # Copies, not a link: a secret resolving outside the inventory's directory is refused.
    shutil.copytree(DEFAULT_INVENTORY.parent / "secrets", tmp_path / "secrets")
    source = write_plugin_config(tmp_path / "ovirt.he_builder.yml", inventory,
                                 ovirt_role_vars=True)
    env = ansible_env(tmp_path, collections_path, DC2_ADMIN="from-the-environment")
    hostvars = plain(inventory_list(source, env))["_meta"]["hostvars"]
    defaults, used = role_variable_names(ovirt_role_dir())
    ours = {"ansible_host", "ansible_user", "ansible_port", "ansible_become",
            "he_builder_site", "he_builder_inventory"}
    # The passwords have no default in the role (they must not): it reads them in its tasks.
    secrets = {"he_admin_password", "he_appliance_password"}
    for site, variables in hostvars.items():
        given = set(variables) - ours
        assert given - secrets <= defaults, (site, sorted(given - secrets - defaults))
        for name in secrets:
            assert name in given and re.search(rf"\b{name}\b", used), name
    dc2 = hostvars["dc2"]
    assert {k: dc2[k] for k in ("he_fqdn", "he_vm_mac_addr", "he_vm_ip_addr", "he_vm_ip_prefix",
                                "he_gateway", "he_dns_addr", "he_mem_size_MB", "he_vcpus",
                                "he_vm_etc_hosts", "he_cloud_init_domain_name")} == {
        "he_fqdn": "engine.dc2.example.net", "he_vm_mac_addr": "00:16:3e:00:02:10",
        "he_vm_ip_addr": "198.51.100.10", "he_vm_ip_prefix": 24, "he_gateway": "198.51.100.1",
        "he_dns_addr": "198.51.100.53,2001:db8:2::53", "he_mem_size_MB": 24576, "he_vcpus": 8,
        "he_vm_etc_hosts": False, "he_cloud_init_domain_name": "dc2.example.net"}
    dc1 = hostvars["dc1"]
    assert "he_vm_ip_addr" not in dc1 and dc1["he_vm_etc_hosts"] is True  # DHCP, no local DNS
    # References, never values, in the inventory ...
    assert "from-the-environment" not in json.dumps(hostvars)
    assert dc2["he_admin_password"] == "{{ lookup('ansible.builtin.env', 'DC2_ADMIN') }}"
    # ... that become the values when a task uses them.
    expected = {"dc1": (DEFAULT_INVENTORY.parent / "secrets" / "dc1-admin-password")
                .read_text().removesuffix("\n"), "dc2": "from-the-environment"}
    for site, value in expected.items():
        proc = run([tool("ansible"), "-i", str(source), site, "-c", "local", "-e",
                    "ansible_become=false", "-m", "ansible.builtin.assert", "-a",
                    json.dumps({"that": [f"he_admin_password == {value!r}"], "quiet": True})],
                   env)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_playbooks_pass_syntax_check(collections_path: Path, tmp_path: Path) -> None:
    env = ansible_env(tmp_path, collections_path)
    for playbook in ("ovirt_he.he_builder.deploy", "ovirt_he.he_builder.ovirt_hosted_engine"):
        proc = run([tool("ansible-playbook"), "-i", str(ANSIBLE_DIR / "fleet.he_builder.yml"),
                    "--syntax-check", playbook], env)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ansible_lint_offline_is_clean(tmp_path: Path) -> None:
    # The collection from the checkout (ansible-lint resolves the playbooks' roles with it).
    env = ansible_env(tmp_path, ANSIBLE_DIR)
    proc = run([tool("ansible-lint"), "--offline", "--nocolor", "."], env, cwd=COLLECTION_SRC,
               timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(autouse=True)
def _no_ansible_cfg_in_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """ansible.cfg in the working directory would win over ANSIBLE_CONFIG: run from scratch."""
    monkeypatch.chdir(tmp_path)

