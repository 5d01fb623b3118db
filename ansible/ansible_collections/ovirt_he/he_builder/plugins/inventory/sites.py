# Copyright: he-builder contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible inventory plugin: he-builder's site inventory, read by he-builder's own loader."""

from __future__ import annotations

DOCUMENTATION = r"""
name: sites
short_description: he-builder's site inventory as Ansible hosts
version_added: 0.1.0
description:
  - Reads an he-builder inventory YAML file with he-builder's own loader (the same rules and
    the same one-line problems as C(he-build inventory check)) and turns each site into a host
    named after the site.
  - Connection variables come from the site's C(deploy_host) (C(ansible_host), C(ansible_user),
    C(ansible_port), C(ansible_become)). The whole validated site is in C(he_builder_site)
    (secrets only as their references), the inventory's path in C(he_builder_inventory).
  - Groups are C(he_builder_sites) (every site), C(he_builder_dhcp) / C(he_builder_static)
    (by network mode), and one group per label of the site.
  - With O(ovirt_role_vars), each host also gets the variables of
    C(ovirt.ovirt.hosted_engine_setup); passwords become lookups of their references, never values.
  - The file given to C(-i) must end in C(he_builder.yml) or C(he_builder.yaml). He-builder must
    be importable from the Python that runs Ansible.
extends_documentation_fragment:
  - constructed
options:
  plugin:
    description: The name of this plugin.
    required: true
    choices: ['ovirt_he.he_builder.sites']
    type: str
  inventory:
    description:
      - The he-builder inventory YAML file. A relative path is relative to this configuration file.
    required: true
    type: str
  deploy_host_required:
    description:
      - When true, a site without C(deploy_host) is an error (one line naming file, line and site).
      - When false, such sites are left out with a warning.
    type: bool
    default: true
  ovirt_role_vars:
    description:
      - Also give each host the variables C(ovirt.ovirt.hosted_engine_setup) reads (C(he_fqdn),
        C(he_vm_mac_addr), C(he_vm_ip_addr), C(he_vm_ip_prefix), C(he_gateway), C(he_dns_addr),
        C(he_vm_etc_hosts), C(he_mem_size_MB), C(he_vcpus), C(he_root_ssh_pubkey),
        C(he_cloud_init_domain_name), C(he_appliance_ova), C(he_admin_password),
        C(he_appliance_password)).
    type: bool
    default: false
  ovirt_appliance_ova:
    description:
      - With O(ovirt_role_vars), the OVA path on the hosts given as C(he_appliance_ova). Empty
        (the default) lets oVirt's role install the C(ovirt-engine-appliance) package (the RPM
        that C(he-build appliance) builds) and find the OVA through its discovery file.
    type: str
    default: ''
"""

EXAMPLES = r"""
# fleet.he_builder.yml
plugin: ovirt_he.he_builder.sites
inventory: ../examples/inventory.yaml
# more groups, from any site field:
keyed_groups:
  - key: he_builder_site.engine.storage_type
    prefix: storage
"""

import os
import sys
from pathlib import Path

import yaml
from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable

try:  # ansible-core >= 2.19 renders only templates marked as trusted
    from ansible.template import trust_as_template
except ImportError:  # pragma: no cover - older ansible-core trusts every inventory string
    def trust_as_template(value):
        return value

ALL_SITES_GROUP = "he_builder_sites"
MODE_GROUPS = {"dhcp": "he_builder_dhcp", "static": "he_builder_static"}
# The appliance's root password is what oVirt's role calls the appliance password.
OVIRT_SECRET_VARS = {"root_password": "he_appliance_password",
                     "admin_password": "he_admin_password"}


