"""Frozen, typed site records: every step after loading takes these, never raw dicts.

Each field names its kind (builder/inventory/fields.py): how the YAML value is checked and
converted, with which message when it is not right. The same table is the inventory's JSON
Schema.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_address
from typing import Any, Literal

from builder.inventory.fields import (
    Boolean,
    Checked,
    Choice,
    Integer,
    Ip,
    Items,
    Optional,
    Record,
    SecretReference,
    Table,
    Text,
    field,
)
from builder.inventory.otopi import ANSWER_KEY_PATTERN
from builder.inventory.patterns import (
    FQDN_PATTERN,
    HOST_NAME_PATTERN,
    INSTANCE_ID_PATTERN,
    INTERFACE_PATTERN,
    MAC_PATTERN,
    REFERENCE_PATTERN,
    SITE_NAME_PATTERN,
)
from builder.inventory.source import yaml_text
from builder.inventory.syntax import (
    ANSWER_TYPES,
    answer_value_matches,
    answer_value_problem,
    check_admin_user,
    check_answer_shape,
    check_host_or_ip,
    check_line,
    check_organization,
    check_secret_reference,
    check_ssh_key,
    check_timezone,
    lower_text,
    parse_ip,
)
from builder.repro import stable_mac

# Re-exported: the records' patterns, with the messages that name them below.
__all__ = ["ANSWER_KEY_PATTERN", "FQDN_PATTERN", "HOST_NAME_PATTERN", "INSTANCE_ID_PATTERN",
           "INTERFACE_PATTERN", "MAC_PATTERN", "REFERENCE_PATTERN", "SITE_NAME_PATTERN"]

PATTERN_MESSAGES: dict[str, str] = {
    FQDN_PATTERN: "not a fully qualified domain name: {input!r}",
    MAC_PATTERN: "not a MAC address like 00:16:3e:12:34:56: {input!r}",
    ANSWER_KEY_PATTERN: "key {input!r} is not SECTION/name or QUESTION/N/name "
    "(e.g. OVESETUP_CONFIG/fqdn)",
    SITE_NAME_PATTERN: "{input!r} is not a site name "
    "(lowercase letters, digits and '-', starting with a letter)",
    HOST_NAME_PATTERN: "not a host name or FQDN: {input!r}",
    INSTANCE_ID_PATTERN: "not an instance-id (letters, digits, '.', '_', '-'): {input!r}",
    INTERFACE_PATTERN: "not an interface name (at most 15 letters, digits, '.', '_', "
    "'-'): {input!r}",
}


def line_text(pattern: str | None = None, *, after: tuple[Callable[[Any], Any], ...] = (),
              lower: bool = False) -> Text:
    """One line of text (check_line first), matching `pattern`, then the `after` checks."""
    before = (check_line, lower_text) if lower else (check_line,)
    if pattern is None:
        return Text(before=before, after=after)
    return Text(pattern, PATTERN_MESSAGES[pattern], before=before, after=after)


# Every text kind refuses control characters first (check_line): a pattern's `$` would let a
# trailing line break through, and a message about the character is clearer than a pattern's.
FQDN = line_text(FQDN_PATTERN)
# Lowered before the pattern check, so 00:16:3E:... is accepted and stored as 00:16:3e:...
MAC = line_text(MAC_PATTERN, lower=True)
SECRET_REFERENCE = SecretReference(REFERENCE_PATTERN, after=(check_secret_reference,))
HOST_NAME = line_text(HOST_NAME_PATTERN)
IP_ADDRESS = Checked((parse_ip,), {"type": "string", "anyOf": [{"format": "ipv4"},
                                                               {"format": "ipv6"}]})
ANSWER_VALUE = Checked((check_answer_shape,), {"anyOf": [
    {"type": "string"}, {"type": "boolean"}, {"type": "integer"},
    {"type": "array", "items": {"type": "string"}}, {"type": "null"}]})


@dataclass(frozen=True, kw_only=True)
class StaticIPv4:
    """A static IPv4 address and its gateway."""

    address: IPv4Interface = field(Ip(IPv4Interface),
                                   description="address with prefix, e.g. 192.0.2.10/24")
    gateway: IPv4Address | None = field(Optional(Ip(IPv4Address)), None)


@dataclass(frozen=True, kw_only=True)
class StaticIPv6:
    """A static IPv6 address and its gateway."""

    address: IPv6Interface = field(Ip(IPv6Interface),
                                   description="address with prefix, e.g. 2001:db8::10/64")
    gateway: IPv6Address | None = field(Optional(Ip(IPv6Address)), None)


@dataclass(frozen=True, kw_only=True)
class Network:
    """DHCP with a fixed MAC, or static IPv4 and/or IPv6."""

    mode: Literal["dhcp", "static"] = field(Choice(("dhcp", "static")), "dhcp")
    mac: str | None = field(Optional(MAC), None,
                            description="derived from the site name when absent")
    interface: str = field(line_text(INTERFACE_PATTERN), "eth0")
    ipv4: StaticIPv4 | None = field(Optional(Record(StaticIPv4)), None)
    ipv6: StaticIPv6 | None = field(Optional(Record(StaticIPv6)), None)
    dns_servers: tuple[IPv4Address | IPv6Address, ...] = field(Items(IP_ADDRESS), ())
    search_domains: tuple[str, ...] = field(Items(FQDN), ())


@dataclass(frozen=True, kw_only=True)
class HostEntry:
    """One /etc/hosts line in the engine VM (e.g. the hosts, when there is no local DNS)."""

    ip: IPv4Address | IPv6Address = field(IP_ADDRESS)
    names: tuple[str, ...] = field(Items(HOST_NAME, min_length=1))


@dataclass(frozen=True, kw_only=True)
class TypedAnswer:
    """A free-form answer-file key with its otopi type."""

    type: Literal["str", "bool", "int", "none", "multi-str"] = field(
        Choice(("str", "bool", "int", "none", "multi-str")))
    value: str | bool | int | list[str] | None = field(ANSWER_VALUE, None)


def typed_answer_problem(answer: TypedAnswer) -> str | None:
    """Why the value does not fit the declared type, or would not read back (None: fine)."""
    if not answer_value_matches(answer.type, answer.value):
        return (f"value {yaml_text(answer.value)} is not {ANSWER_TYPES[answer.type]} "
                f"(type: {answer.type})")
    problem = answer_value_problem(answer.type, answer.value)
    return None if problem is None else f"the {answer.type} value {problem}"


@dataclass(frozen=True, kw_only=True)
class EngineOptions:
    """The engine-setup options hosted-engine sets in its answer file."""

    organization: str | None = field(
        Optional(line_text(after=(check_organization,))), None,
        description="PKI organization (at most 64 characters); default: the FQDN's domain")
    application_mode: Literal["both", "virt", "gluster"] = field(
        Choice(("both", "virt", "gluster")), "both")
    storage_type: Literal["nfs", "fc", "iscsi", "posixfs", "glusterfs"] = field(
        Choice(("nfs", "fc", "iscsi", "posixfs", "glusterfs")), "nfs")
    firewall_manager: Literal["firewalld", "iptables"] | None = field(
        Optional(Choice(("firewalld", "iptables"))), "firewalld")
    admin_user: str = field(line_text(after=(check_admin_user,)), "admin@internal",
                            description="engine-setup creates admin@internal only")
    configure_websocket_proxy: bool = field(Boolean(), True)
    configure_vmconsole_proxy: bool = field(Boolean(), True)
    configure_grafana: bool = field(Boolean(), False)
    configure_dwh: bool = field(Boolean(), True)


# --- Fleet deployment (the Ansible inventory plugin reads these; seeds do not) ---------------
# A POSIX user name as useradd accepts it by default.
DEPLOY_USER_PATTERN = r"^[a-z_][a-z0-9_-]{0,31}\$?$"
# A label becomes an Ansible group: a Python identifier, not one of Ansible's own groups.
LABEL_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
RESERVED_GROUPS = frozenset({"all", "ungrouped"})


def check_deploy_address(value: str) -> str:
    """An IPv4/IPv6 address, or a host name or FQDN (what ssh connects to)."""
    try:
        return str(ip_address(value))
    except ValueError:
        pass
    if not re.match(HOST_NAME_PATTERN, value):
        raise ValueError(f"not an IP address, host name or FQDN: {value!r}")
    return value


def check_deploy_user(value: str) -> str:
    if not re.match(DEPLOY_USER_PATTERN, value):
        raise ValueError(f"not a user name (lowercase letters, digits, '_', '-'): {value!r}")
    return value


def check_label(value: str) -> str:
    if not re.match(LABEL_PATTERN, value):
        raise ValueError(f"{value!r} is not a label (letters, digits and '_', not starting "
                         f"with a digit; it becomes an Ansible group)")
    if value in RESERVED_GROUPS:
        raise ValueError(f"{value!r} is Ansible's own group; choose another label")
    return value


@dataclass(frozen=True, kw_only=True)
class DeployHost:
    """How Ansible reaches the site's first host, where he-launch runs."""

    address: str | None = field(
        Optional(Text(after=(check_deploy_address,))), None,
        description="IP address, host name or FQDN of the site's first host (required; may "
        "be left to each site when defaults give the rest)")
    user: str = field(Text(after=(check_deploy_user,)), "root", description="SSH user")
    port: int = field(Integer(ge=1, le=65535), 22, description="SSH port")
    become: bool = field(Boolean(), False,
                         description="run the deployment with sudo (become)")


