"""Validation problems: one short, one-line, human message at a field path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from builder.inventory.source import Path_, dotted

REFERENCE_MESSAGE = (
    "must be a secret reference (env:NAME, file:PATH or prompt), not a literal value"
)

# The message of each kind of type or bound problem (the release file's pydantic errors use
# the same texts, keyed by pydantic's error types).
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


class InvalidFields(ValueError):
    """A mapping that does not make a valid record: every problem, `path: message` each."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(
            f"{dotted(p.path)}: {p.message}" if p.path else p.message for p in problems))


def type_message(code: str, value: Any, **context: Any) -> str:
    """The message of a type or bound problem `code` for `value` (context: ge, le, expected)."""
    return TYPE_MESSAGES[code].format(input=value, kind=kind_of(value), **context)


def kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return "nothing (null)" if value is None else repr(value)
