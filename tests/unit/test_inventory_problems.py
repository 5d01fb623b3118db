"""The table of bad inventories: each gets one problem line naming file, line, site, field."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from builder.cli.handler import error_lines, printable
from builder.errors import ExitCode, InputError
from builder.inventory.load import MAX_INVENTORY_BYTES, load_inventory
from tests.fixtures.deadline import deadline
from tests.fixtures.inventory_text import BASE, problems_of, site

KEY_ED25519 = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f a@b"
)
# The same blob, claimed to be an RSA key.
KEY_MISLABELLED = KEY_ED25519.replace("ssh-ed25519", "ssh-rsa", 1)


def two_sites(dc2: str, dc1_extra: str = "") -> str:
    """dc1 (lines 1-5, plus extras) and a dc2 whose body is `dc2` (written unindented)."""
    return site(dc1_extra) + "  dc2:\n" + textwrap.indent(textwrap.dedent(dc2), "    ")


DC2 = """\
fqdn: engine.dc2.example.com
root_password: prompt
admin_password: prompt
"""

NO_SITE = "no site: the inventory needs at least one (site names as keys, each with its fields)"

CASES: list[tuple[str, str, str]] = [
    ("unknown field", site("colour: red\n"), "6: site dc1: colour: unknown field"),
    ("misspelt field", site("vcpu: 4\n"),
     "6: site dc1: vcpu: unknown field; did you mean 'vcpus'?"),
    ("not an integer", site("vcpus: many\n"),
     "6: site dc1: vcpus: expected an integer, got 'many'"),
    ("too few vcpus", site("vcpus: 0\n"), "6: site dc1: vcpus: must be at least 1, got 0"),
    ("count beyond any integer", site("vcpus: 1.0e+20\n"),
     "6: site dc1: vcpus: expected an integer, got 1e+20"),
    ("fractional count", site("vcpus: 4.5\n"), "6: site dc1: vcpus: expected an integer, got 4.5"),
    ("a flag as a gateway",
     site("network:\n  mode: static\n  ipv4:\n    address: 192.0.2.10/24\n    gateway: true\n"),
     "10: site dc1: network.ipv4.gateway: not an IPv4 address: true"),
    ("a flag as a count", site("vcpus: yes\n"),
     "6: site dc1: vcpus: expected an integer, got true"),
    ("a number as a key", site("1: x\n"),
     "6: site dc1: 1: not a field name (field names are text)"),
    ("a null key", site("~: x\n"), "6: site dc1: null: not a field name (field names are text)"),
    ("too little memory", site("memory_mib: 512\n"),
     "6: site dc1: memory_mib: must be at least 1024, got 512"),
    ("bad fqdn", BASE.replace("engine.dc1.example.com", "engine_dc1"),
     "3: site dc1: fqdn: not a fully qualified domain name: 'engine_dc1'"),
    ("single-label fqdn", BASE.replace("engine.dc1.example.com", "engine"),
     "3: site dc1: fqdn: not a fully qualified domain name: 'engine'"),
    ("missing fqdn", BASE.replace("    fqdn: engine.dc1.example.com\n", ""),
     "2: site dc1: fqdn: required"),
    ("missing password", BASE.replace("    admin_password: env:ADMIN_PW\n", ""),
     "2: site dc1: admin_password: required"),
    ("literal password", BASE.replace("env:ROOT_PW", "hunter2"),
     "4: site dc1: root_password: must be a secret reference (env:NAME, file:PATH or prompt), "
     "not a literal value"),
    ("bad env name", BASE.replace("env:ROOT_PW", "env:1PW"),
     "4: site dc1: root_password: must be a secret reference (env:NAME, file:PATH or prompt), "
     "not a literal value"),
    ("numeric password", BASE.replace("env:ROOT_PW", "123456"),
     "4: site dc1: root_password: must be a secret reference (env:NAME, file:PATH or prompt), "
     "not a literal value"),
    ("name as a field", site("name: other\n"),
     "6: site dc1: name: not a field: the site's name is its key under 'sites'"),
    ("bad MAC", site("network:\n  mac: 00:16:3e:zz:00:01\n"),
     "7: site dc1: network.mac: not a MAC address like 00:16:3e:12:34:56: '00:16:3e:zz:00:01'"),
    ("short MAC", site("network:\n  mac: '00:16:3e:00:01'\n"),
     "7: site dc1: network.mac: not a MAC address like 00:16:3e:12:34:56: '00:16:3e:00:01'"),
    ("bad mode", site("network:\n  mode: bridge\n"),
     "7: site dc1: network.mode: must be 'dhcp' or 'static', got 'bridge'"),
    ("static without address", site("network:\n  mode: static\n"),
     "7: site dc1: network.mode: static mode needs ipv4 and/or ipv6"),
    ("dhcp with address", site("network:\n  ipv4:\n    address: 192.0.2.10/24\n"),
     "7: site dc1: network.ipv4: only allowed with mode: static"),
    ("bad IPv4 interface",
     site("network:\n  mode: static\n  ipv4:\n    address: 192.0.2.300/24\n"),
     "9: site dc1: network.ipv4.address: not an IPv4 address with prefix (e.g. 192.0.2.10/24): "
     "'192.0.2.300/24'"),
    ("IPv6 as IPv4", site("network:\n  mode: static\n  ipv4:\n    address: 2001:db8::10/64\n"),
     "9: site dc1: network.ipv4.address: not an IPv4 address with prefix (e.g. 192.0.2.10/24): "
     "'2001:db8::10/64'"),
    ("missing address", site("network:\n  mode: static\n  ipv4:\n    gateway: 192.0.2.1\n"),
     "8: site dc1: network.ipv4.address: required"),
    ("IPv4 gateway outside",
     site("network:\n  mode: static\n  ipv4:\n    address: 192.0.2.10/24\n"
          "    gateway: 198.51.100.1\n"),
     "10: site dc1: network.ipv4.gateway: 198.51.100.1 is outside the subnet 192.0.2.0/24"),
    ("IPv6 gateway outside",
     site("network:\n  mode: static\n  ipv6:\n    address: 2001:db8:1::10/64\n"
          "    gateway: 2001:db8:2::1\n"),
     "10: site dc1: network.ipv6.gateway: 2001:db8:2::1 is outside the subnet 2001:db8:1::/64"),
    ("gateway is the address",
     site("network:\n  mode: static\n  ipv4:\n    address: 192.0.2.10/24\n"
          "    gateway: 192.0.2.10\n"),
     "10: site dc1: network.ipv4.gateway: 192.0.2.10 is the site's own address"),
    ("bad DNS server", site("network:\n  dns_servers: [192.0.2.53, dns.example.com]\n"),
     "7: site dc1: network.dns_servers[1]: not an IPv4 or IPv6 address: 'dns.example.com'"),
    ("bad search domain", site("network:\n  search_domains: [example]\n"),
     "7: site dc1: network.search_domains[0]: not a fully qualified domain name: 'example'"),
    ("bad hosts ip", site("hosts_entries:\n  - ip: 192.0.2.256\n    names: [host1]\n"),
     "7: site dc1: hosts_entries[0].ip: not an IPv4 or IPv6 address: '192.0.2.256'"),
    ("bad hosts name", site("hosts_entries:\n  - ip: 192.0.2.11\n    names: [host_1]\n"),
     "8: site dc1: hosts_entries[0].names[0]: not a host name or FQDN: 'host_1'"),
    ("no hosts names", site("hosts_entries:\n  - ip: 192.0.2.11\n    names: []\n"),
     "8: site dc1: hosts_entries[0].names: must not be empty"),
    ("hosts entry not a mapping", site("hosts_entries:\n  - 192.0.2.11 host1\n"),
     "7: site dc1: hosts_entries[0]: expected a mapping, got '192.0.2.11 host1'"),
    ("list expected", site("ntp_servers: ntp.example.com\n"),
     "6: site dc1: ntp_servers: expected a list, got 'ntp.example.com'"),
    ("bad timezone", site("timezone: Mars/Olympus_Mons\n"),
     "6: site dc1: timezone: unknown timezone 'Mars/Olympus_Mons' (e.g. UTC, Europe/Paris)"),
    ("ssh key without data", site("ssh_keys: [ssh-ed25519]\n"),
     "6: site dc1: ssh_keys[0]: not an SSH public key (expected 'TYPE BASE64 [comment]')"),
    ("ssh key bad type", site("ssh_keys: ['ssh-foo AAAA']\n"),
     "6: site dc1: ssh_keys[0]: unknown SSH key type 'ssh-foo'"),
    ("ssh key bad base64", site("ssh_keys: ['ssh-ed25519 not*base64']\n"),
     "6: site dc1: ssh_keys[0]: ssh-ed25519 key data is not a base64 SSH key blob"),
    ("ssh key mislabelled", site(f"ssh_keys:\n  - {KEY_ED25519}\n  - {KEY_MISLABELLED}\n"),
     "8: site dc1: ssh_keys[1]: key data is for 'ssh-ed25519', not 'ssh-rsa'"),
    ("answer key format", site("extra_answers:\n  fqdn:\n    type: str\n    value: x\n"),
     "7: site dc1: extra_answers.fqdn: key 'fqdn' is not SECTION/name or QUESTION/N/name "
     "(e.g. OVESETUP_CONFIG/fqdn)"),
    ("answer unknown type",
     site("extra_answers:\n  OVESETUP_A/b:\n    type: float\n    value: x\n"),
     "8: site dc1: extra_answers.OVESETUP_A/b.type: "
     "must be 'str', 'bool', 'int', 'none' or 'multi-str', got 'float'"),
    ("answer value type",
     site("extra_answers:\n  OVESETUP_A/b:\n    type: int\n    value: 'ten'\n"),
     "7: site dc1: extra_answers.OVESETUP_A/b: value 'ten' is not an integer (type: int)"),
    ("answer bool is not int",
     site("extra_answers:\n  OVESETUP_A/b:\n    type: int\n    value: true\n"),
     "7: site dc1: extra_answers.OVESETUP_A/b: value true is not an integer (type: int)"),
    ("answer none with value",
     site("extra_answers:\n  OVESETUP_A/b:\n    type: none\n    value: x\n"),
     "7: site dc1: extra_answers.OVESETUP_A/b: value 'x' is not empty (null) (type: none)"),
    ("answer mapping value",
     site("extra_answers:\n  OVESETUP_A/b:\n    type: str\n    value: {a: 1}\n"),
     "9: site dc1: extra_answers.OVESETUP_A/b.value: expected a string, true/false, an integer, "
     "null or a list of strings, got a mapping"),
    ("bad instance-id", site("instance_id: 'a b'\n"),
     "6: site dc1: instance_id: not an instance-id (letters, digits, '.', '_', '-'): 'a b'"),
    ("engine option", site("engine:\n  storage_type: ceph\n"),
     "7: site dc1: engine.storage_type: "
     "must be 'nfs', 'fc', 'iscsi', 'posixfs' or 'glusterfs', got 'ceph'"),
    ("duplicate key", site("vcpus: 2\nvcpus: 4\n"),
     "7: site dc1: vcpus: duplicate key (first at line 6)"),
    ("duplicate nested key", site("network:\n  mode: dhcp\n  mode: static\n"),
     "8: site dc1: network.mode: duplicate key (first at line 7)"),
    ("bad site name", BASE.replace("  dc1:", "  DC_1:"),
     "2: site DC_1: name: 'DC_1' is not a site name "
     "(lowercase letters, digits and '-', starting with a letter)"),
    ("a flag as a site name", BASE.replace("  dc1:", "  on:"),
     "2: site true: name: YAML reads this key as a boolean, not as text: quote it to make it a "
     "site name"),
    ("a number as a site name", BASE.replace("  dc1:", "  3:"),
     "2: site 3: name: YAML reads this key as a number, not as text: a site name is lowercase "
     "letters, digits and '-', starting with a letter"),
    ("site not a mapping", "sites:\n  dc1: engine.example.com\n",
     "2: site dc1: expected a mapping of site fields (at least fqdn)"),
    ("no sites", "defaults:\n  vcpus: 2\nsites: {}\n", f"3: sites: {NO_SITE}"),
    ("empty sites", "sites:\n", f"1: sites: {NO_SITE}"),
    ("missing sites", "defaults:\n  vcpus: 2\n", f"1: sites: {NO_SITE}"),
    ("sites not a mapping", "sites: [dc1]\n",
     "1: sites: expected a mapping of site names to sites"),
    ("not a mapping", "- dc1\n",
     "1: the inventory must be a mapping with 'sites:' (and 'defaults:')"),
    ("unknown top-level key", "site:\n  dc1: {}\n" + BASE,
     "1: site: unknown top-level key (expected 'defaults' or 'sites')"),
    ("fqdn in defaults", "defaults:\n  fqdn: engine.example.com\n" + BASE,
     "2: defaults: fqdn: set per site, not in defaults"),
    ("bad default, reported once", "defaults:\n  vcpus: lots\n" + two_sites(DC2),
     "2: defaults: vcpus: expected an integer, got 'lots'"),
    ("a flag as a key in defaults, reported once", "defaults:\n  true: 1\n" + two_sites(DC2),
     "2: defaults: true: not a field name (field names are text)"),
    ("unknown default", "defaults:\n  network:\n    moed: static\n" + BASE,
     "3: defaults: network.moed: unknown field; did you mean 'mode'?"),
    ("default breaks a site", "defaults:\n  network:\n    mode: static\n" + BASE,
     "3: site dc1: network.mode: static mode needs ipv4 and/or ipv6"),
    ("duplicate site", BASE + BASE.removeprefix("sites:\n"),
     "6: site dc1: duplicate site (first at line 2)"),
    ("duplicate fqdn", two_sites(DC2.replace("dc2", "dc1")),
     "7: site dc2: fqdn: FQDN engine.dc1.example.com is also used by site dc1"),
    ("duplicate fqdn, other case", two_sites(DC2.replace("engine.dc2", "ENGINE.dc1")),
     "7: site dc2: fqdn: FQDN engine.dc1.example.com is also used by site dc1"),
    ("duplicate MAC", two_sites(DC2 + "network:\n  mac: 00:16:3e:00:00:01\n",
                                "network:\n  mac: 00:16:3e:00:00:01\n"),
     "13: site dc2: network.mac: MAC 00:16:3e:00:00:01 is also used by site dc1"),
    ("derived MAC taken", two_sites(DC2, "network:\n  mac: 00:16:3e:88:ac:22\n"),
     "8: site dc2: network.mac: derived MAC 00:16:3e:88:ac:22 is also used by site dc1"),
    ("duplicate IPv4", two_sites(
        DC2 + "network:\n  mode: static\n  ipv4:\n    address: 192.0.2.10/25\n",
        "network:\n  mode: static\n  ipv4:\n    address: 192.0.2.10/24\n"),
     "17: site dc2: network.ipv4.address: address 192.0.2.10 is also used by site dc1"),
    ("duplicate IPv6", two_sites(
        DC2 + "network:\n  mode: static\n  ipv6:\n    address: 2001:db8::a/64\n",
        "network:\n  mode: static\n  ipv6:\n    address: 2001:DB8::A/64\n"),
     "17: site dc2: network.ipv6.address: address 2001:db8::a is also used by site dc1"),
    ("duplicate instance-id", two_sites(DC2 + "instance_id: i-1\n", "instance_id: i-1\n"),
     "11: site dc2: instance_id: instance-id i-1 is also used by site dc1"),
    ("YAML syntax", "sites:\n  dc1: [\n", "3: did not find expected node content"),
    # ----- hardening: values `seed` would refuse are refused here first -----
    ("tab in organization", site("engine:\n  organization: \"Example\\tDC\"\n"),
     "7: site dc1: engine.organization: contains the control character U+0009 (tab)"),
    ("line separator in organization", site("engine:\n  organization: \"Example\\LDC\"\n"),
     "7: site dc1: engine.organization: contains the control character U+2028 "
     "(line separator)"),
    ("empty organization", site("engine:\n  organization: ''\n"),
     "7: site dc1: engine.organization: must not be empty (leave it out to use the FQDN's "
     "domain)"),
    ("organization with blanks", site("engine:\n  organization: ' Example DC'\n"),
     "7: site dc1: engine.organization: starts or ends with whitespace"),
    ("organization too long", site(f"engine:\n  organization: {'O' * 65}\n"),
     "7: site dc1: engine.organization: 65 characters, more than the 64 that X.509 allows in "
     "an organization name (engine-setup's CA would fail)"),
    ("domain too long for the default organization",
     BASE.replace("engine.dc1.example.com", "engine." + "d" * 60 + ".example.com"),
     "2: site dc1: engine.organization: the default, the FQDN's domain, has 72 characters, "
     "more than the 64 X.509 allows: set engine.organization"),
    ("NTP server with options", site("ntp_servers: ['pool.ntp.org iburst']\n"),
     "6: site dc1: ntp_servers[0]: not a host name or IP address: 'pool.ntp.org iburst'"),
    ("NTP server with a line break", site("ntp_servers: [\"ntp.example.com\\n\"]\n"),
     "6: site dc1: ntp_servers[0]: contains the control character U+000A (line feed)"),
    ("SSH key with a second line",
     site(f"ssh_keys: [\"{KEY_ED25519}\\nssh-ed25519 AAAAintruder\"]\n"),
     "6: site dc1: ssh_keys[0]: contains the control character U+000A (line feed)"),
    ("fqdn with a trailing line break", BASE.replace("engine.dc1.example.com",
                                                     '"engine.dc1.example.com\\n"'),
     "3: site dc1: fqdn: contains the control character U+000A (line feed)"),
    ("hosts name with a line break",
     site("hosts_entries:\n  - ip: 192.0.2.11\n    names: [\"host1\\n10.0.0.1 evil\"]\n"),
     "8: site dc1: hosts_entries[0].names[0]: contains the control character U+000A "
     "(line feed)"),
    ("MAC with a line break", site("network:\n  mac: \"00:16:3e:00:00:01\\n\"\n"),
     "7: site dc1: network.mac: contains the control character U+000A (line feed)"),
    ("bad interface name", site("network:\n  interface: 'eth0 up'\n"),
     "7: site dc1: network.interface: not an interface name (at most 15 letters, digits, '.', "
     "'_', '-'): 'eth0 up'"),
    ("DNS server of an unconfigured family", site("network:\n  dns_servers: ['2001:db8::53']\n"),
     "7: site dc1: network.dns_servers[0]: 2001:db8::53 is IPv6, but the site configures no "
     "IPv6 address"),
    ("other admin user", site("engine:\n  admin_user: root@internal\n"),
     "7: site dc1: engine.admin_user: engine-setup always creates admin@internal; the answer "
     "file cannot name another administrator"),
    ("Grafana without DWH", site("engine:\n  configure_grafana: true\n  configure_dwh: false\n"),
     "7: site dc1: engine.configure_grafana: Grafana needs the data warehouse "
     "(set engine.configure_dwh: true)"),
    ("bad root_ssh", site("root_ssh: maybe\n"),
     "6: site dc1: root_ssh: must be 'key' or 'password', got 'maybe'"),
    ("answer with a trailing blank",
     site("extra_answers:\n  OVESETUP_A/b: {type: str, value: 'x '}\n"),
     "7: site dc1: extra_answers.OVESETUP_A/b: the str value ends with whitespace, which "
     "engine-setup's parser strips"),
    ("answer with a line break",
     site("extra_answers:\n  OVESETUP_A/b: {type: str, value: \"x\\ry\"}\n"),
     "7: site dc1: extra_answers.OVESETUP_A/b: the str value contains a line break, which the "
     "answer file cannot carry"),
    ("answer item read as a comment",
     site("extra_answers:\n  OVESETUP_A/b: {type: multi-str, value: [a, '#b']}\n"),
     "7: site dc1: extra_answers.OVESETUP_A/b: the multi-str value item 1: starts with '#', "
     "which engine-setup's parser reads as a comment line"),
    ("answer key derived from a field",
     site("extra_answers:\n  OVESETUP_CONFIG/fqdn: {type: str, value: other.example.com}\n"),
     "7: site dc1: extra_answers.OVESETUP_CONFIG/fqdn: OVESETUP_CONFIG/fqdn is already set "
     "from the inventory field fqdn; change it there"),
    ("answer key fixed by the seed",
     site("extra_answers:\n  DIALOG/autoAcceptDefault: {type: bool, value: false}\n"),
     "7: site dc1: extra_answers.DIALOG/autoAcceptDefault: DIALOG/autoAcceptDefault is set by "
     "the seed for the unattended run; it cannot be changed"),
    ("question key without occurrence",
     site("extra_answers:\n  QUESTION/OVESETUP_X: {type: str, value: 'yes'}\n"),
     "7: site dc1: extra_answers.QUESTION/OVESETUP_X: key 'QUESTION/OVESETUP_X' is not "
     "SECTION/name or QUESTION/N/name (e.g. OVESETUP_CONFIG/fqdn)"),
    ("secret file under ~", BASE.replace("env:ROOT_PW", "file:~/root-pw"),
     "4: site dc1: root_password: '~' is not expanded in file: references; write the path "
     "relative to the inventory's directory, or absolute (with --allow-secrets-from)"),
    ("secret reference with a line break", BASE.replace("env:ROOT_PW", '"env:ROOT_PW\\n"'),
     "4: site dc1: root_password: contains the control character U+000A (line feed)"),
    ("key with a line break", site("\"colour\\nhe-build: fake\": red\n"),
     "6: site dc1: colour\nhe-build: fake: unknown field"),
    # ----- hostile YAML: refused before anything is built from it -----
    ("alias bomb", "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n"
        for i in range(9)),
     "6: more than 1,000,000 values once aliases are expanded (an alias bomb?)"),
    ("deep nesting", "sites: " + "[" * 100_000 + "\n",
     "1: nested more than 64 levels deep"),
    ("huge integer", site("vcpus: " + "9" * 5000 + "\n"),
     "6: site dc1: vcpus: an integer with 5000 digits (more than 100)"),
    ("control character", "sites:\n  dc1: \x07\n", "2: control characters are not allowed"),
    ("alias without anchor", "sites:\n  dc1: *nowhere\n",
     "2: alias *nowhere has no anchor &nowhere before it"),
    ("recursive alias", "sites: &s\n  dc1: *s\n", "2: alias *s refers to a node that contains it"),
    ("second document", BASE + "---\n" + BASE, "6: more than one YAML document (a second '---')"),
    ("unsupported tag", site("vcpus: !!python/object:os.system x\n"),
     "6: site dc1: vcpus: unsupported YAML tag !!python/object:os.system"),
    ("tag on a mapping", site("network: !!omap [mode: dhcp]\n"),
     "6: site dc1: network: unsupported YAML tag !!omap"),
    ("tagged value that is not one", site("ntp_servers: [a.example.com, !!bool maybe]\n"),
     "6: site dc1: ntp_servers[1]: not true or false: 'maybe'"),
    ("mapping as a key", site("? [a, b]\n: c\n"),
     "6: a mapping key must be a plain value, not a mapping or a list"),
    ("bad merge", site("<<: 3\n"), "6: a merge key '<<' needs a mapping or a list of mappings"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_inventory_gets_exact_message(tmp_path: Path, text: str, expected: str) -> None:
    assert problems_of(tmp_path, text) == [expected]


def test_all_problems_are_collected_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(two_sites(DC2 + "vcpus: 0\n", "colour: red\ntimezone: Nowhere\n"))
    with pytest.raises(InputError) as info:
        load_inventory(path)
    assert info.value.message == f"inventory {path} has 3 problems"
    assert [line.split(": ", 2)[1] for line in info.value.problems] == [
        "site dc1", "site dc1", "site dc2"]
    lines = [int(line.removeprefix(f"{path}:").split(":")[0]) for line in info.value.problems]
    assert lines == [6, 7, 12]


def test_literal_password_is_never_echoed(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(BASE.replace("env:ROOT_PW", "S3cret-Pa55"))
    with pytest.raises(InputError) as info:
        load_inventory(path)
    assert "S3cret-Pa55" not in info.value.message + "\n".join(info.value.problems)


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


def make_too_big(path: Path) -> None:
    with path.open("wb") as handle:
        handle.truncate(MAX_INVENTORY_BYTES + 1)


def make_not_utf8(path: Path) -> None:
    path.write_bytes(b"sites:\n  dc1: \xff\n")


# (case, how to make the inventory path, the line printed after "he-build: ", FILE standing for
# the path): the file itself, before any YAML.
FILE_CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("missing file", lambda path: None,
     "error: cannot read inventory FILE: No such file or directory"),
    ("directory", lambda path: path.mkdir(),
     "error: cannot read inventory FILE: a directory, not a regular file"),
    ("FIFO (would block a plain open)", make_fifo,
     "error: cannot read inventory FILE: a FIFO (named pipe), not a regular file"),
    ("larger than 16 MiB", make_too_big,
     "error: cannot read inventory FILE: 16,777,217 bytes, larger than the limit of "
     "16,777,216 bytes"),
    ("not UTF-8", make_not_utf8, "FILE:2: byte 0xff is not UTF-8"),
]


@pytest.mark.parametrize(("make", "expected"), [c[1:] for c in FILE_CASES],
                         ids=[c[0] for c in FILE_CASES])
def test_unusable_file_gets_one_line(tmp_path: Path, make: Callable[[Path], None],
                                     expected: str) -> None:
    path = tmp_path / "inventory.yaml"
    make(path)
    with deadline(10), pytest.raises(InputError) as info:
        load_inventory(path)
    assert expected.replace("FILE", str(path)) in error_lines(info.value)
    assert info.value.exit_code == ExitCode.BAD_INPUT


def test_a_device_is_never_read(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        load_inventory(Path("/dev/zero"))
    assert info.value.message == \
        "cannot read inventory /dev/zero: a character device, not a regular file"


def test_merge_keys_fill_in_and_explicit_keys_win(tmp_path: Path) -> None:
    text = ("x-unused: &common\n  vcpus: 2\n  memory_mib: 2048\nsites:\n  dc1:\n"
            "    <<: *common\n    vcpus: 6\n    fqdn: engine.dc1.example.com\n"
            "    root_password: prompt\n    admin_password: prompt\n")
    # x-unused is not a top-level key: the only problem
    assert problems_of(tmp_path, text) == [
        "1: x-unused: unknown top-level key (expected 'defaults' or 'sites')"]
    path = tmp_path / "inventory.yaml"
    path.write_text(text.replace("x-unused: &common", "defaults: &common"))
    site = load_inventory(path).sites["dc1"]
    assert (site.vcpus, site.memory_mib) == (6, 2048)


def test_dates_and_base_60_look_alikes_stay_text(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(site("instance_id: 2024-01-31\nnetwork:\n  mac: 52:54:00:12:34:56\n"))
    loaded = load_inventory(path).sites["dc1"]
    assert loaded.instance_id == "2024-01-31"
    assert loaded.network.mac == "52:54:00:12:34:56"


def documented_rows(heading: str) -> dict[str, str]:
    """label -> message of the table that follows `heading` in docs/inventory.md."""
    text = (Path(__file__).parents[2] / "docs" / "inventory.md").read_text()
    rows: dict[str, str] = {}
    for line in text.split(heading, 1)[1].split("\n\n| bad input", 1)[1].splitlines()[2:]:
        if not line.startswith("| "):
            break
        label, message = line[2:].split(" | `", 1)
        rows[label] = message.removesuffix("` |").replace("\\|", "|")
    return rows


def test_the_documented_table_is_the_tested_one() -> None:
    assert documented_rows("## Bad input") == \
        {label: printable(f"FILE:{expected}") for label, _, expected in CASES}
    assert documented_rows("The file itself:") == \
        {label: expected for label, _, expected in FILE_CASES}
