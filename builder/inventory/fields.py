"""Declarative field checks for the inventory's frozen dataclasses.

Each dataclass field carries a `Kind` (in its metadata, see `field`): how a YAML value becomes
the field's value, or which one-line problem it has. The same table gives the JSON Schema. One
pass over a site's mapping reports every problem at its path; a secret reference's value is
never printed back. Records are made by `check` and `parse`; a record built directly is taken
as already checked.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Any, TypeVar

from builder.inventory.problems import (
    REFERENCE_MESSAGE,
    TYPE_MESSAGES,
    InvalidFields,
    Problem,
    type_message,
)
from builder.inventory.source import OtherKey, Path_

T = TypeVar("T")
INVALID: Any = object()  # what a kind returns after reporting its problem
REQUIRED: Any = object()  # a field's default when the mapping must give it


class Problems(list[Problem]):
    """The problems of one value, with their paths; `root`: the record being checked (its
    field names and those of the records it holds are the suggestions for a misspelt key)."""

    def __init__(self, root: type[Any]) -> None:
        super().__init__()
        self.root = root

    def add(self, path: Path_, message: str) -> Any:
        self.append(Problem(path, message))
        return INVALID


def first_line(error: ValueError) -> str:
    return str(error).splitlines()[0] if str(error) else "invalid value"


def apply(checks: tuple[Callable[[Any], Any], ...], value: Any, path: Path_,
          problems: Problems) -> Any:
    """Run value checks in order (each may convert); the first ValueError is the problem."""
    for check in checks:
        try:
            value = check(value)
        except ValueError as exc:
            return problems.add(path, first_line(exc))
    return value


class Kind:
    """How one YAML value is checked and converted; and its JSON Schema."""

    def convert(self, value: Any, path: Path_, problems: Problems) -> Any:
        raise NotImplementedError

    def schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Text(Kind):
    """A string: `before` checks see the raw value, then the type and pattern, then `after`."""

    pattern: str | None = None
    message: str = "does not match {pattern}: {input!r}"
    before: tuple[Callable[[Any], Any], ...] = ()
    after: tuple[Callable[[Any], Any], ...] = ()

    def convert(self, value: Any, path: Path_, problems: Problems) -> Any:
        value = apply(self.before, value, path, problems)
        if value is INVALID:
            return INVALID
        if not isinstance(value, str):
            return problems.add(path, type_message("string_type", value))
        if self.pattern is not None and not re.match(self.pattern, value):
            return problems.add(path, self.message.format(input=value, pattern=self.pattern))
        return apply(self.after, value, path, problems)

    def schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        return {"type": "string", **({"pattern": self.pattern} if self.pattern else {})}


@dataclasses.dataclass(frozen=True)
class SecretReference(Kind):
    """env:NAME, file:PATH or prompt. Anything else may be a password: never echoed."""

    pattern: str
    after: tuple[Callable[[str], str], ...] = ()

    def convert(self, value: Any, path: Path_, problems: Problems) -> Any:
        if not isinstance(value, str) or not re.match(self.pattern, value):
            return problems.add(path, REFERENCE_MESSAGE)
        return apply(self.after, value, path, problems)

    def schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        return {"type": "string", "pattern": self.pattern}


@dataclasses.dataclass(frozen=True)
class Integer(Kind):
    """An integer (or a whole float, or the text of one), within [ge, le]."""

    ge: int | None = None
    le: int | None = None

    def convert(self, value: Any, path: Path_, problems: Problems) -> Any:
        number = as_integer(value, path, problems)
        if number is INVALID:
            return INVALID
        if self.ge is not None and number < self.ge:
            return problems.add(path, type_message("greater_than_equal", value, ge=self.ge))
        if self.le is not None and number > self.le:
            return problems.add(path, type_message("less_than_equal", value, le=self.le))
        return number

    def schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        bounds = {"minimum": self.ge, "maximum": self.le}
        return {"type": "integer", **{key: v for key, v in bounds.items() if v is not None}}


# A float beyond a 64-bit integer is no count anyone meant (nor are inf and nan).
MAX_FLOAT_INTEGER = 2.0**63


def as_integer(value: Any, path: Path_, problems: Problems) -> Any:
    """`value` as an int; true and false (yes, on...) are not counts, though Python's bool is
    an int."""
    if isinstance(value, bool):
        return problems.add(path, type_message("int_type", value))
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < MAX_FLOAT_INTEGER:
            return int(value)
        code = "int_from_float" if abs(value) < MAX_FLOAT_INTEGER else "int_parsing"
        return problems.add(path, type_message(code, value))
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?[0-9](_?[0-9])*(\.0*)?", text):
            return int(text.split(".")[0])
        return problems.add(path, type_message("int_parsing", value))
    return problems.add(path, type_message("int_type", value))


TRUE_WORDS = frozenset({"1", "on", "t", "true", "y", "yes"})
FALSE_WORDS = frozenset({"0", "off", "f", "false", "n", "no"})
BOOLEAN_WORDS = TRUE_WORDS | FALSE_WORDS


@dataclasses.dataclass(frozen=True)
class Boolean(Kind):
    """true or false; also 0/1 and the usual words (yes, off, ...), as YAML 1.1 writers do."""

    def convert(self, value: Any, path: Path_, problems: Problems) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in BOOLEAN_WORDS:
            return value.lower() in TRUE_WORDS
        code = "bool_parsing" if isinstance(value, str | int | float) else "bool_type"
        return problems.add(path, type_message(code, value))

    def schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclasses.dataclass(frozen=True)
class Choice(Kind):
    """One of a few fixed strings."""

    choices: tuple[str, ...]

    def convert(self, value: Any, path: Path_, problems: Problems) -> Any:
        if isinstance(value, str) and value in self.choices:
            return value
        quoted = [repr(choice) for choice in self.choices]
        expected = " or ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1
                               else quoted)
        return problems.add(path, type_message("literal_error", value, expected=expected))

    def schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        return {"enum": list(self.choices)}


@dataclasses.dataclass(frozen=True)
class Optional(Kind):
    """The kind, or null."""

    kind: Kind

    def convert(self, value: Any, path: Path_, problems: Problems) -> Any:
        return None if value is None else self.kind.convert(value, path, problems)

    def schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        return {"anyOf": [self.kind.schema(defs), {"type": "null"}]}


@dataclasses.dataclass(frozen=True)
class Items(Kind):
    """A list of one kind, kept as a tuple; each item's problem at its index."""

    kind: Kind
    min_length: int = 0

    def convert(self, value: Any, path: Path_, problems: Problems) -> Any:
        if not isinstance(value, list | tuple):
            return problems.add(path, type_message("tuple_type", value))
        before = len(problems)
        items = tuple(self.kind.convert(item, (*path, index), problems)
                      for index, item in enumerate(value))
        if len(problems) > before:
            return INVALID
        if len(items) < self.min_length:
            return problems.add(path, type_message("too_short", value))
        return items

    def schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        found = {"type": "array", "items": self.kind.schema(defs)}
        return {**found, "minItems": self.min_length} if self.min_length else found


