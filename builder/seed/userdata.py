"""cloud-init user-data: identity, root access, /etc/hosts, the answer file and the runner."""

from __future__ import annotations

import re
import unicodedata
from ipaddress import ip_address
from typing import Any

from builder.errors import InputError
from builder.inventory.models import HOST_NAME_PATTERN, Site
from builder.seed import runner
from builder.seed.answers import LINE_BREAKS
from builder.seed.documents import dump_yaml
from builder.seed.network import static_addresses

HEADER = "#cloud-config\n"
DATASOURCE_CONFIG_PATH = "/etc/cloud/cloud.cfg.d/90-he-nocloud.cfg"
HOST_NAME_RE = re.compile(HOST_NAME_PATTERN)


def build_user_data(site: Site, *, root_hash: str, answers_text: str) -> dict[str, Any]:
    """The #cloud-config document as data (serialized by render_user_data)."""
    _check_ssh_keys(site)
    data: dict[str, Any] = {
        "hostname": site.hostname,
        "fqdn": site.fqdn,
        "manage_etc_hosts": False,
        "disable_root": False,
        "ssh_pwauth": True,
        "chpasswd": {"expire": False,
                     "users": [{"name": "root", "password": root_hash, "type": "hash"}]},
        "timezone": site.timezone,
    }
    if site.ssh_keys:
        data["ssh_authorized_keys"] = list(site.ssh_keys)
    if site.ntp_servers:
        data["ntp"] = {"enabled": True, "servers": _ntp_servers(site)}
    data["write_files"] = _write_files(site, answers_text)
    data["runcmd"] = [["/bin/sh", runner.RUNNER_PATH]]
    return data


def render_user_data(site: Site, *, root_hash: str, answers_text: str) -> str:
    """user-data text, starting with #cloud-config."""
    document = build_user_data(site, root_hash=root_hash, answers_text=answers_text)
    return dump_yaml(document, header=HEADER)


def _write_files(site: Site, answers_text: str) -> list[dict[str, Any]]:
    datasources = dump_yaml({"datasource_list": ["NoCloud", "None"]})
    return [
        _file("/etc/hosts", render_hosts(site), "0644"),
        _file(runner.SEED_ANSWERS, answers_text, "0600"),
        _file(runner.RUNNER_PATH, runner.render_runner(), "0700"),
        _file(DATASOURCE_CONFIG_PATH, datasources, "0644"),
    ]


def _file(path: str, content: str, permissions: str) -> dict[str, Any]:
    return {"path": path, "content": content, "owner": "root:root",
            "permissions": permissions}


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
    if any(char in LINE_BREAKS for char in text):
        raise _refused(site, field, "contains a line break")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in text):
        raise _refused(site, field, "contains a control character")


def _refused(site: Site, field: str, reason: str) -> InputError:
    message = f"site {site.name}: {field}: {reason}"
    return InputError(message, problems=[message])

