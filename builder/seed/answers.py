"""The engine-setup answer file: a typed writer, and a reader that reads it exactly as otopi does.

otopi reads every `--config-append` file, in order, into ONE configparser.RawConfigParser (no
`%` interpolation, keys case-kept, files opened as UTF-8 text; a file that fails to parse is
logged and skipped, keeping what was read of it), then loads `[environment:default]` (without
replacing what is already set), `[environment:init]`, `[environment:override]` and
`[environment:enforce]` (each replacing), typing every value with `parseTypedValue`.

So values are written raw: a `%` stays one `%`. What that reader cannot carry (builder.inventory.
otopi says exactly what) is refused with one line naming the site and field, never changed.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, TextIO

from builder.errors import InputError
from builder.inventory.models import Site
from builder.inventory.otopi import (
    ANSWER_KEY_RE,
    AUTO_ACCEPT_KEY,
    FALSE_TEXTS,
    SECTION_DEFAULT,
    SECTION_INIT,
    SECTIONS,
    SPLITLINES_BREAKS,
    int_problem,
    multi_str_problem,
    str_problem,
)

if TYPE_CHECKING:
    import configparser

AnswerType = Literal["str", "bool", "int", "none", "multi-str"]
AnswerValue = str | bool | int | None | tuple[str, ...]
ParsedValue = str | bool | int | None | list[str]
Opener = Callable[[], TextIO]
# What splits a line anywhere (str.splitlines()); other renderers refuse these in one-line values.
LINE_BREAKS = SPLITLINES_BREAKS

# The order otopi applies the sections in, and whether each replaces what is already set.
SECTION_ORDER = (("environment:default", False), ("environment:init", True),
                 ("environment:override", True), ("environment:enforce", True))


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
    """An answer file engine-setup would refuse, or (for our own output) read differently."""


def build_answers(site: Site, admin_password: str) -> dict[str, tuple[Answer, ...]]:
    """The sections and answers hosted-engine's deploy puts in /root/heanswers.conf.

    The inventory guarantees the rest (builder.inventory.checks): engine options that fit
    together, extra answers that do not collide with these keys, values otopi can carry.
    """
    init = (Answer(AUTO_ACCEPT_KEY, "bool", True, "(fixed)"),)
    extra = tuple(
        Answer(key, typed.type, tuple(typed.value) if isinstance(typed.value, list)
               else typed.value, f"extra_answers.{key}")
        for key, typed in site.extra_answers.items()
    )
    return {SECTION_INIT: init, SECTION_DEFAULT: _engine_answers(site, admin_password) + extra}


def render_answers(site: Site, admin_password: str) -> str:
    """The answer file text for `site`; InputError when a value cannot be carried."""
    return write_answers(build_answers(site, admin_password), site_name=site.name)


def _engine_answers(site: Site, admin_password: str) -> tuple[Answer, ...]:
    engine = site.engine
    firewall: AnswerValue = engine.firewall_manager
    organization = site.domain if engine.organization is None else engine.organization
    return (
        Answer("OVESETUP_CONFIG/fqdn", "str", site.fqdn, "fqdn"),
        Answer("OVESETUP_ENGINE_CONFIG/fqdn", "str", site.fqdn, "fqdn"),
        Answer("OVESETUP_CONFIG/adminPassword", "str", admin_password, "admin_password"),
        Answer("OVESETUP_PKI/organization", "str", organization, "engine.organization"),
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


def write_answers(sections: Mapping[str, Sequence[Answer]], *, site_name: str) -> str:
    """Serialize sections of typed answers; each key appears once in the whole file."""
    lines: list[str] = []
    seen: set[str] = set()
    for section, answers in sections.items():
        if section not in SECTIONS:
            raise _refused(site_name, section, "not an otopi environment section")
        lines.append(f"[{section}]")
        for answer in answers:
            if answer.key in seen:
                raise _refused(site_name, answer.field, f"{answer.key} appears twice")
            seen.add(answer.key)
            lines.append(render_answer(answer, site_name=site_name))
    return "\n".join(lines) + "\n"


def render_answer(answer: Answer, *, site_name: str) -> str:
    """One `KEY=type:value` line (a multi-str continues on indented lines), written raw."""
    if not ANSWER_KEY_RE.fullmatch(answer.key):
        raise _refused(site_name, answer.field, f"{answer.key!r} is not an answer key")
    text, problem = _render_value(answer)
    if problem is not None:
        raise _refused(site_name, answer.field, problem)
    return f"{answer.key}={answer.type}:{text}"


def _render_value(answer: Answer) -> tuple[str, str | None]:
    """The text after `type:`, or why it cannot be written (never quoting the value)."""
    kind, value = answer.type, answer.value
    if kind == "none" and value is None:
        return "None", None
    if kind == "bool" and isinstance(value, bool):
        return str(value), None
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        problem = int_problem(value)
        return ("", problem) if problem else (str(value), None)
    if kind == "str" and isinstance(value, str):
        return value, str_problem(value)
    if kind == "multi-str" and isinstance(value, tuple) and \
            all(isinstance(item, str) for item in value):
        # Continuation lines are indented; configparser strips the indent and joins with "\n".
        return "\n ".join(value), multi_str_problem(value)
    return "", f"the value does not fit the answer type {kind}"


def _refused(site_name: str, field: str, reason: str) -> InputError:
    message = f"site {site_name}: {field}: {reason}"
    return InputError(message, problems=[message])


# ----- reading, as otopi does -----


@dataclass(frozen=True)
class OtopiRead:
    """What engine-setup's environment holds after reading the answer files.

    `environment` and `types` follow otopi's section precedence (enforce > override > init >
    default; later files override earlier ones key by key); `sections` is the merged parser's
    raw text per section (unknown sections too, which otopi ignores); `failed` lists the files
    otopi would log and skip (their lines before the error still count, as in otopi).
    """

    environment: dict[str, ParsedValue]
    types: dict[str, str]
    sections: dict[str, dict[str, str]]
    read: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = field(default=())


def read_answer_files(paths: Sequence[Path]) -> OtopiRead:
    """Read `--config-append` files exactly as otopi does (see the module's docstring)."""
    return _read((str(path), _open_utf8(path)) for path in paths)


def parse_answers(text: str, name: str = "<answers>") -> OtopiRead:
    """One answer file's text, read as otopi reads a file (universal newlines included)."""
    return _read([(name, _text_opener(text))])


def check_answers(text: str) -> OtopiRead:
    """Read text WE wrote and refuse anything otopi would skip, ignore or read ambiguously."""
    if "[DEFAULT]" in text.splitlines():
        raise AnswerSyntaxError("a [DEFAULT] section, whose keys engine-setup reads everywhere")
    parser, _read_names, failed = _merge([("<answers>", _text_opener(text))])
    if failed:
        raise AnswerSyntaxError(f"engine-setup would skip the file: {failed[0][1]}")
    unknown = [name for name in parser.sections() if name not in SECTIONS]
    if unknown:
        raise AnswerSyntaxError(f"unknown section [{unknown[0]}], which engine-setup ignores")
    seen: dict[str, str] = {}
    for section in parser.sections():
        for key in parser.options(section):
            if key in seen:
                raise AnswerSyntaxError(f"{key} is in both [{seen[key]}] and [{section}]")
            seen[key] = section
    return parse_answers(text)


def _open_utf8(path: Path) -> Opener:
    return lambda: path.open(encoding="utf-8")


def _text_opener(text: str) -> Opener:
    return lambda: io.StringIO(text, newline=None)  # universal newlines, as a file opened "r"


def _read(sources: Iterable[tuple[str, Opener]]) -> OtopiRead:
    parser, read, failed = _merge(sources)
    environment, types = _environment(parser)
    sections = {name: dict(parser.items(name, raw=True)) for name in parser.sections()}
    return OtopiRead(environment, types, sections, read, failed)


def _merge(sources: Iterable[tuple[str, Opener]]) -> tuple[configparser.RawConfigParser,
                                                           tuple[str, ...],
                                                           tuple[tuple[str, str], ...]]:
    """One parser over every source, in order; a source that fails is noted, not fatal."""
    import configparser  # noqa: PLC0415  (only reading needs it, not the seed's writing)

    parser = configparser.RawConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    read: list[str] = []
    failed: list[tuple[str, str]] = []
    for name, opener in sources:
        try:
            with opener() as handle:
                parser.read_file(handle, source=name)
            read.append(name)
        except Exception as exc:
            failed.append((name, str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
    return parser, tuple(read), tuple(failed)


def _environment(parser: configparser.RawConfigParser) -> tuple[dict[str, ParsedValue],
                                                                 dict[str, str]]:
    environment: dict[str, ParsedValue] = {}
    types: dict[str, str] = {}
    for section, replaces in SECTION_ORDER:
        if not parser.has_section(section):
            continue
        for key, raw in parser.items(section, raw=True):
            try:
                kind, value = parse_typed_value(raw)
            except Exception as exc:
                raise AnswerSyntaxError(f"Cannot parse configuration file key {key} at section "
                                        f"{section}: {exc}") from None
            if replaces or key not in environment:
                environment[key], types[key] = value, kind
    return environment, types


def parse_typed_value(raw: str) -> tuple[str, ParsedValue]:
    """otopi's parseTypedValue, returning the type name too (its errors, its messages).

    `raw` is what configparser holds, which is a list of lines, not a string, when a file
    stopped on an error and no later file was read: otopi then fails on `.split`, as here.
    """
    try:
        kind, text = raw.split(":", 1)
    except ValueError:
        raise ValueError("Missing variable type") from None
    if kind == "none":
        return kind, None
    if kind == "bool":
        return kind, text not in FALSE_TEXTS
    if kind == "int":
        return kind, int(text)
    if kind == "str":
        return kind, text
    if kind == "multi-str":
        return kind, text.splitlines()
    raise KeyError(f"Invalid variable type {kind}")
