"""Property tests: any value is either refused, or comes back exactly from every output it enters.

Refused means an InputError from the seed layer, or the inventory model's own validation error
(which the inventory loader turns into an InputError line); nothing else may happen. Answer files
are read back by the stand-in engine-setup's own otopi-style reader (tests/fixtures/standin.py),
which shares no code with the writer, and by builder.seed.answers' reader.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.errors import InputError
from builder.inventory.otopi import multi_str_problem, str_problem
from builder.inventory.problems import InvalidFields
from builder.seed.answers import check_answers, render_answers
from builder.seed.master import RenderedSeed, render_seed
from tests.fixtures.seeds import SSH_KEY, Secrets, dhcp_site, static_site
from tests.fixtures.standin import standin, standin_environment

# Characters that break naive YAML, INI, shell, Jinja or line-based formats, and Unicode
# whitespace and line separators that configparser's strip() and str.splitlines() know.
NASTY = list("\n\r\t\x00\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u2028\u2029\u3000\ufeff"
             " #%;:={}[]$()`'\"\\|>&*!?,-@ é中😀")
TEXTS = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(NASTY + list("aZ09")), max_size=30),
    st.sampled_from(["{{ x }}", "{% if %}", "$(reboot)", "; rm -rf /", "%(fqdn)s", "%%", "50%",
                     "${x}", "$HOME", "- item", "key: value", "!!python/object:os.system",
                     "*anchor", "---", "#cloud-config", "[environment:enforce]", "yes", "No",
                     "~", "null", "0o777", "1e3", " leading", "trailing ", "", "\ufeffbom",
                     "p%ss", "a=b:c", "#not a comment", ";nor this", "'quoted'", '"double"']),
)
SETTINGS = settings(max_examples=150, deadline=None)


def user_data(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def answers_in(seed: RenderedSeed) -> str:
    """The answer file as the guest receives it: its own file on the seed ISO."""
    return dict(seed.iso_files())["heanswers.conf"].decode("utf-8")


def read_back(text: str) -> dict[str, Any]:
    """The environment both readers build from `text`; they must agree."""
    ours = check_answers(text).environment
    assert standin_environment(text) == ours
    return ours


def carried_raw(line_value: str) -> Any:
    """What engine-setup's reader gives back for `K/x=<line_value>` written as is, or a marker
    when otopi would stop or skip the file."""
    try:
        environment = standin_environment(f"[environment:default]\nK/x={line_value}\n")
    except standin().SetupError:
        return "<otopi stops>"
    return environment.get("K/x", "<missing>")


@SETTINGS
@given(TEXTS)
def test_str_refusal_is_exact(value: str) -> None:
    """The writer refuses a str value exactly when otopi, given it raw, would not return it."""
    assert (str_problem(value) is None) == (carried_raw(f"str:{value}") == value)


@SETTINGS
@given(st.lists(TEXTS, max_size=4))
def test_multi_str_refusal_is_exact(items: list[str]) -> None:
    assert (multi_str_problem(items) is None) == \
        (carried_raw("multi-str:" + "\n ".join(items)) == items)


@SETTINGS
@given(TEXTS)
def test_admin_password_survives_answers_and_user_data(value: str) -> None:
    try:
        seed = render_seed(dhcp_site(), Secrets(admin_password=value))
    except InputError:
        assert str_problem(value) is not None
        return
    answers = answers_in(seed)
    assert answers == seed.answers
    assert read_back(answers)["OVESETUP_CONFIG/adminPassword"] == value


@SETTINGS
@given(TEXTS)
def test_organization_round_trips_or_is_refused(value: str) -> None:
    try:
        site = dhcp_site(engine={"organization": value})
    except InvalidFields:
        return
    assert read_back(render_answers(site, "pw"))["OVESETUP_PKI/organization"] == value


@SETTINGS
@given(st.lists(TEXTS, max_size=4), TEXTS)
def test_extra_answers_round_trip_or_are_refused(items: list[str], text: str) -> None:
    extra = {"OVESETUP_A/lines": {"type": "multi-str", "value": items},
             "QUESTION/1/OVESETUP_A_TEXT": {"type": "str", "value": text}}
    try:
        site = dhcp_site(extra_answers=extra)
    except InvalidFields:
        assert multi_str_problem(items) is not None or str_problem(text) is not None
        return
    environment = read_back(render_answers(site, "pw"))
    assert environment["OVESETUP_A/lines"] == items
    assert environment["QUESTION/1/OVESETUP_A_TEXT"] == text
    assert len(environment) == 15  # the 13 derived keys and these 2: nothing added or lost


@SETTINGS
@given(TEXTS)
def test_ssh_key_comment_round_trips_or_is_refused(comment: str) -> None:
    key = SSH_KEY.rsplit(" ", 1)[0] + " " + comment
    try:
        seed = render_seed(dhcp_site(ssh_keys=[key]), Secrets())
    except (InputError, InvalidFields):
        return
    assert user_data(seed.user_data)["ssh_authorized_keys"] == [key]


@SETTINGS
@given(TEXTS)
def test_instance_id_round_trips_or_is_refused(value: str) -> None:
    try:
        seed = render_seed(dhcp_site(instance_id=value), Secrets())
    except (InputError, InvalidFields):
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
    except (InputError, InvalidFields):
        return
    assert seed.network_config is not None
    config = yaml.safe_load(seed.network_config)
    assert config["ethernets"]["eth0"]["nameservers"]["search"] == [domain]
    hosts = next(f["content"] for f in user_data(seed.user_data)["write_files"]
                 if f["path"] == "/etc/hosts")
    assert hosts.splitlines()[-1] == f"198.51.100.20 {name}"


@pytest.mark.parametrize("timezone", ["../../etc/shadow", "UTC\nruncmd: [x]", "Nowhere/City"])
def test_timezone_outside_the_zone_database_is_refused(timezone: str) -> None:
    with pytest.raises(InvalidFields):
        dhcp_site(timezone=timezone)
