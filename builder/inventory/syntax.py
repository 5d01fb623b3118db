"""Value checks for the inventory's fields: each raises ValueError with a short, human message."""

from __future__ import annotations

import base64
import binascii
import re
import struct
import unicodedata
import zoneinfo
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from builder.inventory.otopi import int_problem, multi_str_problem, str_problem
from builder.inventory.patterns import HOST_NAME_PATTERN
from builder.inventory.source import yaml_text

# Key types OpenSSH accepts in authorized_keys.
SSH_KEY_TYPES = frozenset({
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
})

# What each otopi answer type accepts as a YAML value.
ANSWER_TYPES: dict[str, str] = {
    "str": "a string",
    "bool": "true or false",
    "int": "an integer",
    "none": "empty (null)",
    "multi-str": "a list of strings",
}


# C0 and C1 controls, line and paragraph separators, lone surrogates: none belongs in a
# one-line value (a name, an address, a key, a path), and some would split a line downstream.
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# X.520's upper bound for an organization name; openssl refuses longer ones.
MAX_ORGANIZATION = 64
HOST_NAME_RE = re.compile(HOST_NAME_PATTERN)


def describe_char(char: str) -> str:
    """'U+000A LINE FEED' style, for messages that must not print the character itself."""
    name = unicodedata.name(char, "")
    if not name and unicodedata.category(char) == "Cc":
        name = {"\n": "line feed", "\r": "carriage return", "\t": "tab"}.get(char, "")
    return f"U+{ord(char):04X}" + (f" ({name.lower()})" if name else "")


def check_line(value: Any) -> Any:
    """One line of printable text: no control character or line separator anywhere."""
    if isinstance(value, str):
        found = CONTROL_RE.search(value)
        if found:
            raise ValueError(f"contains the control character {describe_char(found.group())}")
    return value


def check_secret_reference(value: str) -> str:
    """What a reference's pattern can't say; the messages never echo the value."""
    found = CONTROL_RE.search(value)
    if found:
        raise ValueError("contains the control character " + describe_char(found.group()))
    if value.startswith("file:~"):
        raise ValueError(
            "'~' is not expanded in file: references; write the path "
            "relative to the inventory's directory, or absolute (with --allow-secrets-from)")
    return value


def check_host_or_ip(value: str) -> str:
    if HOST_NAME_RE.fullmatch(value):
        return value
    try:
        ip_address(value)
    except ValueError:
        raise ValueError(f"not a host name or IP address: {value!r}") from None
    return value


def check_organization(value: str) -> str:
    """What engine-setup puts in the CA's subject (O=): one line, trimmed, at most 64 chars."""
    if not value:
        raise ValueError("must not be empty (leave it out to use the FQDN's domain)")
    if value != value.strip():
        raise ValueError("starts or ends with whitespace")
    if len(value) > MAX_ORGANIZATION:
        raise ValueError(f"{len(value)} characters, more than the {MAX_ORGANIZATION} that X.509 "
                         "allows in an organization name (engine-setup's CA would fail)")
    return value


def check_admin_user(value: str) -> str:
    if value != "admin@internal":
        raise ValueError("engine-setup always creates admin@internal; the answer file cannot "
                         "name another administrator")
    return value


def lower_text(value: Any) -> Any:
    """MACs are compared and written in lowercase; accept either case in the file."""
    return value.lower() if isinstance(value, str) else value


def parse_ip(value: Any) -> Any:
    """One error for 'not an address' instead of one per union member."""
    if isinstance(value, IPv4Address | IPv6Address):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected an IP address, got {yaml_text(value)}")
    try:
        return ip_address(value)
    except ValueError:
        raise ValueError(f"not an IPv4 or IPv6 address: {value!r}") from None


def check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r} (e.g. UTC, Europe/Paris)") from None
    return value


def check_ssh_key(value: str) -> str:
    """`TYPE BASE64 [comment]`, with the blob naming the same key type."""
    parts = value.split(None, 2)
    if len(parts) < 2:
        raise ValueError("not an SSH public key (expected 'TYPE BASE64 [comment]')")
    key_type, blob_text = parts[0], parts[1]
    if key_type not in SSH_KEY_TYPES:
        raise ValueError(f"unknown SSH key type {key_type!r}")
    try:
        blob = base64.b64decode(blob_text, validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        blob_type = blob[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError):
        raise ValueError(f"{key_type} key data is not a base64 SSH key blob") from None
    if blob_type != key_type:
        raise ValueError(f"key data is for {blob_type or 'nothing'!r}, not {key_type!r}")
    return value


def answer_value_problem(answer_type: str, value: object) -> str | None:
    """Why engine-setup would not read the value back as written (None when it would)."""
    if answer_type == "str" and isinstance(value, str):
        return str_problem(value)
    if answer_type == "multi-str" and isinstance(value, list):
        return multi_str_problem(value)
    if answer_type == "int" and isinstance(value, int):
        return int_problem(value)
    return None


def answer_value_matches(answer_type: str, value: object) -> bool:
    """Whether a YAML value fits the declared otopi type."""
    if answer_type == "str":
        return isinstance(value, str)
    if answer_type == "bool":
        return isinstance(value, bool)
    if answer_type == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if answer_type == "none":
        return value is None
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def check_answer_shape(value: Any) -> Any:
    """Reject mappings and nested lists up front, with one message instead of one per type."""
    if isinstance(value, str | bool | int) or value is None:
        return value
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return list(value)
    if isinstance(value, dict):
        kind = "a mapping"
    elif isinstance(value, list | tuple):
        kind = "a list with non-string items"
    else:
        kind = type(value).__name__
    raise ValueError(
        f"expected a string, true/false, an integer, null or a list of strings, got {kind}"
    )
