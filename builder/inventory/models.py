"""Frozen, typed site models: every step after loading takes these, never raw dicts.

The pydantic models are also the source of the inventory's JSON Schema.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

FQDN_PATTERN = (
    r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))+$"
)
MAC_PATTERN = r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$"
REFERENCE_PATTERN = r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+|prompt)$"
ANSWER_KEY_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*/[A-Za-z][A-Za-z0-9_]*$"

Fqdn = Annotated[str, StringConstraints(pattern=FQDN_PATTERN)]
Mac = Annotated[str, StringConstraints(pattern=MAC_PATTERN, to_lower=True)]
SecretRef = Annotated[str, StringConstraints(pattern=REFERENCE_PATTERN)]
SiteName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,62}$")]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


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
    dns_servers: tuple[IPv4Address | IPv6Address, ...] = ()
    search_domains: tuple[Fqdn, ...] = ()


class HostEntry(Frozen):
    """One /etc/hosts line in the engine VM (e.g. the hosts, when there is no local DNS)."""

    ip: IPv4Address | IPv6Address
    names: tuple[Fqdn | SiteName, ...] = Field(min_length=1)


class TypedAnswer(Frozen):
    """A free-form answer-file key with its otopi type."""

    type: Literal["str", "bool", "int", "none", "multi-str"]
    value: str | bool | int | list[str] | None = None


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
    timezone: str = "UTC"
    ntp_servers: tuple[str, ...] = ()
    ssh_keys: tuple[str, ...] = ()
    root_password: SecretRef
    admin_password: SecretRef
    engine: EngineOptions = EngineOptions()
    extra_answers: dict[str, TypedAnswer] = Field(default_factory=dict)

    @property
    def hostname(self) -> str:
        return self.fqdn.split(".", 1)[0]

    @property
    def domain(self) -> str:
        return self.fqdn.split(".", 1)[1]
