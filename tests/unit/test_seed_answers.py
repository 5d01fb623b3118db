"""The answer-file writer against otopi's own reading rules, and its table of refusals.

The reader under test (builder.seed.answers) is checked against plain configparser used the
way otopi's config plugin uses it, and the carriage rules (builder.inventory.otopi) are proven
by measurement, not assumed.
"""

from __future__ import annotations

import configparser
import io
from pathlib import Path
from typing import Any

import pytest

from builder.errors import InputError
from builder.inventory.otopi import DERIVED_ANSWER_KEYS, str_problem
from builder.seed.answers import (
    Answer,
    AnswerSyntaxError,
    build_answers,
    check_answers,
    parse_answers,
    read_answer_files,
    render_answers,
    write_answers,
)
from tests.fixtures.seeds import dhcp_site, static_site


def typed(text: str) -> dict[str, tuple[str, Any]]:
    read = check_answers(text)
    return {key: (read.types[key], value) for key, value in read.environment.items()}


def test_static_site_answers_read_back_exactly() -> None:
    assert typed(render_answers(static_site(), "admin-secret-1")) == {
        "DIALOG/autoAcceptDefault": ("bool", True),
        "OVESETUP_CONFIG/fqdn": ("str", "engine.dc2.example.net"),
        "OVESETUP_ENGINE_CONFIG/fqdn": ("str", "engine.dc2.example.net"),
        "OVESETUP_CONFIG/adminPassword": ("str", "admin-secret-1"),
        "OVESETUP_PKI/organization": ("str", "Example DC2"),
        "OVESETUP_CONFIG/applicationMode": ("str", "both"),
        "OVESETUP_CONFIG/storageType": ("str", "nfs"),
        "OVESETUP_CONFIG/updateFirewall": ("bool", True),
        "OVESETUP_CONFIG/firewallManager": ("str", "firewalld"),
        "OVESETUP_CONFIG/websocketProxyConfig": ("bool", True),
        "OVESETUP_VMCONSOLE_PROXY_CONFIG/vmconsoleProxyConfig": ("bool", True),
        "OVESETUP_DWH_CORE/enable": ("bool", True),
        "OVESETUP_GRAFANA_CORE/enable": ("bool", False),
    }


def test_derived_keys_are_the_ones_the_inventory_protects() -> None:
    """builder.inventory.checks refuses extra answers on exactly these keys."""
    for site in (dhcp_site(), static_site(), dhcp_site(engine={"firewall_manager": None})):
        sections = build_answers(site, "pw")
        derived = {a.key: a.field for answers in sections.values() for a in answers}
        assert derived.keys() == DERIVED_ANSWER_KEYS.keys()
        assert all(derived[key] == field for key, field in DERIVED_ANSWER_KEYS.items()
                   if key != "DIALOG/autoAcceptDefault")


def test_file_layout_is_init_then_default_one_key_per_line() -> None:
    lines = render_answers(dhcp_site(), "pw").splitlines()
    assert lines[:3] == ["[environment:init]", "DIALOG/autoAcceptDefault=bool:True",
                         "[environment:default]"]
    assert all("=" in line and ":" in line for line in lines[3:])


def test_organization_defaults_to_the_fqdn_domain() -> None:
    assert typed(render_answers(dhcp_site(), "pw"))["OVESETUP_PKI/organization"] == \
        ("str", "dc1.example.com")


def test_no_firewall_manager_turns_firewall_updates_off() -> None:
    parsed = typed(render_answers(dhcp_site(engine={"firewall_manager": None}), "pw"))
    assert parsed["OVESETUP_CONFIG/updateFirewall"] == ("bool", False)
    assert parsed["OVESETUP_CONFIG/firewallManager"] == ("none", None)


def test_percent_is_written_raw_and_read_back_as_one_percent() -> None:
    """otopi reads with RawConfigParser: `%%` would reach engine-setup as two characters."""
    text = render_answers(dhcp_site(), "50% %(fqdn)s %%")
    assert "OVESETUP_CONFIG/adminPassword=str:50% %(fqdn)s %%\n" in text
    assert typed(text)["OVESETUP_CONFIG/adminPassword"] == ("str", "50% %(fqdn)s %%")


