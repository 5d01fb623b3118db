"""cloud-init user-data: identity, root access, /etc/hosts, the NIC's profile and the runner.

The answer file is not in it: cloud-init keeps user-data on the engine's disk (raw, processed,
pickled at every stage), where freed blocks outlive any scrub. It travels as its own file on
the seed ISO, which cloud-init never reads, and the runner takes it from there to memory."""

from __future__ import annotations

import functools
import re
from ipaddress import ip_address
from typing import Any

from builder.errors import InputError
from builder.inventory.models import HOST_NAME_PATTERN, Site
from builder.inventory.syntax import CONTROL_RE
from builder.seed import runner
from builder.seed.answers import LINE_BREAKS
from builder.seed.documents import dump_yaml
from builder.seed.network import (
    NM_KEYFILE,
    check_dns_families,
    render_nm_keyfile,
    static_addresses,
)

HEADER = "#cloud-config\n"
DATASOURCE_CONFIG_PATH = "/etc/cloud/cloud.cfg.d/90-he-nocloud.cfg"
# sshd reads its drop-ins first (`Include /etc/ssh/sshd_config.d/*.conf` heads sshd_config on
# EL9 and Debian 12) and keeps the first value it reads: "00-" comes before the image's own
# drop-ins (e.g. Anaconda's 01-permitrootlogin.conf).
SSHD_DROP_IN = "/etc/ssh/sshd_config.d/00-he-root-login.conf"
# root_ssh -> sshd's PermitRootLogin and PasswordAuthentication. CentOS Stream 9 defaults to
# prohibit-password: root's password works over SSH only when the inventory asks for it.
ROOT_SSH = {"key": ("prohibit-password", "no"), "password": ("yes", "yes")}
HOST_NAME_RE = re.compile(HOST_NAME_PATTERN)


def build_user_data(site: Site, *, root_hash: str) -> dict[str, Any]:
    """The #cloud-config document as data (render_user_data writes the same text)."""
    data = _site_keys(site, root_hash)
    data["write_files"] = [*_site_files(site), *_shared_files(site.root_ssh)]
    data["runcmd"] = _runcmd()
    return data


def render_user_data(site: Site, *, root_hash: str) -> str:
    """user-data text, starting with #cloud-config: build_user_data's document.

    It is dumped in two parts, the site's own keys and files, then the files and command that
    every site with the same `root_ssh` shares, dumped once per process. A block mapping's
    keys and a block sequence's items dump to the same text one by one as together (the
    sequence under `write_files:` is not indented), so this is the text of one dump of the
    whole document, byte for byte (tests compare the two)."""
    head = dump_yaml(_site_keys(site, root_hash), header=HEADER)
    return head + "write_files:\n" + dump_yaml(_site_files(site)) + _shared_tail(site.root_ssh)


def _site_keys(site: Site, root_hash: str) -> dict[str, Any]:
    """The keys before write_files, all the site's own."""
    _check_ssh_keys(site)
    check_dns_families(site)
    data: dict[str, Any] = {
        "hostname": site.hostname,
        "fqdn": site.fqdn,
        "manage_etc_hosts": False,
        "disable_root": False,
        "ssh_pwauth": site.root_ssh == "password",
        "chpasswd": {"expire": False,
                     "users": [{"name": "root", "password": root_hash, "type": "hash"}]},
        "timezone": site.timezone,
    }
    if site.ssh_keys:
        data["ssh_authorized_keys"] = list(site.ssh_keys)
    if site.ntp_servers:
        data["ntp"] = {"enabled": True, "servers": _ntp_servers(site)}
    return data


def _site_files(site: Site) -> list[dict[str, Any]]:
    return [
        _file("/etc/hosts", render_hosts(site), "0644"),
        # NetworkManager ignores a keyfile that others can read.
        _file(NM_KEYFILE, render_nm_keyfile(site), "0600"),
    ]


def _shared_files(root_ssh: str) -> list[dict[str, Any]]:
    datasources = dump_yaml({"datasource_list": ["NoCloud", "None"]})
    return [
        _file(SSHD_DROP_IN, render_sshd_drop_in(root_ssh), "0600"),
        _file(runner.RUNNER_PATH, runner.render_runner(), "0700"),
        _file(DATASOURCE_CONFIG_PATH, datasources, "0644"),
    ]


def _runcmd() -> list[list[str]]:
    return [["/bin/sh", runner.RUNNER_PATH]]


@functools.cache
def _shared_tail(root_ssh: str) -> str:
    """The rest of user-data after the site's own files (the same for every such site)."""
    return dump_yaml(_shared_files(root_ssh)) + dump_yaml({"runcmd": _runcmd()})


def _file(path: str, content: str, permissions: str) -> dict[str, Any]:
    return {"path": path, "content": content, "owner": "root:root",
            "permissions": permissions}


def render_sshd_drop_in(root_ssh: str) -> str:
    """How root may log in over SSH: `root_ssh: key` (default) or `password`."""
    permit, passwords = ROOT_SSH[root_ssh]
    return (f"# Written by he-builder's seed (inventory root_ssh: {root_ssh}).\n"
            f"PermitRootLogin {permit}\nPasswordAuthentication {passwords}\n")


def render_hosts(site: Site) -> str:
    """/etc/hosts for the engine VM: loopback, its own static addresses, the inventory's entries.

    Every address and name was validated as an IP or a host name, so none can add a line.
    """
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    lines += [f"{address} {site.fqdn} {site.hostname}" for address in static_addresses(site)]
    lines += [f"{entry.ip} {' '.join(entry.names)}" for entry in site.hosts_entries]
    for line in lines:
        _check_single_line(site, "hosts_entries", line)
    return "\n".join(lines) + "\n"


def _ntp_servers(site: Site) -> list[str]:
    for index, server in enumerate(site.ntp_servers):
        if not (_is_ip(server) or HOST_NAME_RE.fullmatch(server)):
            raise _refused(site, f"ntp_servers[{index}]", "not a host name or IP address")
    return list(site.ntp_servers)


def _is_ip(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


def _check_ssh_keys(site: Site) -> None:
    """authorized_keys is line-based: a key must stay one line of printable text."""
    for index, key in enumerate(site.ssh_keys):
        _check_single_line(site, f"ssh_keys[{index}]", key)


def _check_single_line(site: Site, field: str, text: str) -> None:
    if not LINE_BREAKS.isdisjoint(text):
        raise _refused(site, field, "contains a line break")
    if CONTROL_RE.search(text):
        raise _refused(site, field, "contains a control character")


def _refused(site: Site, field: str, reason: str) -> InputError:
    message = f"site {site.name}: {field}: {reason}"
    return InputError(message, problems=[message])

