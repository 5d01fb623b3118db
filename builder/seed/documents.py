"""YAML documents for cloud-init: one safe emitter, multi-line text as readable literal blocks."""

from __future__ import annotations

from typing import Any

import yaml

from builder.seed.block_yaml import WIDTH, dump_block_yaml

# libyaml's emitter when PyYAML was built with it (it is on Debian and in PyPI wheels).
_BaseDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class SeedDumper(_BaseDumper):  # type: ignore[misc, valid-type]
    """SafeDumper that asks for `|` blocks for multi-line strings.

    The emitter itself falls back to a quoted scalar whenever a literal block could not carry
    the text exactly (trailing spaces, special characters), so this only changes looks.
    """


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


SeedDumper.add_representer(str, _represent_str)


def dump_yaml(data: Any, *, header: str = "") -> str:
    """`header` (e.g. "#cloud-config\\n") then the document, keys in the order given: written
    directly where its text is certain (builder.seed.block_yaml), else by libyaml."""
    body = dump_block_yaml(data)
    return header + (libyaml_dump(data) if body is None else body)


def libyaml_dump(data: Any) -> str:
    """The document as PyYAML's emitter (libyaml's where built with it) writes it."""
    body: str = yaml.dump(
        data, Dumper=SeedDumper, sort_keys=False, default_flow_style=False,
        allow_unicode=True, width=WIDTH,
    )
    return body
