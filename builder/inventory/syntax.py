"""Field validators for the inventory models: short, human messages instead of pydantic dumps."""

from __future__ import annotations

import base64
import binascii
import struct
import zoneinfo
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

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


def lower_text(value: Any) -> Any:
    """MACs are compared and written in lowercase; accept either case in the file."""
    return value.lower() if isinstance(value, str) else value


def parse_ip(value: Any) -> Any:
    """One error for 'not an address' instead of one per union member."""
    if isinstance(value, IPv4Address | IPv6Address):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected an IP address, got {value!r}")
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