@pytest.mark.parametrize("password", [
    " leading blank", "#;=:[environment:enforce] ' \" $(reboot) {{ x }} ${x}",
    "tab\there", "inner\u2028line separator", "nul\x00byte", "vt\x0bff\x0cend", "é中😀",
])
def test_what_otopi_carries_is_carried(password: str) -> None:
    assert typed(render_answers(dhcp_site(), password))["OVESETUP_CONFIG/adminPassword"] == \
        ("str", password)


def test_extra_answers_of_every_type_round_trip() -> None:
    extra = {
        "OVESETUP_DB/port": {"type": "int", "value": 5432},
        "OVESETUP_CONFIG/sanWipeAfterDelete": {"type": "bool", "value": False},
        "OVESETUP_PKI/renew": {"type": "none"},
        "OVESETUP_CONFIG/engineHeapMax": {"type": "str", "value": "4096M"},
        "OVESETUP_CONFIG/extraLines": {"type": "multi-str",
                                       "value": [" first keeps its blank", "c%d", "", "[x]"]},
        "OVESETUP_CONFIG/noLines": {"type": "multi-str", "value": []},
        "QUESTION/1/OVESETUP_IGNORE_SNAPSHOTS_WITH_OLD_COMPAT_LEVEL": {"type": "str",
                                                                       "value": "yes"},
    }
    parsed = typed(render_answers(dhcp_site(extra_answers=extra), "pw"))
    assert parsed["OVESETUP_DB/port"] == ("int", 5432)
    assert parsed["OVESETUP_CONFIG/sanWipeAfterDelete"] == ("bool", False)
    assert parsed["OVESETUP_PKI/renew"] == ("none", None)
    assert parsed["OVESETUP_CONFIG/engineHeapMax"] == ("str", "4096M")
    assert parsed["OVESETUP_CONFIG/extraLines"] == \
        ("multi-str", [" first keeps its blank", "c%d", "", "[x]"])
    assert parsed["OVESETUP_CONFIG/noLines"] == ("multi-str", [])
    assert parsed["QUESTION/1/OVESETUP_IGNORE_SNAPSHOTS_WITH_OLD_COMPAT_LEVEL"] == ("str", "yes")


def test_keys_keep_their_case() -> None:
    extra = {"OVESETUP_CONFIG/MixedCase": {"type": "str", "value": "v"}}
    assert "OVESETUP_CONFIG/MixedCase" in typed(render_answers(dhcp_site(extra_answers=extra),
                                                               "pw"))


def answer(kind: str, value: Any, key: str = "OVESETUP_X/y") -> dict[str, tuple[Answer, ...]]:
    return {"environment:default": (Answer(key, kind, value, "extra_answers." + key),)}  # type: ignore[arg-type]


# (sections or an admin password, exact message): what the writer itself refuses. Values that
# come from the inventory were refused by `inventory check` before (tests/unit/
# test_inventory_problems.py); the writer still refuses what otopi cannot carry, since the
# admin password is only known at seed time.
BAD_ANSWERS: list[tuple[Any, str]] = [
    ("line1\nline2",
     "site dc1: admin_password: contains a line break, which the answer file cannot carry"),
    ("carriage\rreturn",
     "site dc1: admin_password: contains a line break, which the answer file cannot carry"),
    ("trailing ",
     "site dc1: admin_password: ends with whitespace, which engine-setup's parser strips"),
    ("trailing\u3000",
     "site dc1: admin_password: ends with whitespace, which engine-setup's parser strips"),
    ("lone \ud800 surrogate",
     "site dc1: admin_password: is not valid Unicode text (a lone surrogate)"),
    (answer("multi-str", ("ok", "#comment")),
     "site dc1: extra_answers.OVESETUP_X/y: item 1: starts with '#', which engine-setup's "
     "parser reads as a comment line"),
    (answer("multi-str", ("ok", " indented")),
     "site dc1: extra_answers.OVESETUP_X/y: item 1: starts with whitespace, which "
     "engine-setup's parser strips"),
    (answer("multi-str", ("a\u2028b",)),
     "site dc1: extra_answers.OVESETUP_X/y: item 0: contains a line break, which splits the "
     "item in two"),
    (answer("multi-str", ("a", "")),
     "site dc1: extra_answers.OVESETUP_X/y: item 1: empty at the end, where engine-setup's "
     "parser drops it"),
    (answer("int", 10**4300),
     "site dc1: extra_answers.OVESETUP_X/y: has more than 4300 digits, which engine-setup "
     "cannot parse"),
    (answer("int", True),
     "site dc1: extra_answers.OVESETUP_X/y: the value does not fit the answer type int"),
    (answer("str", "v", key="OVESETUP_X/y=z"),
     "site dc1: extra_answers.OVESETUP_X/y=z: 'OVESETUP_X/y=z' is not an answer key"),
    ({"environment:default": (Answer("A/b", "str", "1", "one"), Answer("A/b", "str", "2", "two"))},
     "site dc1: two: A/b appears twice"),
    ({"environment:other": ()}, "site dc1: environment:other: not an otopi environment section"),
]