@dataclasses.dataclass(frozen=True)
class Table(Kind):
    """A mapping from keys of one kind to values of another; a key's problem at that key."""

    key: Text
    kind: Kind

    def convert(self, value: Any, path: Path_, problems: Problems) -> Any:
        if not isinstance(value, Mapping):
            return problems.add(path, type_message("dict_type", value))
        before = len(problems)
        table = {}
        for key, item in value.items():
            checked = self.key.convert(key, (*path, key), problems)
            table[checked] = self.kind.convert(item, (*path, key), problems)
        return INVALID if len(problems) > before else table

    def schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "propertyNames": self.key.schema(defs),
                "additionalProperties": self.kind.schema(defs)}


# Per address type: its problem's message (TYPE_MESSAGES) and its JSON Schema format.
IP_TYPES: dict[type[Any], tuple[str, str]] = {
    IPv4Address: ("ip_v4_address", "ipv4"),
    IPv6Address: ("ip_v6_address", "ipv6"),
    IPv4Interface: ("ip_v4_interface", "ipv4interface"),
    IPv6Interface: ("ip_v6_interface", "ipv6interface"),
}


@dataclasses.dataclass(frozen=True)
class Ip(Kind):
    """An address of one family, or (an interface type) an address with its prefix."""

    family: type[IPv4Address | IPv6Address | IPv4Interface | IPv6Interface]

    def convert(self, value: Any, path: Path_, problems: Problems) -> Any:
        if isinstance(value, self.family):
            return value
        if isinstance(value, str | int) and not isinstance(value, bool):
            try:
                return self.family(value)
            except ValueError:
                pass
        return problems.add(path, type_message(IP_TYPES[self.family][0], value))

    def schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        return {"type": "string", "format": IP_TYPES[self.family][1]}


@dataclasses.dataclass(frozen=True)
class Checked(Kind):
    """A value only its own checks define (an IP of either family, an answer's value)."""

    checks: tuple[Callable[[Any], Any], ...]
    json_schema: Mapping[str, Any]

    def convert(self, value: Any, path: Path_, problems: Problems) -> Any:
        return apply(self.checks, value, path, problems)

    def schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        return dict(self.json_schema)


