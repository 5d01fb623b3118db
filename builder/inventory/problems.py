"""Validation problems: pydantic's errors turned into short, one-line, human messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from builder.inventory import models
from builder.inventory.source import Path_

SECRET_FIELDS = frozenset({"root_password", "admin_password"})
REFERENCE_MESSAGE = (
    "must be a secret reference (env:NAME, file:PATH or prompt), not a literal value"
)

PATTERN_MESSAGES: dict[str, str] = {
    models.FQDN_PATTERN: "not a fully qualified domain name: {input!r}",
    models.MAC_PATTERN: "not a MAC address like 00:16:3e:12:34:56: {input!r}",
    models.REFERENCE_PATTERN: REFERENCE_MESSAGE,
    models.ANSWER_KEY_PATTERN: "key {input!r} is not SECTION/name or QUESTION/N/name "
    "(e.g. OVESETUP_CONFIG/fqdn)",
    models.SITE_NAME_PATTERN: "{input!r} is not a site name "
    "(lowercase letters, digits and '-', starting with a letter)",
    models.HOST_NAME_PATTERN: "not a host name or FQDN: {input!r}",
    models.INSTANCE_ID_PATTERN: "not an instance-id (letters, digits, '.', '_', '-'): {input!r}",
    models.INTERFACE_PATTERN: "not an interface name (at most 15 letters, digits, '.', '_', "
    "'-'): {input!r}",
}

TYPE_MESSAGES: dict[str, str] = {
    "missing": "required",
    "string_type": "expected a string, got {kind}",
    "int_type": "expected an integer, got {input!r}",
    "int_parsing": "expected an integer, got {input!r}",
    "int_from_float": "expected an integer, got {input!r}",
    "bool_type": "expected true or false, got {input!r}",
    "bool_parsing": "expected true or false, got {input!r}",
    "model_type": "expected a mapping, got {kind}",
    "model_attributes_type": "expected a mapping, got {kind}",
    "dict_type": "expected a mapping, got {kind}",
    "tuple_type": "expected a list, got {kind}",
    "list_type": "expected a list, got {kind}",
    "greater_than_equal": "must be at least {ge}, got {input!r}",
    "less_than_equal": "must be at most {le}, got {input!r}",
    "literal_error": "must be {expected}, got {input!r}",
    "too_short": "must not be empty",
    "ip_v4_interface": "not an IPv4 address with prefix (e.g. 192.0.2.10/24): {input!r}",
    "ip_v6_interface": "not an IPv6 address with prefix (e.g. 2001:db8::10/64): {input!r}",
    "ip_v4_address": "not an IPv4 address: {input!r}",
    "ip_v6_address": "not an IPv6 address: {input!r}",
}


@dataclass(frozen=True)
class Problem:
    """One problem at a field path (relative to a site, the defaults, or the file)."""

    path: Path_
    message: str


def known_fields() -> set[str]:
    """Every field name of every inventory model, to suggest a fix for a misspelt key."""
    names: set[str] = set()
    for value in vars(models).values():
        if isinstance(value, type) and issubclass(value, BaseModel):
            names.update(value.model_fields)
    return names


def kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return "nothing (null)" if value is None else repr(value)


def describe(error: ErrorDetails) -> str:
    """The message for one pydantic error, never pydantic's multi-line text."""
    loc = error["loc"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if loc and loc[0] in SECRET_FIELDS and error["type"] not in ("missing", "secret_reference"):
        return REFERENCE_MESSAGE  # never echo what may be a password
    if error["type"] == "extra_forbidden":
        import difflib  # noqa: PLC0415  (for a bad inventory only)

        match = difflib.get_close_matches(str(loc[-1]), sorted(known_fields()), n=1)
        return "unknown field" + (f"; did you mean {match[0]!r}?" if match else "")
    if error["type"] == "string_pattern_mismatch" and ctx.get("pattern") in PATTERN_MESSAGES:
        template = PATTERN_MESSAGES[ctx["pattern"]]
    elif error["type"] in TYPE_MESSAGES:
        template = TYPE_MESSAGES[error["type"]]
    else:
        return error["msg"].removeprefix("Value error, ").splitlines()[0]
    return template.format(input=error.get("input"), kind=kind_of(error.get("input")), **ctx)


def from_validation_error(exc: ValidationError) -> list[Problem]:
    """One Problem per error; '[key]' markers (a bad mapping key) are folded into the path."""
    errors = exc.errors(include_url=False)
    problems = []
    for error in errors:
        path = tuple(part for part in error["loc"] if part != "[key]")
        if error["type"] == "too_short" and has_item_error(path, errors):
            continue  # pydantic counts only the valid items: the bad item is the real problem
        problems.append(Problem(path, describe(error)))
    return problems


def has_item_error(path: Path_, errors: list[ErrorDetails]) -> bool:
    return any(len(e["loc"]) > len(path) and e["loc"][: len(path)] == path for e in errors)
