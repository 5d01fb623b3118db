"""The seed's YAML documents written directly, byte for byte as libyaml's emitter writes them
(`builder.seed.documents`' dumper: block style, keys in order, indent 2, width 120, `|` for
multi-line text), for the shapes and scalars whose text is certain; None for anything else, which
libyaml then writes.

Certain here: non-empty mappings with short plain keys, non-empty lists (not nested directly in a
list), `true`/`false`/`null`, ints, and strings that are plain or single-quoted on one line
(letters, digits and `_/$.@=+%~:-`, single spaces, no `: `, not past the width) or literal blocks
of printable ASCII lines without trailing blanks, ending in at most one line break. Whether a
plain string reads back as a string is asked of PyYAML's own resolver, as libyaml's serializer
asks it. The same object twice (which libyaml writes as an anchor and an alias) is not certain.
`tests/unit/test_block_yaml.py` compares the two writers on the seeds' documents and on generated
ones (bench/fuzz_yaml.py runs the long campaign).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import yaml

WIDTH = 120
INDENT = 2
MAX_KEY = 64  # libyaml writes a key over 128 characters as a complex key (`? key`)
_STR_TAG = "tag:yaml.org,2002:str"
_PLAIN = re.compile(r"[A-Za-z0-9_/$.][A-Za-z0-9_/$.@=+%~:-]*(?: [A-Za-z0-9_/$.@=+%~:-]+)*")
_BLOCK_LINE = re.compile(r"(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?")
_LEAVES = {True: "true", False: "false", None: "null"}
# The resolver libyaml's serializer asks whether a plain scalar reads back as a string.
_RESOLVER = yaml.resolver.Resolver()


class _Uncertain(Exception):
    """The document holds something this writer does not know libyaml's text for."""


def dump_block_yaml(data: Any) -> str | None:
    """The YAML text of `data` as libyaml writes it, or None when it is not certain."""
    out: list[str] = []
    try:
        if type(data) is dict and data:
            _mapping(data, 0, "", out, set())
        elif type(data) is list and data:
            _sequence(data, 0, out, set())
        else:
            return None
    except _Uncertain:
        return None
    return "".join(out)


def _mapping(data: dict[Any, Any], indent: int, first: str, out: list[str],
             seen: set[int]) -> None:
    _once(data, seen)
    prefix = first
    for key, value in data.items():
        if type(key) is not str or " " in key or len(key) > MAX_KEY:
            raise _Uncertain
        _entry(prefix + scalar_text(key) + ":", value, indent, out, seen)
        prefix = " " * indent


def _entry(head: str, value: Any, indent: int, out: list[str], seen: set[int]) -> None:
    kind = type(value)
    if kind is dict and value:
        out.append(head + "\n")
        inner = indent + INDENT
        _mapping(value, inner, " " * inner, out, seen)
    elif kind is list and value:
        out.append(head + "\n")
        _sequence(value, indent, out, seen)  # a list under a key is not indented
    elif kind is dict or kind is list:
        out.append(head + (" {}\n" if kind is dict else " []\n"))
    elif kind is str and "\n" in value:
        out.append(head + " " + _literal(value, indent + INDENT))
    else:
        out.append(head + " " + _leaf(value, len(head) + 1) + "\n")


def _sequence(items: list[Any], indent: int, out: list[str], seen: set[int]) -> None:
    _once(items, seen)
    dash = " " * indent + "- "
    for item in items:
        kind = type(item)
        if kind is dict and item:
            _mapping(item, indent + INDENT, dash, out, seen)
        elif kind is dict or kind is list:
            raise _Uncertain
        elif kind is str and "\n" in item:
            out.append(dash + _literal(item, indent + INDENT))
        else:
            out.append(dash + _leaf(item, len(dash)) + "\n")


def _once(container: dict[Any, Any] | list[Any], seen: set[int]) -> None:
    if id(container) in seen:
        raise _Uncertain
    seen.add(id(container))


def _leaf(value: Any, column: int) -> str:
    kind = type(value)
    if kind is bool or value is None:
        return _LEAVES[value]
    if kind is int:
        return str(value)
    if kind is not str:
        raise _Uncertain
    text = scalar_text(value)
    # libyaml breaks a line at a space past the width.
    if column + len(text) > WIDTH and " " in text:
        raise _Uncertain
    return text


@functools.lru_cache(maxsize=4096)
def scalar_text(value: str) -> str:
    """A one-line string as libyaml writes it: plain, or single-quoted where plain would read
    back as another type (`'0644'`, `'yes'`, a MAC address); _Uncertain for the rest."""
    if not value:
        return "''"
    if not _PLAIN.fullmatch(value) or value.startswith("...") or ": " in value \
            or value.endswith(":"):
        raise _Uncertain
    if _plain_reads_as_string(value):
        return value
    return "'" + value + "'"


def _plain_reads_as_string(value: str) -> bool:
    resolved: str = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    return resolved == _STR_TAG


def _literal(text: str, indent: int) -> str:
    """`|` (or `|-` without a final line break) and the lines, `indent` deep."""
    if text[0] in " \n" or text.endswith("\n\n"):
        raise _Uncertain  # an indentation indicator or `|+` would be needed
    lines = text.split("\n")
    header = "|\n"
    if lines[-1]:
        header = "|-\n"
    else:
        lines.pop()
    pad = " " * indent
    body = []
    for line in lines:
        if not _BLOCK_LINE.fullmatch(line):
            raise _Uncertain
        body.append(pad + line + "\n" if line else "\n")
    return header + "".join(body)