@dataclass(frozen=True, kw_only=True)
class Site:
    """One site's engine VM, fully resolved (defaults merged, MAC derived, secrets still refs)."""

    name: str = field(line_text(SITE_NAME_PATTERN))
    fqdn: str = field(FQDN)
    vcpus: int = field(Integer(ge=1, le=512), 4)
    memory_mib: int = field(Integer(ge=1024), 16384)
    network: Network = field(Record(Network), Network())
    hosts_entries: tuple[HostEntry, ...] = field(Items(Record(HostEntry)), ())
    timezone: str = field(line_text(after=(check_timezone,)), "UTC")
    ntp_servers: tuple[str, ...] = field(Items(line_text(after=(check_host_or_ip,))), ())
    ssh_keys: tuple[str, ...] = field(Items(line_text(after=(check_ssh_key,))), ())
    root_ssh: Literal["key", "password"] = field(
        Choice(("key", "password")), "key", description="key: root logs in over SSH with a "
        "key only; password: also with the root password (PermitRootLogin yes)")
    root_password: str = field(SECRET_REFERENCE)
    admin_password: str = field(SECRET_REFERENCE)
    engine: EngineOptions = field(Record(EngineOptions), EngineOptions())
    extra_answers: Mapping[str, TypedAnswer] = field(
        Table(line_text(ANSWER_KEY_PATTERN), Record(TypedAnswer, typed_answer_problem)), {})
    instance_id: str | None = field(
        Optional(line_text(INSTANCE_ID_PATTERN)), None,
        description="pins meta-data's instance-id; derived from the seed when absent")
    deploy_host: DeployHost | None = field(
        Optional(Record(DeployHost)), None,
        description="where the fleet playbook deploys this site (Ansible)")
    labels: tuple[str, ...] = field(
        Items(Text(after=(check_label,))), (),
        description="names that become Ansible groups of this site")

    @property
    def hostname(self) -> str:
        return self.fqdn.split(".", 1)[0]

    @property
    def mac(self) -> str:
        """The engine VM's MAC: network.mac, else derived from the site's name (the same name
        always gives the same MAC, so re-runs keep DHCP leases). The one place it is decided."""
        return self.network.mac or stable_mac(self.name)

    @property
    def domain(self) -> str:
        return self.fqdn.split(".", 1)[1]