@dataclasses.dataclass(frozen=True)
class Record(Kind):
    """A mapping of a dataclass's fields; unknown keys refused; then the class's own check."""

    cls: type[Any]
    check: Callable[[Any], str | None] | None = None

    @functools.cached_property
    def table(self) -> tuple[tuple[str, Kind, bool], ...]:
        """(name, kind, required) of each field, read once from the dataclass."""
        return tuple((spec.name, kind_of_field(spec), is_required(spec))
                     for spec in dataclasses.fields(self.cls))

    @functools.cached_property
    def names(self) -> frozenset[str]:
        return frozenset(name for name, _, _ in self.table)

    def convert(self, value: Any, path: Path_, problems: Problems) -> Any:
        if not isinstance(value, Mapping):
            return problems.add(path, type_message("model_type", value))
        before = len(problems)
        given = {}
        for name, kind, required in self.table:
            if name in value:
                given[name] = kind.convert(value[name], (*path, name), problems)
            elif required:
                problems.add((*path, name), TYPE_MESSAGES["missing"])
        for key in value:
            if not isinstance(key, str):
                problems.add((*path, OtherKey(key)), "not a field name (field names are text)")
            elif key not in self.names:
                problems.add((*path, key), unknown_field(key, field_names(problems.root)))
        if len(problems) > before:
            return INVALID
        made = self.cls(**given)
        problem = self.check(made) if self.check is not None else None
        return made if problem is None else problems.add(path, problem)

    def schema(self, defs: dict[str, Any]) -> dict[str, Any]:
        name = self.cls.__name__
        if name not in defs:
            defs[name] = {}  # taken, before the fields (a record may hold its own kind)
            defs[name] = record_schema(self.cls, defs)
        return {"$ref": f"#/$defs/{name}"}


def field(kind: Kind, default: Any = REQUIRED, description: str | None = None) -> Any:
    """A dataclass field checked by `kind` (a mutable default is copied for each instance)."""
    metadata = {"kind": kind, "description": description}
    if default is REQUIRED:
        return dataclasses.field(metadata=metadata)
    if isinstance(default, dict):
        return dataclasses.field(default_factory=dict, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def kind_of_field(spec: dataclasses.Field[Any]) -> Kind:
    kind: Kind = spec.metadata["kind"]
    return kind


def is_required(spec: dataclasses.Field[Any]) -> bool:
    return (spec.default is dataclasses.MISSING
            and spec.default_factory is dataclasses.MISSING)


def unknown_field(key: str, known: set[str]) -> str:
    import difflib  # noqa: PLC0415  (for a bad inventory only)

    match = difflib.get_close_matches(key, sorted(known), n=1)
    return "unknown field" + (f"; did you mean {match[0]!r}?" if match else "")


def field_names(cls: type[Any]) -> set[str]:
    """The field names of `cls` and of every record its fields hold."""
    names: set[str] = set()
    pending, seen = [cls], set()
    while pending:
        record = pending.pop()
        seen.add(record)
        for spec in dataclasses.fields(record):
            names.add(spec.name)
            pending += [held for held in records_in(kind_of_field(spec)) if held not in seen]
    return names


def records_in(kind: Kind) -> list[type[Any]]:
    if isinstance(kind, Record):
        return [kind.cls]
    if isinstance(kind, Optional | Items | Table):
        return records_in(kind.kind)
    return []


def record_schema(cls: type[Any], defs: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for spec in dataclasses.fields(cls):
        entry = kind_of_field(spec).schema(defs)
        if spec.metadata.get("description"):
            entry = {**entry, "description": spec.metadata["description"]}
        if spec.default is not dataclasses.MISSING and is_json(spec.default):
            entry = {**entry, "default": list(spec.default) if isinstance(spec.default, tuple)
                     else spec.default}
        properties[spec.name] = entry
    found: dict[str, Any] = {"title": cls.__name__, "type": "object",
                             "additionalProperties": False, "properties": properties}
    required = [spec.name for spec in dataclasses.fields(cls) if is_required(spec)]
    if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("):  # not dataclass's own
        found["description"] = " ".join(cls.__doc__.split())
    return {**found, "required": required} if required else found


def json_schema(cls: type[Any]) -> dict[str, Any]:
    """A record's JSON Schema, the records it holds under `$defs`."""
    defs: dict[str, Any] = {}
    found = record_schema(cls, defs)
    return {**found, "$defs": defs} if defs else found


def is_json(default: Any) -> bool:
    return default is None or (isinstance(default, str | int | bool | tuple) and not (
        isinstance(default, tuple) and default))


def check(cls: type[T], data: Any) -> tuple[T | None, list[Problem]]:
    """`data` as a `cls` (None when it has problems), and every problem."""
    problems = Problems(cls)
    made = Record(cls).convert(data, (), problems)
    return (None if made is INVALID else made), list(problems)


def parse(cls: type[T], data: Any) -> T:
    """`data` as a `cls`, or InvalidFields listing every problem."""
    made, problems = check(cls, data)
    if made is None:
        raise InvalidFields(problems)
    return made


def to_json(value: Any) -> Any:
    """A record as JSON data: dataclasses as mappings in field order, addresses as text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {spec.name: to_json(getattr(value, spec.name))
                for spec in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, Mapping):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, IPv4Address | IPv6Address | IPv4Interface | IPv6Interface):
        return str(value)
    return value
