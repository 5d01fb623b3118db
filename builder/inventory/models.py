"""Frozen, typed site models: every step after loading takes these, never raw dicts.

The pydantic models are also the source of the inventory's JSON Schema.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_address
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from builder.inventory.otopi import ANSWER_KEY_PATTERN
from builder.inventory.syntax import (
    ANSWER_TYPES,
    HOST_NAME_PATTERN,
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

__all__ = ["ANSWER_KEY_PATTERN", "HOST_NAME_PATTERN"]  # re-exported: patterns live with checks

FQDN_PATTERN = (
    r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))+$"
)
MAC_PATTERN = r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$"
REFERENCE_PATTERN = r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+|prompt)$"
SITE_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"
INSTANCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
# A Linux interface name (IFNAMSIZ: 15 characters), not '.' or '..'.
INTERFACE_PATTERN = r"^(?!\.\.?$)[A-Za-z0-9_.-]{1,15}$"

# Every text type refuses control characters first (check_line): a pattern's `$` would let a
# trailing line break through, and a message about the character is clearer than a pattern's.
Fqdn = Annotated[str, StringConstraints(pattern=FQDN_PATTERN), BeforeValidator(check_line)]
# Lowered before the pattern check, so 00:16:3E:... is accepted and stored as 00:16:3e:...
Mac = Annotated[str, StringConstraints(pattern=MAC_PATTERN), BeforeValidator(lower_text),
                BeforeValidator(check_line)]
SecretRef = Annotated[str, StringConstraints(pattern=REFERENCE_PATTERN),
                      AfterValidator(check_secret_reference)]
SiteName = Annotated[str, StringConstraints(pattern=SITE_NAME_PATTERN), BeforeValidator(check_line)]
HostName = Annotated[str, StringConstraints(pattern=HOST_NAME_PATTERN), BeforeValidator(check_line)]
HostOrIp = Annotated[str, AfterValidator(check_host_or_ip), BeforeValidator(check_line)]
Interface = Annotated[str, StringConstraints(pattern=INTERFACE_PATTERN),
                      BeforeValidator(check_line)]
IpAddress = Annotated[IPv4Address | IPv6Address, BeforeValidator(parse_ip)]
AnswerKey = Annotated[str, StringConstraints(pattern=ANSWER_KEY_PATTERN),
                      BeforeValidator(check_line)]
Timezone = Annotated[str, AfterValidator(check_timezone), BeforeValidator(check_line)]
SshKey = Annotated[str, AfterValidator(check_ssh_key), BeforeValidator(check_line)]
AnswerValue = Annotated[str | bool | int | list[str] | None, BeforeValidator(check_answer_shape)]
InstanceId = Annotated[str, StringConstraints(pattern=INSTANCE_ID_PATTERN),
                       BeforeValidator(check_line)]
Organization = Annotated[str, AfterValidator(check_organization), BeforeValidator(check_line)]
AdminUser = Annotated[str, AfterValidator(check_admin_user), BeforeValidator(check_line)]


class Frozen(BaseModel):
    # python-re: the FQDN and host name patterns need look-arounds, which the default lacks.
    model_config = ConfigDict(frozen=True, extra="forbid", regex_engine="python-re")


class StaticIPv4(Frozen):
    address: IPv4Interface = Field(description="address with prefix, e.g. 192.0.2.10/24")
    gateway: IPv4Address | None = None


class StaticIPv6(Frozen):
    address: IPv6Interface = Field(description="address with prefix, e.g. 2001:db8::10/64")
    gateway: IPv6Address | None = None


class Network(Frozen):
    """DHCP with a fixed MAC, or static IPv4 and/or IPv6."""

    mode: Literal["dhcp", "static"] = "dhcp"
    mac: Mac | None = Field(default=None, description="derived from the site name when absent")
    interface: Interface = "eth0"
    ipv4: StaticIPv4 | None = None
    ipv6: StaticIPv6 | None = None
    dns_servers: tuple[IpAddress, ...] = ()
    search_domains: tuple[Fqdn, ...] = ()


class HostEntry(Frozen):
    """One /etc/hosts line in the engine VM (e.g. the hosts, when there is no local DNS)."""

    ip: IpAddress
    names: tuple[HostName, ...] = Field(min_length=1)


class TypedAnswer(Frozen):
    """A free-form answer-file key with its otopi type."""

    type: Literal["str", "bool", "int", "none", "multi-str"]
    value: AnswerValue = None

    @model_validator(mode="after")
    def _value_fits_type(self) -> TypedAnswer:
        if not answer_value_matches(self.type, self.value):
            raise ValueError(f"value {self.value!r} is not {ANSWER_TYPES[self.type]} "
                             f"(type: {self.type})")
        problem = answer_value_problem(self.type, self.value)
        if problem is not None:
            raise ValueError(f"the {self.type} value {problem}")
        return self


class EngineOptions(Frozen):
    """The engine-setup options hosted-engine sets in its answer file."""

    organization: Organization | None = Field(
        default=None, description="PKI organization (at most 64 characters); default: the "
        "FQDN's domain")
    application_mode: Literal["both", "virt", "gluster"] = "both"
    storage_type: Literal["nfs", "fc", "iscsi", "posixfs", "glusterfs"] = "nfs"
    firewall_manager: Literal["firewalld", "iptables"] | None = "firewalld"
    admin_user: AdminUser = Field(default="admin@internal",
                                  description="engine-setup creates admin@internal only")
    configure_websocket_proxy: bool = True
    configure_vmconsole_proxy: bool = True
    configure_grafana: bool = False
    configure_dwh: bool = True


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


DeployAddress = Annotated[str, AfterValidator(check_deploy_address)]
DeployUser = Annotated[str, AfterValidator(check_deploy_user)]
Label = Annotated[str, AfterValidator(check_label)]


class DeployHost(Frozen):
    """How Ansible reaches the site's first host, where he-launch runs."""

    address: DeployAddress | None = Field(
        default=None, description="IP address, host name or FQDN of the site's first host "
        "(required; may be left to each site when defaults give the rest)")
    user: DeployUser = Field(default="root", description="SSH user")
    port: int = Field(default=22, ge=1, le=65535, description="SSH port")
    become: bool = Field(default=False, description="run the deployment with sudo (become)")


class Site(Frozen):
    """One site's engine VM, fully resolved (defaults merged, MAC derived, secrets still refs)."""

    name: SiteName
    fqdn: Fqdn
    vcpus: int = Field(default=4, ge=1, le=512)
    memory_mib: int = Field(default=16384, ge=1024)
    network: Network = Network()
    hosts_entries: tuple[HostEntry, ...] = ()
    timezone: Timezone = "UTC"
    ntp_servers: tuple[HostOrIp, ...] = ()
    ssh_keys: tuple[SshKey, ...] = ()
    root_ssh: Literal["key", "password"] = Field(
        default="key", description="key: root logs in over SSH with a key only; password: "
        "also with the root password (PermitRootLogin yes)")
    root_password: SecretRef
    admin_password: SecretRef
    engine: EngineOptions = EngineOptions()
    extra_answers: dict[AnswerKey, TypedAnswer] = Field(default_factory=dict)
    instance_id: InstanceId | None = Field(
        default=None, description="pins meta-data's instance-id; derived from the seed when absent"
    )
    deploy_host: DeployHost | None = Field(
        default=None, description="where the fleet playbook deploys this site (Ansible)")
    labels: tuple[Label, ...] = Field(
        default=(), description="names that become Ansible groups of this site")

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
