"""What otopi's answer-file reader can carry: the rules both the inventory and the writer apply.

otopi (engine-setup's framework) reads `--config-append` files with configparser's
RawConfigParser, opened as UTF-8 text (universal newlines), then splits each value on its first
`:` into a type and a text (`parseTypedValue`). Measured over every Unicode character with that
exact reader (tests/unit/test_seed_answers.py keeps the proof), a value written after `TYPE:`
comes back unchanged except that:
- `\\n` and `\\r` end the line (the file reader splits on them);
- trailing whitespace (str.isspace) is stripped; leading whitespace survives (`TYPE:` precedes
  it);
- a `multi-str` value is split with str.splitlines(), so its items also break on \\v, \\f,
  \\x1c-\\x1e, \\x85, U+2028 and U+2029; its continuation lines are stripped on both sides, a
  continuation line starting with `#` or `;` is a comment, and trailing empty items are dropped.
Everything else (tabs, `%`, `#`, `;`, quotes, `${x}`, NUL, any other Unicode) is carried as is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

SECTION_INIT = "environment:init"
SECTION_DEFAULT = "environment:default"
SECTIONS = (SECTION_INIT, SECTION_DEFAULT, "environment:override", "environment:enforce")
TYPES = ("str", "bool", "int", "none", "multi-str")

# `SECTION/name`, or otopi's answer to a dialog question: `QUESTION/<occurrence>/<name>`.
ANSWER_KEY_PATTERN = (
    r"^(?:(?!QUESTION/)[A-Za-z][A-Za-z0-9_]*/[A-Za-z][A-Za-z0-9_]*"
    r"|QUESTION/[1-9][0-9]{0,3}/[A-Za-z][A-Za-z0-9_]*)$"
)
ANSWER_KEY_RE = re.compile(ANSWER_KEY_PATTERN)

# What the file reader ends a line on, and what str.splitlines() splits a multi-str on.
FILE_LINE_BREAKS = frozenset("\n\r")
SPLITLINES_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
# otopi's parseTypedValue: only these texts are false for `bool` (the text "0" is True).
FALSE_TEXTS = ("f", "F", "false", "False")
# otopi parses `int:` with int(); Python refuses texts of more than 4,300 digits.
MAX_INT_DIGITS = 4300
INT_LIMIT = 10**MAX_INT_DIGITS

# The answers the seed derives from inventory fields (key -> field), plus the fixed one.
AUTO_ACCEPT_KEY = "DIALOG/autoAcceptDefault"
DERIVED_ANSWER_KEYS: dict[str, str] = {
    AUTO_ACCEPT_KEY: "(fixed: unattended run)",
    "OVESETUP_CONFIG/fqdn": "fqdn",
    "OVESETUP_ENGINE_CONFIG/fqdn": "fqdn",
    "OVESETUP_CONFIG/adminPassword": "admin_password",
    "OVESETUP_PKI/organization": "engine.organization",
    "OVESETUP_CONFIG/applicationMode": "engine.application_mode",
    "OVESETUP_CONFIG/storageType": "engine.storage_type",
    "OVESETUP_CONFIG/updateFirewall": "engine.firewall_manager",
    "OVESETUP_CONFIG/firewallManager": "engine.firewall_manager",
    "OVESETUP_CONFIG/websocketProxyConfig": "engine.configure_websocket_proxy",
    "OVESETUP_VMCONSOLE_PROXY_CONFIG/vmconsoleProxyConfig": "engine.configure_vmconsole_proxy",
    "OVESETUP_DWH_CORE/enable": "engine.configure_dwh",
    "OVESETUP_GRAFANA_CORE/enable": "engine.configure_grafana",
}


def str_problem(text: str) -> str | None:
    """Why `KEY=str:text` would not reach engine-setup as `text`; None when it would."""
    if not FILE_LINE_BREAKS.isdisjoint(text):
        return "contains a line break, which the answer file cannot carry"
    if text[-1:].isspace():
        return "ends with whitespace, which engine-setup's parser strips"
    return _encoding_problem(text)


def multi_str_problem(items: Sequence[str]) -> str | None:
    """Why a multi-str of `items` would not reach engine-setup as these items."""
    for index, item in enumerate(items):
        problem = _item_problem(item, first=index == 0)
        if problem is not None:
            return f"item {index}: {problem}"
    if items and items[-1] == "":
        return f"item {len(items) - 1}: empty at the end, where engine-setup's parser drops it"
    return None


def _item_problem(item: str, *, first: bool) -> str | None:
    if not SPLITLINES_BREAKS.isdisjoint(item):
        return "contains a line break, which splits the item in two"
    if item[-1:].isspace():
        return "ends with whitespace, which engine-setup's parser strips"
    if not first and item[:1].isspace():
        return "starts with whitespace, which engine-setup's parser strips"
    if not first and item[:1] in ("#", ";"):
        return f"starts with {item[0]!r}, which engine-setup's parser reads as a comment line"
    return _encoding_problem(item)


def int_problem(value: int) -> str | None:
    if abs(value) >= INT_LIMIT:
        return f"has more than {MAX_INT_DIGITS} digits, which engine-setup cannot parse"
    return None


def _encoding_problem(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (a lone surrogate)"
    return None