@pytest.mark.parametrize(("case", "message"), BAD_ANSWERS)
def test_bad_values_get_one_exact_message(case: Any, message: str) -> None:
    with pytest.raises(InputError) as info:
        if isinstance(case, str):
            render_answers(dhcp_site(), case)
        else:
            write_answers(case, site_name="dc1")
    assert info.value.message == message
    assert info.value.problems == (message,)


def test_messages_never_echo_the_secret() -> None:
    with pytest.raises(InputError) as info:
        render_answers(dhcp_site(), "hunter2\n")
    assert "hunter2" not in info.value.message


# ----- the reader: otopi's rules -----


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_files_merge_in_order_key_by_key(tmp_path: Path) -> None:
    first = write(tmp_path, "a.conf", "[environment:default]\nA/x=str:one\nA/y=int:1\n")
    second = write(tmp_path, "b.conf", "[environment:default]\nA/x=str:two\n")
    read = read_answer_files([first, second])
    assert read.environment == {"A/x": "two", "A/y": 1}
    assert read.read == (str(first), str(second))


def test_sections_apply_in_otopi_order(tmp_path: Path) -> None:
    text = ("[environment:enforce]\nA/e=str:enforce\n[environment:override]\nA/e=str:override\n"
            "A/o=str:override\n[environment:init]\nA/e=str:init\nA/o=str:init\nA/i=str:init\n"
            "[environment:default]\nA/e=str:default\nA/o=str:default\nA/i=str:default\n"
            "A/d=str:default\n")
    read = read_answer_files([write(tmp_path, "a.conf", text)])
    assert read.environment == {"A/e": "enforce", "A/o": "override", "A/i": "init",
                                "A/d": "default"}


def test_unknown_sections_are_ignored_and_defaults_reach_every_section(tmp_path: Path) -> None:
    text = "[DEFAULT]\nA/all=str:everywhere\n[environment:other]\nA/x=str:1\n" \
           "[environment:default]\nA/y=str:2\n"
    read = read_answer_files([write(tmp_path, "a.conf", text)])
    assert read.environment == {"A/all": "everywhere", "A/y": "2"}
    assert "environment:other" in read.sections


def test_a_file_that_fails_is_skipped_but_keeps_what_came_before(tmp_path: Path) -> None:
    """otopi logs the error and goes on; configparser keeps the lines read before it."""
    bad = write(tmp_path, "a.conf", "[environment:default]\nA/y=str:kept\nA/y=str:dup\n")
    bom = tmp_path / "b.conf"
    bom.write_bytes("\ufeff[environment:default]\nA/z=str:never\n".encode())
    good = write(tmp_path, "c.conf", "[environment:default]\nA/x=str:good\n")
    read = read_answer_files([bad, bom, good])
    assert read.environment == {"A/x": "good", "A/y": "kept"}
    assert [name for name, _ in read.failed] == [str(bad), str(bom)]
    assert read.read == (str(good),)


