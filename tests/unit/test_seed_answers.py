"""The answer-file writer against otopi's own reading rules, and its table of refusals."""

from __future__ import annotations

from typing import Any

import pytest

from builder.errors import InputError
from builder.seed.answers import (
    AnswerSyntaxError,
    parse_answers,
    render_answers,
)
from tests.fixtures.seeds import dhcp_site, static_site


def test_static_site_answers_parse_back_exactly() -> None:
    parsed = parse_answers(render_answers(static_site(), "admin-secret-1"))
    assert parsed == {
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


def test_file_layout_is_init_then_default_one_key_per_line() -> None:
    lines = render_answers(dhcp_site(), "pw").splitlines()
    assert lines[:3] == ["[environment:init]", "DIALOG/autoAcceptDefault=bool:True",
                         "[environment:default]"]
    assert all("=" in line and ":" in line for line in lines[3:])


def test_organization_defaults_to_the_fqdn_domain() -> None:
    parsed = parse_answers(render_answers(dhcp_site(), "pw"))
    assert parsed["OVESETUP_PKI/organization"] == ("str", "dc1.example.com")


def test_no_firewall_manager_turns_firewall_updates_off() -> None:
    site = dhcp_site(engine={"firewall_manager": None})
    parsed = parse_answers(render_answers(site, "pw"))
    assert parsed["OVESETUP_CONFIG/updateFirewall"] == ("bool", False)
    assert parsed["OVESETUP_CONFIG/firewallManager"] == ("none", None)


def test_percent_and_interpolation_syntax_are_escaped() -> None:
    text = render_answers(dhcp_site(), "50% %(fqdn)s %%")
    assert "adminPassword=str:50%% %%(fqdn)s %%%%" in text
    assert parse_answers(text)["OVESETUP_CONFIG/adminPassword"] == ("str", "50% %(fqdn)s %%")


def test_comment_and_delimiter_characters_inside_values_are_kept() -> None:
    password = "#;=:[environment:enforce] ' \" $(reboot) {{ x }} leading"
    parsed = parse_answers(render_answers(dhcp_site(), " " + password))
    assert parsed["OVESETUP_CONFIG/adminPassword"] == ("str", " " + password)


def test_extra_answers_of_every_type_round_trip() -> None:
    extra = {
        "OVESETUP_DB/port": {"type": "int", "value": 5432},
        "OVESETUP_CONFIG/sanWipeAfterDelete": {"type": "bool", "value": False},
        "OVESETUP_PKI/renew": {"type": "none"},
        "OVESETUP_CONFIG/engineHeapMax": {"type": "str", "value": "4096M"},
        "OVESETUP_CONFIG/extraLines": {"type": "multi-str", "value": ["a b", "c%d", "[x]"]},
        "OVESETUP_CONFIG/noLines": {"type": "multi-str", "value": []},
    }
    parsed = parse_answers(render_answers(dhcp_site(extra_answers=extra), "pw"))
    assert parsed["OVESETUP_DB/port"] == ("int", 5432)
    assert parsed["OVESETUP_CONFIG/sanWipeAfterDelete"] == ("bool", False)
    assert parsed["OVESETUP_PKI/renew"] == ("none", None)
    assert parsed["OVESETUP_CONFIG/engineHeapMax"] == ("str", "4096M")
    assert parsed["OVESETUP_CONFIG/extraLines"] == ("multi-str", ["a b", "c%d", "[x]"])
    assert parsed["OVESETUP_CONFIG/noLines"] == ("multi-str", [])


def test_keys_keep_their_case() -> None:
    extra = {"OVESETUP_CONFIG/MixedCase": {"type": "str", "value": "v"}}
    parsed = parse_answers(render_answers(dhcp_site(extra_answers=extra), "pw"))
    assert "OVESETUP_CONFIG/MixedCase" in parsed


def _extra(kind: str, value: Any) -> dict[str, Any]:
    return {"extra_answers": {"OVESETUP_X/y": {"type": kind, "value": value}}}


# (site overrides, admin password, exact message): the seed layer's own refusals.
BAD_ANSWERS = [
    ({}, "line1\nline2",
     "site dc1: admin_password: contains a line break, which the answer file cannot carry"),
    ({}, "carriage\rreturn",
     "site dc1: admin_password: contains a line break, which the answer file cannot carry"),
    ({}, "tab\there", "site dc1: admin_password: contains the control character U+0009"),
    ({}, "trailing ",
     "site dc1: admin_password: ends with whitespace, which engine-setup's parser strips"),
    ({"engine": {"organization": "Org\u2028Two"}}, "pw",
     "site dc1: engine.organization: contains a line break, which the answer file cannot carry"),
    (_extra("str", "bell\x07"), "pw",
     "site dc1: extra_answers.OVESETUP_X/y: contains the control character U+0007"),
    (_extra("multi-str", ["ok", "#comment"]), "pw",
     "site dc1: extra_answers.OVESETUP_X/y: a multi-str item starts with '#' or ';' "
     "(engine-setup would read a comment)"),
    (_extra("multi-str", ["ok", " indented"]), "pw",
     "site dc1: extra_answers.OVESETUP_X/y: a multi-str item is empty or starts with "
     "whitespace (engine-setup strips it)"),
    (_extra("multi-str", ["", "b"]), "pw",
     "site dc1: extra_answers.OVESETUP_X/y: a multi-str item is empty or starts with "
     "whitespace (engine-setup strips it)"),
    ({"extra_answers": {"OVESETUP_CONFIG/fqdn": {"type": "str", "value": "other.example.com"}}},
     "pw", "site dc1: extra_answers.OVESETUP_CONFIG/fqdn: OVESETUP_CONFIG/fqdn is already set "
     "from the inventory field fqdn; change it there"),
    ({"engine": {"configure_grafana": True, "configure_dwh": False}}, "pw",
     "site dc1: engine.configure_grafana: Grafana needs the data warehouse "
     "(set engine.configure_dwh: true)"),
    ({"engine": {"admin_user": "root@internal"}}, "pw",
     "site dc1: engine.admin_user: engine-setup always creates admin@internal; the answer file "
     "cannot name another administrator"),
]


@pytest.mark.parametrize(("overrides", "password", "message"), BAD_ANSWERS)
def test_bad_values_get_one_exact_message(
    overrides: dict[str, Any], password: str, message: str
) -> None:
    with pytest.raises(InputError) as info:
        render_answers(dhcp_site(**overrides), password)
    assert info.value.message == message
    assert info.value.problems == (message,)


def test_messages_never_echo_the_secret() -> None:
    with pytest.raises(InputError) as info:
        render_answers(dhcp_site(), "hunter2\n")
    assert "hunter2" not in info.value.message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[environment:default]\nKEY/a=nosuchtype:1\n", "invalid variable type"),
        ("[environment:default]\nKEY/a=novalue\n", "missing variable type"),
        ("[environment:default]\nKEY/a=str:1\nKEY/a=str:2\n", "already exists"),
        ("KEY/a=str:1\n", "no section headers"),
        ("[environment:other]\nKEY/a=str:1\n", "unknown section"),
        ("[environment:default]\nKEY/a=str:50%\n", "'%' must be followed by"),
    ],
)
def test_parser_is_strict(text: str, fragment: str) -> None:
    with pytest.raises(AnswerSyntaxError, match=fragment):
        parse_answers(text)


def test_otopi_bool_rule_is_reproduced() -> None:
    parsed = parse_answers("[environment:default]\nA/a=bool:0\nA/b=bool:false\nA/c=bool:yes\n")
    # otopi compares with the int 0, so the text "0" reads as True.
    assert parsed == {"A/a": ("bool", True), "A/b": ("bool", False), "A/c": ("bool", True)}

