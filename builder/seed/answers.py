"""The engine-setup answer file: a typed writer and a strict reader for otopi's format.

otopi reads the file with Python's configparser (BasicInterpolation, case-kept keys, `=` or `:`
delimiters, full-line `#`/`;` comments, values stripped, indented lines continue a value), then
splits each value on its first `:` into a type and a text. The writer escapes what that parser
would change (`%`) and refuses what it cannot carry (line breaks, control characters, trailing
whitespace), so a value never alters the file's structure.
"""

from __future__ import annotations

import configparser
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from builder.errors import InputError
from builder.inventory.models import ANSWER_KEY_PATTERN, Site

AnswerType = Literal["str", "bool", "int", "none", "multi-str"]
AnswerValue = str | bool | int | None | tuple[str, ...]
ParsedValue = str | bool | int | None | list[str]

SECTION_INIT = "environment:init"
SECTION_DEFAULT = "environment:default"
KNOWN_SECTIONS = (SECTION_INIT, SECTION_DEFAULT, "environment:override", "environment:enforce")

# otopi's parseTypedValue: only these texts are false for `bool`.
OTOPI_FALSE = ("f", "F", "false", "False")
# What str.splitlines() splits on: a multi-str item holding one of these would become two.
LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
KEY_RE = re.compile(ANSWER_KEY_PATTERN)


class SeedSecrets(Protocol):
    """The resolved secrets of one site (builder.inventory.secrets.SiteSecrets fits)."""

    @property
    def root_password(self) -> str: ...

    @property
    def admin_password(self) -> str: ...


@dataclass(frozen=True)
class Answer:
    """One `KEY=type:value` line, with the inventory field it came from (for messages)."""

    key: str
    type: AnswerType
    value: AnswerValue
    field: str


class AnswerSyntaxError(ValueError):
    """The text is not an answer file otopi would read the way we meant."""


def build_answers(site: Site, admin_password: str) -> dict[str, tuple[Answer, ...]]:
    """The sections and answers hosted-engine's deploy puts in /root/heanswers.conf."""
    init = (Answer("DIALOG/autoAcceptDefault", "bool", True, "(fixed)"),)
    derived = _engine_answers(site, admin_password)
    taken = {answer.key: answer.field for answer in derived}
    extra = tuple(_extra_answers(site, taken))
    return {SECTION_INIT: init, SECTION_DEFAULT: derived + extra}


def render_answers(site: Site, admin_password: str) -> str:
    """The answer file text for `site`; InputError when a value cannot be carried."""
    return write_answers(build_answers(site, admin_password), site_name=site.name)


def _engine_answers(site: Site, admin_password: str) -> tuple[Answer, ...]:
    engine = site.engine
    _check_engine_options(site)
    firewall: AnswerValue = engine.firewall_manager
    return (
        Answer("OVESETUP_CONFIG/fqdn", "str", site.fqdn, "fqdn"),
        Answer("OVESETUP_ENGINE_CONFIG/fqdn", "str", site.fqdn, "fqdn"),
        Answer("OVESETUP_CONFIG/adminPassword", "str", admin_password, "admin_password"),
        Answer("OVESETUP_PKI/organization", "str", engine.organization or site.domain,
               "engine.organization"),
        Answer("OVESETUP_CONFIG/applicationMode", "str", engine.application_mode,
               "engine.application_mode"),
        Answer("OVESETUP_CONFIG/storageType", "str", engine.storage_type, "engine.storage_type"),
        Answer("OVESETUP_CONFIG/updateFirewall", "bool", firewall is not None,
               "engine.firewall_manager"),
        Answer("OVESETUP_CONFIG/firewallManager", "none" if firewall is None else "str",
               firewall, "engine.firewall_manager"),
        Answer("OVESETUP_CONFIG/websocketProxyConfig", "bool", engine.configure_websocket_proxy,
               "engine.configure_websocket_proxy"),
        Answer("OVESETUP_VMCONSOLE_PROXY_CONFIG/vmconsoleProxyConfig", "bool",
               engine.configure_vmconsole_proxy, "engine.configure_vmconsole_proxy"),
        Answer("OVESETUP_DWH_CORE/enable", "bool", engine.configure_dwh, "engine.configure_dwh"),
        Answer("OVESETUP_GRAFANA_CORE/enable", "bool", engine.configure_grafana,
               "engine.configure_grafana"),
    )


def _check_engine_options(site: Site) -> None:
    engine = site.engine
    if engine.configure_grafana and not engine.configure_dwh:
        raise _refused(site.name, "engine.configure_grafana",
                       "Grafana needs the data warehouse (set engine.configure_dwh: true)")
    if engine.admin_user != "admin@internal":
        raise _refused(site.name, "engine.admin_user",
                       "engine-setup always creates admin@internal; the answer file cannot "
                       "name another administrator")


def _extra_answers(site: Site, taken: Mapping[str, str]) -> list[Answer]:
    answers = []
    for key, typed in site.extra_answers.items():
        field = f"extra_answers.{key}"
        if key in taken:
            raise _refused(site.name, field,
                           f"{key} is already set from the inventory field {taken[key]}; "
                           "change it there")
        value = tuple(typed.value) if isinstance(typed.value, list) else typed.value
        answers.append(Answer(key, typed.type, value, field))
    return answers


