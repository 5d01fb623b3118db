"""Property tests: any value is either refused, or comes back exactly from every output it enters.

Refused means an InputError from the seed layer, or the inventory model's own validation error
(which the inventory loader turns into an InputError line); nothing else may happen.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from builder.errors import InputError
from builder.seed.answers import parse_answers, render_answers
from builder.seed.build import RenderedSeed, render_seed
from tests.fixtures.seeds import SSH_KEY, Secrets, dhcp_site, static_site

# Characters that break naive YAML, INI, shell, Jinja or line-based formats.
NASTY = list("\n\r\t\x00\x0b\x0c\x85\u2028 #%;:={}[]$()`'\"\\|>&*!?,-@ ")
TEXTS = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(NASTY + list("aZ09")), max_size=30),
    st.sampled_from(["{{ x }}", "{% if %}", "$(reboot)", "; rm -rf /", "%(fqdn)s", "%%",
                     "- item", "key: value", "!!python/object:os.system", "*anchor", "---",
                     "#cloud-config", "[environment:enforce]", "yes", "No", "~", "null",
                     "0o777", "1e3", " leading", "trailing ", "", "\ufeffbom"]),
)
SETTINGS = settings(max_examples=150, deadline=None)


def user_data(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def answers_in(seed: RenderedSeed) -> str:
    """The answer file as the guest receives it: its own file on the seed ISO."""
    return dict(seed.iso_files())["heanswers.conf"].decode("utf-8")


@SETTINGS
@given(TEXTS)
def test_admin_password_survives_answers_and_user_data(value: str) -> None:
    try:
        seed = render_seed(dhcp_site(), Secrets(admin_password=value))
    except InputError:
        return
    answers = answers_in(seed)
    assert answers == seed.answers
    assert parse_answers(answers)["OVESETUP_CONFIG/adminPassword"] == ("str", value)


@SETTINGS
@given(TEXTS)
def test_organization_round_trips_or_is_refused(value: str) -> None:
    try:
        text = render_answers(dhcp_site(engine={"organization": value or None}), "pw")
    except InputError:
        return
    expected = value or "dc1.example.com"
    assert parse_answers(text)["OVESETUP_PKI/organization"] == ("str", expected)


@SETTINGS
@given(st.lists(TEXTS, max_size=4), TEXTS)
def test_extra_answers_round_trip_or_are_refused(items: list[str], text: str) -> None:
    extra = {"OVESETUP_A/lines": {"type": "multi-str", "value": items},
             "OVESETUP_A/text": {"type": "str", "value": text}}
    try:
        rendered = render_answers(dhcp_site(extra_answers=extra), "pw")
    except InputError:
        return
    parsed = parse_answers(rendered)
    assert parsed["OVESETUP_A/lines"] == ("multi-str", items)
    assert parsed["OVESETUP_A/text"] == ("str", text)
    assert len(parsed) == 15  # the 13 derived keys and these 2: nothing added or lost


@SETTINGS
@given(TEXTS)
def test_ssh_key_comment_round_trips_or_is_refused(comment: str) -> None:
    key = SSH_KEY.rsplit(" ", 1)[0] + " " + comment
    try:
        seed = render_seed(dhcp_site(ssh_keys=[key]), Secrets())
    except (InputError, ValidationError):
        return
    assert user_data(seed.user_data)["ssh_authorized_keys"] == [key]


@SETTINGS
@given(TEXTS)
def test_instance_id_round_trips_or_is_refused(value: str) -> None:
    try:
        seed = render_seed(dhcp_site(instance_id=value), Secrets())
    except (InputError, ValidationError):
        return
    assert yaml.safe_load(seed.meta_data) == {"instance-id": value, "local-hostname": "engine"}


# Names the models accept but YAML 1.1 would read as booleans, nulls or numbers if unquoted.
DOMAINS = st.one_of(TEXTS, st.sampled_from(["yes.no", "null.example", "1e3.example", "on.off"]))


@SETTINGS
@given(DOMAINS, TEXTS)
def test_network_and_hosts_values_round_trip_or_are_refused(domain: str, name: str) -> None:
    network = {"mode": "static", "ipv4": {"address": "198.51.100.10/24"},
               "search_domains": [domain]}
    try:
        site = static_site(network=network,
                           hosts_entries=[{"ip": "198.51.100.20", "names": [name]}])
        seed = render_seed(site, Secrets())
    except (InputError, ValidationError):
        return
    assert seed.network_config is not None
    config = yaml.safe_load(seed.network_config)
    assert config["ethernets"]["eth0"]["nameservers"]["search"] == [domain]
    hosts = next(f["content"] for f in user_data(seed.user_data)["write_files"]
                 if f["path"] == "/etc/hosts")
    assert hosts.splitlines()[-1] == f"198.51.100.20 {name}"


@pytest.mark.parametrize("timezone", ["../../etc/shadow", "UTC\nruncmd: [x]", "Nowhere/City"])
def test_timezone_outside_the_zone_database_is_refused(timezone: str) -> None:
    with pytest.raises(ValidationError):
        dhcp_site(timezone=timezone)
