"""The inventory's YAML reader: plain data plus the line of every key, duplicates recorded."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml

Path_ = tuple[str | int, ...]

# YAML 1.1 reads an unquoted 52:54:00:12:34:56 as a base-60 integer; MACs are common here, so
# the reader keeps only the decimal/hex/octal/binary forms of numbers.
_INT = re.compile(
    r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"
)
_FLOAT = re.compile(
    r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


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


# libyaml's parser (several times faster than the pure-Python one); constructors stay Python.
class _Loader(yaml.CSafeLoader):
    """A safe loader with line-recording containers and without base-60 numbers."""

    yaml_implicit_resolvers = {  # noqa: RUF012 - built once here, read-only after import
        first: [(tag, rx) for tag, rx in resolvers if not tag.endswith((":int", ":float"))]
        for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
    }


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict(node.start_mark.line + 1)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str | int | float | bool) and key is not None:
            key = str(key)
        if key in result:
            result.duplicates.append((key, line, result.key_lines[key]))
            continue
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList(node.start_mark.line + 1, [item.start_mark.line + 1 for item in node.value])
    result.extend(loader.construct_object(item, deep=True) for item in node.value)
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    """Parse one YAML document into LineDict/LineList/scalars; raises yaml.YAMLError."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a CSafeLoader


def line_of(node: Any, path: Path_) -> tuple[int | None, bool]:
    """The line of the deepest key of `path` present under `node`, and whether all of it was."""
    line: int | None = None
    for part in path:
        if isinstance(node, LineDict) and part in node:
            line, node = node.key_lines[part], node[part]
        elif isinstance(node, LineList) and isinstance(part, int) and 0 <= part < len(node):
            line, node = node.item_lines[part], node[part]
        else:
            return line, False
    return line, True
