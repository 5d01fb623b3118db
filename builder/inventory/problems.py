"""Validation problems: one short, one-line, human message at a field path."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.inventory.source import Path_, dotted, line_of, yaml_text

# A problem in a file, as (line, `FILE:LINE: field: message`): sorted, they read top to bottom.
LineProblem = tuple[int, str]

REFERENCE_MESSAGE = (
    "must be a secret reference (env:NAME, file:PATH or prompt), not a literal value"
)

# The message of each kind of type or bound problem (the release file's pydantic errors use
# the same texts, keyed by pydantic's error types).
TYPE_MESSAGES: dict[str, str] = {
    "missing": "required",
    "string_type": "expected a string, got {kind}",
    "int_type": "expected an integer, got {input}",
    "int_parsing": "expected an integer, got {input}",
    "int_from_float": "expected an integer, got {input}",
    "finite_number": "expected a finite number, got {input}",
    "bool_type": "expected true or false, got {input}",
    "bool_parsing": "expected true or false, got {input}",
    "model_type": "expected a mapping, got {kind}",
    "model_attributes_type": "expected a mapping, got {kind}",
    "dict_type": "expected a mapping, got {kind}",
    "tuple_type": "expected a list, got {kind}",
    "list_type": "expected a list, got {kind}",
    "greater_than_equal": "must be at least {ge}, got {input}",
    "less_than_equal": "must be at most {le}, got {input}",
    "literal_error": "must be {expected}, got {input}",
    "too_short": "must not be empty",
    "too_long": "must have at most {max_length} items",
    "string_too_long": "must be at most {max_length} characters long",
    "path_type": "expected a path, got {kind}",
    "ip_v4_interface": "not an IPv4 address with prefix (e.g. 192.0.2.10/24): {input}",
    "ip_v6_interface": "not an IPv6 address with prefix (e.g. 2001:db8::10/64): {input}",
    "ip_v4_address": "not an IPv4 address: {input}",
    "ip_v6_address": "not an IPv6 address: {input}",
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
    shown = kind_of(value) if isinstance(value, dict | list | tuple) else yaml_text(value)
    return TYPE_MESSAGES[code].format(input=shown, kind=kind_of(value), **context)


def kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return "nothing (null)" if value is None else yaml_text(value)


def located(file: Path, tree: Any, path: Path_, message: str) -> LineProblem:
    """`FILE:LINE: field: message`, LINE being that of the deepest key of `path` in `tree` (a
    tree read by builder.inventory.source; line 1 when not even the first key is there)."""
    line = line_of(tree, path)[0] or 1
    field = dotted(path)
    return line, f"{file}:{line}: {field}: {message}" if field else f"{file}:{line}: {message}"


def in_line_order(problems: Iterable[LineProblem]) -> list[str]:
    return [text for _, text in sorted(problems, key=lambda problem: problem[0])]


def model_problems(
    file: Path, tree: Any, errors: Iterable[Mapping[str, Any]],
    message: Callable[[Mapping[str, Any]], str], *, prefix: Path_ = (),
) -> list[LineProblem]:
    """One located problem per field of pydantic's errors (the dicts of
    `ValidationError.errors()`) for a model validated from `tree`'s node at `prefix`.

    A list's "must not be empty" is left out when one of its items has a problem (pydantic
    counts only the valid items), and a field is reported once."""
    errors = list(errors)
    locations = [tuple(part for part in error["loc"] if part != "[key]") for error in errors]
    found: list[LineProblem] = []
    reported: set[Path_] = set()
    for error, loc in zip(errors, locations, strict=True):
        if loc in reported or (error["type"] == "too_short" and any(
                len(other) > len(loc) and other[: len(loc)] == loc for other in locations)):
            continue
        reported.add(loc)
        found.append(located(file, tree, (*prefix, *loc), message(error)))
    return found


def pydantic_message(error: Mapping[str, Any], *, fields: Collection[str] = (),
                     patterns: Mapping[str, str] | None = None) -> str:
    """One pydantic error as a short line: an unknown key (with the closest of `fields`), a
    pattern in its own words (`patterns`: pattern -> message with {input}), a type or bound
    problem (TYPE_MESSAGES), else pydantic's first line without its "Value error, "."""
    context = error.get("ctx") or {}
    if error["type"] == "extra_forbidden":
        return unknown_field(str(error["loc"][-1]), fields)
    if error["type"] == "string_too_short" and context.get("min_length") == 1:
        return "must not be empty"
    if error["type"] == "string_pattern_mismatch":
        pattern = str(context.get("pattern"))
        if patterns and pattern in patterns:
            return patterns[pattern].format(input=error.get("input"))
        return f"{error.get('input')!r} does not match {pattern}"
    if error["type"] in TYPE_MESSAGES:
        return type_message(error["type"], error.get("input"), **context)
    return str(error["msg"]).removeprefix("Value error, ").splitlines()[0]


def unknown_field(name: str, fields: Collection[str]) -> str:
    import difflib  # noqa: PLC0415  (only for a file with a misspelt key)

    match = difflib.get_close_matches(name, sorted(fields), n=1)
    return "unknown field" + (f"; did you mean {match[0]!r}?" if match else "")
