"""The YAML reader of every input file (inventory, release file, recipe): bounded, plain data
plus the line of every key, duplicates recorded.

The tree is built straight from libyaml's event stream (iteratively, never recursively), so
nesting depth, alias expansion and integer sizes are checked before anything is built from them:
PyYAML's own composer recurses in C and crashes the process on deeply nested input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml import events as ev
from yaml._yaml import CParser

from builder.errors import InputError
from builder.inventory.files import FileRefused, read_regular_file, size_text


@dataclass(frozen=True)
class OtherKey:
    """A mapping key YAML read as something other than text (null, true, 3), in a path: an
    int in a path is a list index, and a message shows this key as the file spells it."""

    value: object

    def __str__(self) -> str:
        return yaml_text(self.value)


Path_ = tuple[str | int | OtherKey, ...]

MAX_DEPTH = 64
# Values in the document once every alias is expanded: what later steps walk over.
MAX_VALUES = 1_000_000
MAX_INT_DIGITS = 100

TAG = "tag:yaml.org,2002:"
# YAML 1.1 reads an unquoted 52:54:00:12:34:56 as a base-60 integer; MACs are common here, so
# the reader keeps only the decimal/hex/octal/binary forms of numbers.
_INT = re.compile(
    r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"
)
_FLOAT = re.compile(
    r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_BOOLS = {"yes": True, "no": False, "true": True, "false": False, "on": True, "off": False}


class YamlInputError(Exception):
    """The text is not YAML this reader accepts; `line` is 1-based; `path` is where the value
    sits (keys and list indexes) when the problem is one value's (a bad tag or scalar)."""

    def __init__(self, line: int, message: str, path: Path_ = ()) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.path = path


class LineDict(dict[Any, Any]):
    """A mapping that remembers where it and each of its keys are in the file."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[Any, int] = {}
        self.duplicates: list[tuple[Any, int, int]] = []  # (key, line, first line)


class LineList(list[Any]):
    """A sequence that remembers the line of each item."""

    def __init__(self, line: int, item_lines: Sequence[int]) -> None:
        super().__init__()
        self.line = line
        self.item_lines = list(item_lines)


class _Resolver(yaml.resolver.Resolver):
    """YAML 1.1's implicit types, without base-60 numbers."""

    yaml_implicit_resolvers = {  # noqa: RUF012 - built once here, read-only after import
        first: [(tag, rx) for tag, rx in resolvers if not tag.endswith((":int", ":float"))]
        for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    }


_Resolver.add_implicit_resolver(TAG + "int", _INT, list("-+0123456789"))
_Resolver.add_implicit_resolver(TAG + "float", _FLOAT, list("-+0123456789."))
_RESOLVER = _Resolver()


def _int(text: str, line: int) -> int:
    if not _INT.match(text):
        raise YamlInputError(line, f"not an integer: {text[:40]!r}")
    digits = text.replace("_", "").lstrip("+-")
    if len(digits) > MAX_INT_DIGITS:
        raise YamlInputError(line, f"an integer with {len(digits)} digits "
                             f"(more than {MAX_INT_DIGITS})")
    sign = -1 if text.startswith("-") else 1
    base = {"0b": 2, "0x": 16}.get(digits[:2], 8 if digits[:1] == "0" else 10)
    try:
        return sign * int(digits[2:] if base in (2, 16) else digits, base)
    except ValueError:  # "0x_": the pattern allows underscores only
        raise YamlInputError(line, f"not an integer: {text[:40]!r}") from None


def _float(text: str, line: int) -> float:
    if not _FLOAT.match(text):
        raise YamlInputError(line, f"not a number: {text[:40]!r}")
    value = text.replace("_", "").lower()
    sign = -1.0 if value.startswith("-") else 1.0
    value = value.lstrip("+-")
    if value == ".inf":
        return sign * float("inf")
    return float("nan") if value == ".nan" else sign * float(value)


def _bool(text: str, line: int) -> bool:
    try:
        return _BOOLS[text.lower()]
    except KeyError:
        raise YamlInputError(line, f"not true or false: {text[:40]!r}") from None


def _null(_text: str, _line: int) -> None:
    return None


def _str(text: str, _line: int) -> str:
    return text