def test_a_failed_last_file_leaves_values_otopi_cannot_type(tmp_path: Path) -> None:
    """configparser joins a value's lines only at the end of a read that did not stop on an
    error: with no later file, otopi gets a list and engine-setup stops."""
    bad = write(tmp_path, "a.conf", "[environment:default]\nA/y=str:kept\nA/y=str:dup\n")
    with pytest.raises(AnswerSyntaxError) as info:
        read_answer_files([bad])
    assert str(info.value) == ("Cannot parse configuration file key A/y at section "
                               "environment:default: 'list' object has no attribute 'split'")


def test_otopi_bool_rule_is_reproduced() -> None:
    read = parse_answers("[environment:default]\nA/a=bool:0\nA/b=bool:false\nA/c=bool:yes\n"
                         "A/d=bool:F\nA/e=bool:\n")
    # otopi compares with the int 0, so the text "0" reads as True.
    assert read.environment == {"A/a": True, "A/b": False, "A/c": True, "A/d": False,
                                "A/e": True}


@pytest.mark.parametrize(("text", "message"), [
    ("[environment:default]\nKEY/a=nosuchtype:1\n",
     "Cannot parse configuration file key KEY/a at section environment:default: "
     "'Invalid variable type nosuchtype'"),
    ("[environment:default]\nKEY/a=novalue\n",
     "Cannot parse configuration file key KEY/a at section environment:default: "
     "Missing variable type"),
    ("[environment:init]\nKEY/a=int:five\n",
     "Cannot parse configuration file key KEY/a at section environment:init: invalid literal "
     "for int() with base 10: 'five'"),
])
def test_values_otopi_cannot_type_stop_the_read(text: str, message: str) -> None:
    with pytest.raises(AnswerSyntaxError) as info:
        parse_answers(text)
    assert str(info.value) == message


@pytest.mark.parametrize(("text", "fragment"), [
    ("[environment:default]\nKEY/a=str:1\nKEY/a=str:2\n", "would skip the file"),
    ("KEY/a=str:1\n", "would skip the file"),
    ("[environment:other]\nKEY/a=str:1\n", "unknown section"),
    ("[environment:default]\nKEY/a=str:1\n[environment:init]\nKEY/a=str:1\n", "in both"),
    ("[DEFAULT]\nKEY/a=str:1\n", "[DEFAULT]"),
])
def test_our_own_output_is_checked_strictly(text: str, fragment: str) -> None:
    with pytest.raises(AnswerSyntaxError, match=fragment.replace("[", r"\[")):
        check_answers(text)


def test_text_and_file_reading_agree(tmp_path: Path) -> None:
    text = "[environment:default]\r\nA/crlf=str:x\rA/cr=str:y\nA/m=multi-str:a\n b\n\n c\n"
    assert parse_answers(text).environment == \
        read_answer_files([write(tmp_path, "a.conf", text)]).environment == \
        {"A/crlf": "x", "A/cr": "y", "A/m": ["a", "b", "", "c"]}


def otopi_values(text: str) -> dict[str, str]:
    """configparser set up exactly as otopi's config plugin, nothing of ours in between."""
    parser = configparser.RawConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_file(io.StringIO(text, newline=None))
    return dict(parser.items("environment:default"))


def test_str_rule_is_exact_over_the_basic_multilingual_plane() -> None:
    """Every BMP character at the start, middle and end of a str value: str_problem refuses it
    exactly when otopi's reader would not give it back unchanged."""
    chars = [chr(code) for code in range(0x10000) if not 0xD800 <= code <= 0xDFFF]
    for shape in ("{}x", "x{}x", "x{}"):
        texts = {f"K/c{ord(char)}": shape.format(char) for char in chars}
        kept = {key: text for key, text in texts.items() if str_problem(text) is None}
        lines = "".join(f"{key}=str:{text}\n" for key, text in kept.items())
        read = otopi_values("[environment:default]\n" + lines)
        assert {key: read.get(key) for key in kept} == {k: "str:" + t for k, t in kept.items()}
        for key in texts.keys() - kept.keys():
            assert not carried(key, texts[key]), repr(texts[key])


def carried(key: str, text: str) -> bool:
    try:
        return otopi_values(f"[environment:default]\n{key}=str:{text}\n").get(key) == \
            "str:" + text
    except configparser.Error:  # otopi would skip the whole file
        return False