def write_answers(sections: Mapping[str, Sequence[Answer]], *, site_name: str) -> str:
    """Serialize sections of typed answers; each key appears once in the whole file."""
    lines: list[str] = []
    seen: set[str] = set()
    for section, answers in sections.items():
        if section not in KNOWN_SECTIONS:
            raise _refused(site_name, section, "not an otopi environment section")
        lines.append(f"[{section}]")
        for answer in answers:
            if answer.key in seen:
                raise _refused(site_name, answer.field, f"{answer.key} appears twice")
            seen.add(answer.key)
            lines.append(render_answer(answer, site_name=site_name))
    return "\n".join(lines) + "\n"


def render_answer(answer: Answer, *, site_name: str) -> str:
    """One `KEY=type:value` line (a multi-str continues on indented lines)."""
    if not KEY_RE.fullmatch(answer.key):
        raise _refused(site_name, answer.field, f"{answer.key!r} is not an answer key")
    text = _render_value(answer, site_name)
    return f"{answer.key}={answer.type}:{text}"


def _render_value(answer: Answer, site_name: str) -> str:
    kind, value = answer.type, answer.value
    if kind == "none" and value is None:
        return "None"
    if kind == "bool" and isinstance(value, bool):
        return "True" if value else "False"
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if kind == "str" and isinstance(value, str):
        _check_text(value, site_name, answer.field)
        return value.replace("%", "%%")
    if kind == "multi-str" and isinstance(value, tuple):
        return _render_multi(value, site_name, answer.field)
    raise _refused(site_name, answer.field, f"the value does not fit the answer type {kind}")


def _render_multi(items: tuple[str, ...], site_name: str, field: str) -> str:
    for item in items:
        if not isinstance(item, str):
            raise _refused(site_name, field, "a multi-str value holds a non-string item")
        _check_text(item, site_name, field)
        reason = _multi_item_problem(item)
        if reason:
            raise _refused(site_name, field, reason)
    # Continuation lines are indented; configparser strips the indent and joins with "\n".
    return "\n ".join(item.replace("%", "%%") for item in items)


def _multi_item_problem(item: str) -> str | None:
    if not item or item != item.strip():
        return "a multi-str item is empty or starts with whitespace (engine-setup strips it)"
    if item[0] in "#;":
        return "a multi-str item starts with '#' or ';' (engine-setup would read a comment)"
    return None


def _check_text(text: str, site_name: str, field: str) -> None:
    """Refuse what otopi's parser cannot carry; never echo the text (it may be a secret)."""
    if any(char in LINE_BREAKS for char in text):
        raise _refused(site_name, field, "contains a line break, which the answer file "
                       "cannot carry")
    for char in text:
        category = unicodedata.category(char)
        if category == "Cc":
            raise _refused(site_name, field, f"contains the control character U+{ord(char):04X}")
        if category == "Cs":
            raise _refused(site_name, field, "is not valid Unicode text (lone surrogate)")
    if text != text.rstrip():
        raise _refused(site_name, field, "ends with whitespace, which engine-setup's parser "
                       "strips")


def _refused(site_name: str, field: str, reason: str) -> InputError:
    message = f"site {site_name}: {field}: {reason}"
    return InputError(message, problems=[message])


class _OtopiParser(configparser.ConfigParser):
    """configparser as otopi sets it up: BasicInterpolation and case-kept keys."""

    def optionxform(self, optionstr: str) -> str:
        return optionstr


def parse_answers(text: str) -> dict[str, tuple[str, ParsedValue]]:
    """Read an answer file the way otopi does; refuse anything otopi would read differently.

    Returns key -> (type, value) over all sections (a key may appear only once).
    """
    parser = _OtopiParser(strict=True)
    try:
        parser.read_string(text)
        return _parsed_sections(parser)
    except AnswerSyntaxError:
        raise
    except (configparser.Error, KeyError, ValueError) as exc:
        raise AnswerSyntaxError(str(exc)) from exc


def _parsed_sections(parser: configparser.ConfigParser) -> dict[str, tuple[str, ParsedValue]]:
    result: dict[str, tuple[str, ParsedValue]] = {}
    if parser.defaults():
        raise AnswerSyntaxError("unexpected [DEFAULT] section")
    for section in parser.sections():
        if section not in KNOWN_SECTIONS:
            raise AnswerSyntaxError(f"unknown section [{section}]")
        for key, raw in parser.items(section):
            if key in result:
                raise AnswerSyntaxError(f"{key} appears in two sections")
            result[key] = parse_typed_value(raw)
    return result


def parse_typed_value(raw: str) -> tuple[str, ParsedValue]:
    """otopi's `type:value` rule, typed; unknown or missing types are errors."""
    kind, sep, text = raw.partition(":")
    if not sep:
        raise AnswerSyntaxError(f"missing variable type in {raw!r}")
    if kind == "none":
        return kind, None
    if kind == "bool":
        return kind, text not in OTOPI_FALSE
    if kind == "int":
        return kind, int(text)
    if kind == "str":
        return kind, text
    if kind == "multi-str":
        return kind, text.splitlines()
    raise AnswerSyntaxError(f"invalid variable type {kind!r}")