# Dates and YAML 1.1's `=` stay text: no inventory field takes them.
SCALARS: dict[str, Callable[[str, int], Any]] = {
    TAG + "str": _str, TAG + "int": _int, TAG + "float": _float, TAG + "bool": _bool,
    TAG + "null": _null, TAG + "timestamp": _str, TAG + "value": _str, "!": _str,
}
MAPPING_TAGS = frozenset({None, "!", TAG + "map"})
SEQUENCE_TAGS = frozenset({None, "!", TAG + "seq"})
MERGE = object()  # the `<<` key


@dataclass
class _Open:
    """A mapping or sequence being built."""

    line: int
    anchor: str | None
    is_mapping: bool
    values: int = 1  # this node and everything in it, aliases expanded
    items: list[Any] = field(default_factory=list)
    item_lines: list[int] = field(default_factory=list)
    pending_key: Any = None
    has_key: bool = False


@dataclass
class _Built:
    """A finished node and how many values it holds, itself included, aliases expanded."""

    value: Any
    values: int


class _TreeBuilder:
    """Turns the event stream into LineDict/LineList/scalars, within the limits above."""

    def __init__(self) -> None:
        self.stack: list[_Open] = []
        self.anchors: dict[str, _Built] = {}
        self.open_anchors: set[str] = set()
        self.total = 0
        self.root: _Built | None = None
        self.documents = 0

    def feed(self, event: ev.Event | None) -> None:
        mark = event.start_mark if event is not None else None
        line = mark.line + 1 if mark is not None else 1
        if isinstance(event, ev.ScalarEvent):
            self._scalar(event, line)
        elif isinstance(event, ev.MappingStartEvent | ev.SequenceStartEvent):
            self._start(event, line)
        elif isinstance(event, ev.MappingEndEvent | ev.SequenceEndEvent):
            self._end(line)
        elif isinstance(event, ev.AliasEvent):
            self._alias(event, line)
        elif isinstance(event, ev.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise YamlInputError(line, "more than one YAML document (a second '---')")

    def _count(self, values: int, line: int) -> None:
        self.total += values
        if self.total > MAX_VALUES:
            raise YamlInputError(line, f"more than {MAX_VALUES:,} values once aliases are "
                                 "expanded (an alias bomb?)")

    def _scalar(self, event: ev.ScalarEvent, line: int) -> None:
        tag = event.tag
        if tag is None or tag == "!":
            tag = _RESOLVER.resolve(  # type: ignore[no-untyped-call]
                yaml.ScalarNode, event.value, event.implicit)
        if tag == TAG + "merge":
            self._add(_Built(MERGE, 1), line, event.anchor)
            return
        construct = SCALARS.get(tag)
        if construct is None:
            raise YamlInputError(line, f"unsupported YAML tag {_short(tag)}", self.key_path())
        try:
            value = construct(event.value, line)
        except YamlInputError as exc:
            raise YamlInputError(exc.line, exc.message, self.key_path()) from None
        self._add(_Built(value, 1), line, event.anchor)

    def _start(self, event: ev.MappingStartEvent | ev.SequenceStartEvent, line: int) -> None:
        is_mapping = isinstance(event, ev.MappingStartEvent)
        if event.tag not in (MAPPING_TAGS if is_mapping else SEQUENCE_TAGS):
            raise YamlInputError(line, f"unsupported YAML tag {_short(event.tag)}",
                                 self.key_path())
        if len(self.stack) >= MAX_DEPTH:
            raise YamlInputError(line, f"nested more than {MAX_DEPTH} levels deep")
        self._count(1, line)
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        self.stack.append(_Open(line, event.anchor, is_mapping))

    def key_path(self) -> Path_:
        """Where the node being read sits: the key or index it takes in each open node (a
        mapping's key being read sits at the mapping itself)."""
        path: list[str | int | OtherKey] = []
        for node in self.stack:
            if not node.is_mapping:
                path.append(len(node.items))
            elif not node.has_key:
                break
            else:
                path.append("<<" if node.pending_key is MERGE else path_key(node.pending_key))
        return tuple(path)

    def _end(self, line: int) -> None:
        node = self.stack.pop()
        value = _mapping(node) if node.is_mapping else _sequence(node)
        if node.anchor is not None:
            self.open_anchors.discard(node.anchor)
        self._add(_Built(value, node.values), node.line, node.anchor, counted=True)

    def _alias(self, event: ev.AliasEvent, line: int) -> None:
        name = event.anchor or ""
        if name in self.open_anchors:
            raise YamlInputError(line, f"alias *{name} refers to a node that contains it")
        built = self.anchors.get(name)
        if built is None:
            raise YamlInputError(line, f"alias *{name} has no anchor &{name} before it")
        self._add(built, line, None)

    def _add(self, built: _Built, line: int, anchor: str | None, counted: bool = False) -> None:
        if not counted:
            self._count(built.values, line)
        if anchor is not None:
            self.anchors[anchor] = built
        if not self.stack:
            self.root = _Built("<<", 1) if built.value is MERGE else built
            return
        parent = self.stack[-1]
        parent.values += built.values
        if parent.is_mapping and not parent.has_key:
            if isinstance(built.value, LineDict | LineList):
                raise YamlInputError(line, "a mapping key must be a plain value, not a "
                                     "mapping or a list")
            parent.pending_key, parent.has_key = built.value, True
            parent.item_lines.append(line)
            return
        # `<<` means a merge only as a key; elsewhere it is text, as in the file.
        parent.items.append("<<" if built.value is MERGE else built.value)
        if parent.is_mapping:
            parent.items.append(parent.pending_key)  # kept as (value, key) pairs
            parent.has_key = False
        else:
            parent.item_lines.append(line)


def _short(tag: str | None) -> str:
    return f"!!{tag.removeprefix(TAG)}" if tag and tag.startswith(TAG) else str(tag)


def _sequence(node: _Open) -> LineList:
    result = LineList(node.line, node.item_lines)
    result.extend(node.items)
    return result


def _mapping(node: _Open) -> LineDict:
    """Explicit keys in order; `<<` merges fill in keys the mapping does not set itself."""
    explicit = LineDict(node.line)
    merges: list[tuple[Any, int]] = []
    for index, line in enumerate(node.item_lines):
        value, key = node.items[2 * index], node.items[2 * index + 1]
        if key is MERGE:
            merges.append((value, line))
        elif key in explicit:
            explicit.duplicates.append((key, line, explicit.key_lines[key]))
        else:
            explicit[key], explicit.key_lines[key] = value, line
    if not merges:
        return explicit
    merged = LineDict(node.line)
    for source, line in merges:
        for part in _merge_sources(source, line):
            for key, value in part.items():
                if key not in merged and key not in explicit:
                    merged[key], merged.key_lines[key] = value, part.key_lines[key]
    for key, value in explicit.items():
        merged[key], merged.key_lines[key] = value, explicit.key_lines[key]
    merged.duplicates = explicit.duplicates
    return merged


def _merge_sources(source: Any, line: int) -> list[LineDict]:
    if isinstance(source, LineDict):
        return [source]
    if isinstance(source, LineList) and all(isinstance(item, LineDict) for item in source):
        return list(source)
    raise YamlInputError(line, "a merge key '<<' needs a mapping or a list of mappings")


def _syntax_problem(exc: yaml.MarkedYAMLError) -> str:
    """libyaml's own message, except for its nesting limit (0.2.5 and later scan a flow
    collection ahead of the events, so theirs can come first): ours, whichever version."""
    problem = exc.problem or str(exc).splitlines()[0]
    if "maximum nesting depth" in problem:
        return f"nested more than {MAX_DEPTH} levels deep"
    return problem


def parse_yaml(text: str) -> Any:
    """One YAML document as LineDict/LineList/scalars (None when empty).

    Raises YamlInputError for the limits above and for YAML syntax errors.
    """
    builder = _TreeBuilder()
    try:
        parser = CParser(text)
    except UnicodeEncodeError:
        raise YamlInputError(1, "not valid Unicode text (a lone surrogate)") from None
    try:
        while parser.check_event():
            builder.feed(parser.get_event())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 1
        raise YamlInputError(line, _syntax_problem(exc)) from None
    except yaml.reader.ReaderError as exc:
        line = text.encode("utf-8", "surrogatepass")[: exc.position].count(b"\n") + 1
        raise YamlInputError(line, exc.reason) from None
    except yaml.YAMLError as exc:
        raise YamlInputError(1, str(exc).splitlines()[0]) from None
    finally:
        parser.dispose()
    return None if builder.root is None else builder.root.value


def read_yaml_file(path: Path, *, what: str, limit: int, hint: str,
                   describe: Callable[[Path_], str] | None = None) -> Any:
    """The parsed YAML of a regular file of at most `limit` bytes in UTF-8 (None when empty).

    InputError naming `what` (inventory, release file, recipe) and `path`, with the line of a
    byte that is not UTF-8 or of a YAML error, and the value's place in the file when the error
    is one value's (`describe` words it; default: `key.path[0]`); `hint` says what the file
    should be."""
    try:
        data = read_regular_file(path, limit=limit).data
    except FileRefused as exc:
        raise InputError(f"cannot read {what} {path}: {exc.reason}",
                         hint=f"{hint} of at most {size_text(limit)}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{what} {path} is not UTF-8 text",
                         problems=[f"{path}:{line}: byte 0x{data[exc.start]:02x} is not "
                                   "UTF-8"]) from None
    try:
        return parse_yaml(text)
    except YamlInputError as exc:
        subject = f"{(describe or dotted)(exc.path)}: " if exc.path else ""
        raise InputError(f"{what} {path} is not valid YAML",
                         problems=[f"{path}:{exc.line}: {subject}{exc.message}"]) from None


def duplicate_keys(node: Any, path: Path_ = ()) -> Iterator[tuple[Path_, int, int]]:
    """(the key's path, its line, the line of its first occurrence) of every key given twice
    in a mapping anywhere under `node`, in document order: YAML would silently keep the last."""
    if isinstance(node, LineDict):
        for key, line, first in node.duplicates:
            yield (*path, path_key(key)), line, first
        for key, value in node.items():
            yield from duplicate_keys(value, (*path, path_key(key)))
    elif isinstance(node, LineList):
        for index, value in enumerate(node):
            yield from duplicate_keys(value, (*path, index))


def other_keys(node: Any, path: Path_ = ()) -> Iterator[tuple[Path_, int]]:
    """(the path, the line) of every mapping key under `node` that YAML read as something
    other than text (null, true, 3): no field has such a name."""
    if isinstance(node, LineDict):
        for key, value in node.items():
            here = (*path, path_key(key))
            if not isinstance(key, str):
                yield here, node.key_lines[key]
            yield from other_keys(value, here)
    elif isinstance(node, LineList):
        for index, value in enumerate(node):
            yield from other_keys(value, (*path, index))


def key_problems(file: Path, tree: Any) -> list[str]:
    """`FILE:LINE: key.path: given twice (first on line N)` for each key given twice and
    `...: not a field name (field names are text)` for each key that is not text, in line
    order (the release file's and the recipe's wording; the inventory reports them by site)."""
    found = [(line, f"{file}:{line}: {dotted(key)}: given twice (first on line {first})")
             for key, line, first in duplicate_keys(tree)]
    found += [(line, f"{file}:{line}: {dotted(key)}: not a field name (field names are text)")
              for key, line in other_keys(tree)]
    return [text for _, text in sorted(found, key=lambda item: item[0])]


def text_keys_only(node: Any) -> Any:
    """A copy of `node` without the mapping keys that are not text (key_problems told them),
    so that a model sees only keys it can name."""
    if isinstance(node, LineDict):
        kept = LineDict(node.line)
        kept.duplicates = node.duplicates
        for key, value in node.items():
            if isinstance(key, str):
                kept[key], kept.key_lines[key] = text_keys_only(value), node.key_lines[key]
        return kept
    if isinstance(node, LineList):
        items = LineList(node.line, node.item_lines)
        items.extend(text_keys_only(value) for value in node)
        return items
    return node


def dotted(path: Path_) -> str:
    """('network', 'ipv4', 'gateway') -> network.ipv4.gateway; list items as [0]."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def line_of(node: Any, path: Path_) -> tuple[int | None, bool]:
    """The line of the deepest key of `path` present under `node`, and whether all of it was."""
    line: int | None = None
    for part in path:
        key = part.value if isinstance(part, OtherKey) else part
        if isinstance(node, LineDict) and key in node:
            line, node = node.key_lines[key], node[key]
        elif isinstance(node, LineList) and isinstance(part, int) and 0 <= part < len(node):
            line, node = node.item_lines[part], node[part]
        else:
            return line, False
    return line, True


def path_key(key: object) -> str | OtherKey:
    """A mapping key as a path element: text as it is, any other key as an OtherKey."""
    return key if isinstance(key, str) else OtherKey(key)


def yaml_text(value: object) -> str:
    """A scalar as YAML spells it, text quoted: null, true, 3, 1.5, .inf, 'text'. Messages
    show values so, as the file reads, not as Python's None and True."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else ("-.inf" if value < 0 else ".inf")
    return repr(value)
