"""Frozen, typed site models: every step after loading takes these, never raw dicts.

The pydantic models are also the source of the inventory's JSON Schema.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
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

from builder.inventory.syntax import (
    ANSWER_TYPES,
    answer_value_matches,
    check_answer_shape,
    check_ssh_key,
    check_timezone,
    lower_text,
    parse_ip,
)

FQDN_PATTERN = (
    r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))+$"
)
MAC_PATTERN = r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$"
REFERENCE_PATTERN = r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+|prompt)$"
ANSWER_KEY_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*/[A-Za-z][A-Za-z0-9_]*$"
SITE_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"
# A short host name (one label) or an FQDN, as /etc/hosts accepts.
HOST_NAME_PATTERN = (
    r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$"
)
INSTANCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"

Fqdn = Annotated[str, StringConstraints(pattern=FQDN_PATTERN)]
# Lowered before the pattern check, so 00:16:3E:... is accepted and stored as 00:16:3e:...
Mac = Annotated[str, StringConstraints(pattern=MAC_PATTERN), BeforeValidator(lower_text)]
SecretRef = Annotated[str, StringConstraints(pattern=REFERENCE_PATTERN)]
SiteName = Annotated[str, StringConstraints(pattern=SITE_NAME_PATTERN)]
HostName = Annotated[str, StringConstraints(pattern=HOST_NAME_PATTERN)]
IpAddress = Annotated[IPv4Address | IPv6Address, BeforeValidator(parse_ip)]
AnswerKey = Annotated[str, StringConstraints(pattern=ANSWER_KEY_PATTERN)]
Timezone = Annotated[str, AfterValidator(check_timezone)]
SshKey = Annotated[str, AfterValidator(check_ssh_key)]
AnswerValue = Annotated[str | bool | int | list[str] | None, BeforeValidator(check_answer_shape)]
InstanceId = Annotated[str, StringConstraints(pattern=INSTANCE_ID_PATTERN)]


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
    interface: str = "eth0"
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
        return self


class EngineOptions(Frozen):
    """The engine-setup options hosted-engine sets in its answer file."""

    organization: str | None = Field(default=None, description="default: the FQDN's domain")
    application_mode: Literal["both", "virt", "gluster"] = "both"
    storage_type: Literal["nfs", "fc", "iscsi", "posixfs", "glusterfs"] = "nfs"
    firewall_manager: Literal["firewalld", "iptables"] | None = "firewalld"
    admin_user: str = "admin@internal"
    configure_websocket_proxy: bool = True
    configure_vmconsole_proxy: bool = True
    configure_grafana: bool = False
    configure_dwh: bool = True


class Site(Frozen):
    """One site's engine VM, fully resolved (defaults merged, MAC derived, secrets still refs)."""

    name: SiteName
    fqdn: Fqdn
    vcpus: int = Field(default=4, ge=1, le=512)
    memory_mib: int = Field(default=16384, ge=1024)
    network: Network = Network()
    hosts_entries: tuple[HostEntry, ...] = ()
    timezone: Timezone = "UTC"
    ntp_servers: tuple[str, ...] = ()
    ssh_keys: tuple[SshKey, ...] = ()
    root_ssh: Literal["key", "password"] = "key"
    root_password: SecretRef
    admin_password: SecretRef
    engine: EngineOptions = EngineOptions()
    extra_answers: dict[AnswerKey, TypedAnswer] = Field(default_factory=dict)
    instance_id: InstanceId | None = Field(
        default=None, description="pins meta-data's instance-id; derived from the seed when absent"
    )

    @property
    def hostname(self) -> str:
        return self.fqdn.split(".", 1)[0]

    @property
    def domain(self) -> str:
        return self.fqdn.split(".", 1)[1]