class InventoryModule(BaseInventoryPlugin, Constructable):
    """One host per site; the site's data as host variables; groups by mode and label."""

    NAME = "ovirt_he.he_builder.sites"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("he_builder.yml", "he_builder.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        source = os.path.expanduser(self.get_option("inventory"))
        if not os.path.isabs(source):
            source = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), source))
        for site, variables, groups in self._hosts_of(load_sites(source), source):
            self._add_site(site, variables, groups)

    def _hosts_of(self, sites, source):
        missing = [site for site in sites if site.deploy_host is None]
        where = site_lines(source) if missing else {}
        if missing and self.get_option("deploy_host_required"):
            lines = [f"{source}:{where.get(site.name, 1)}: site {site.name}: deploy_host: "
                     f"required by the fleet (or set deploy_host_required: false)"
                     for site in missing]
            raise AnsibleParserError("\n".join(lines))
        for site in missing:
            self.display.warning(f"{source}:{where.get(site.name, 1)}: site {site.name} has no "
                                 f"deploy_host: left out of the fleet")
        base_dir = os.path.dirname(source)
        for site in sites:
            if site.deploy_host is None:
                continue
            variables = site_vars(site, source)
            if self.get_option("ovirt_role_vars"):
                variables.update(self._ovirt_vars(site, base_dir))
            groups = [ALL_SITES_GROUP, MODE_GROUPS[site.network.mode], *site.labels]
            yield site.name, variables, groups

    def _add_site(self, name, variables, groups):
        for group in groups:
            self.inventory.add_group(group)
        self.inventory.add_host(name, group=groups[0])
        for group in groups[1:]:
            self.inventory.add_child(group, name)
        for key, value in variables.items():
            self.inventory.set_variable(name, key, value)
        strict = self.get_option("strict")
        self._set_composite_vars(self.get_option("compose"), variables, name, strict=strict)
        self._add_host_to_composed_groups(self.get_option("groups"), variables, name,
                                          strict=strict)
        self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, name,
                                       strict=strict)

    def _ovirt_vars(self, site, base_dir):
        variables = ovirt_role_vars(site, self.get_option("ovirt_appliance_ova"))
        for field, name in OVIRT_SECRET_VARS.items():
            lookup = secret_lookup(getattr(site, field), base_dir)
            if lookup is None:
                self.display.warning(f"site {site.name}: {field} is 'prompt': give {name} from "
                                     f"a vault (e.g. host_vars/{site.name}.yml)")
                continue
            variables[name] = trust_as_template(lookup)
        return variables


def load_sites(source):
    """The validated sites, or the loader's problems as one parser error (one line each)."""
    try:
        from builder.errors import BuilderError
        from builder.inventory.load import load_inventory
    except ImportError as exc:
        raise AnsibleParserError(
            f"cannot import he-builder from {sys.executable} ({exc}): install ansible-core in "
            f"he-builder's environment (pip install 'he-builder[ansible]')") from None
    try:
        return list(load_inventory(Path(source)).sites.values())
    except BuilderError as exc:
        lines = [f"he-builder: {exc.message}", *getattr(exc, "problems", ())]
        raise AnsibleParserError("\n".join(lines)) from None


def site_lines(source):
    """The line of each site's name under `sites:` (the loader has checked the file)."""
    try:
        with open(source, encoding="utf-8") as handle:
            root = yaml.compose(handle)
        sites = next(value for key, value in root.value if key.value == "sites")
        return {key.value: key.start_mark.line + 1 for key, _value in sites.value}
    except (OSError, yaml.YAMLError, AttributeError, StopIteration, TypeError):
        return {}


def site_vars(site, source):
    """Connection variables from deploy_host, the site itself, and where it came from."""
    from builder.inventory.fields import to_json

    host = site.deploy_host
    return {
        "ansible_host": host.address,
        "ansible_user": host.user,
        "ansible_port": host.port,
        "ansible_become": host.become,
        "he_builder_inventory": source,
        "he_builder_site": to_json(site),
    }


def ovirt_role_vars(site, appliance_ova):
    """What ovirt.ovirt.hosted_engine_setup (collection 3.2.1) reads, from one site.

    The role takes one static address: IPv4 when the site has one, else IPv6. Without a static
    address the role's default (DHCP with he_vm_mac_addr) applies.
    """
    net = site.network
    variables = {
        "he_fqdn": site.fqdn,
        "he_vm_mac_addr": site.mac,
        "he_mem_size_MB": site.memory_mib,
        "he_vcpus": site.vcpus,
        "he_cloud_init_domain_name": site.domain,
        # true: the engine's address goes into the host's /etc/hosts (and the host's into the
        # VM's), as the site's hosts_entries say there is no DNS to rely on.
        "he_vm_etc_hosts": bool(site.hosts_entries),
    }
    static = net.ipv4 or net.ipv6
    if static is not None:
        variables["he_vm_ip_addr"] = str(static.address.ip)
        variables["he_vm_ip_prefix"] = static.address.network.prefixlen
        if static.gateway is not None:
            variables["he_gateway"] = str(static.gateway)
    if net.dns_servers:
        variables["he_dns_addr"] = ",".join(str(server) for server in net.dns_servers)
    if site.ssh_keys:
        variables["he_root_ssh_pubkey"] = site.ssh_keys[0]
    if appliance_ova:
        variables["he_appliance_ova"] = appliance_ova
    return variables


def secret_lookup(reference, base_dir):
    """A lookup template for a secret reference (its value is read only when a task uses it)."""
    if reference.startswith("env:"):
        return "{{ lookup('ansible.builtin.env', %s) }}" % _literal(reference[4:])
    if reference.startswith("file:"):
        path = os.path.join(base_dir, reference[5:])
        # As he-builder reads it: the file's text without one trailing newline.
        return ("{{ lookup('ansible.builtin.file', %s, rstrip=False) "
                "| regex_replace('\\n$', '') }}" % _literal(path))
    return None


def _literal(text):
    """A Jinja string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
