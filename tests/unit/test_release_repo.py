"""The .repo file and the repository options, without tools: values that would break or
inject into the INI file are refused, one line each."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from builder.errors import InputError
from builder.gpg import parse_secret_keys
from builder.release.gates import parse_rpmlint
from builder.release.repo import RepoOptions, check_options, createrepo_argv, render_repo_file

GOOD = RepoOptions(repo_id="ovirt-appliance", name="oVirt engine appliance",
                   base_url="https://mirror.example/ovirt/appliance/el9",
                   key_name="RPM-GPG-KEY-ovirt-appliance", revision=1700000000)


def test_the_repo_file_reads_back() -> None:
    config = configparser.RawConfigParser()
    config.read_string(render_repo_file(GOOD))
    assert config.sections() == ["ovirt-appliance"]
    assert dict(config["ovirt-appliance"]) == {
        "name": "oVirt engine appliance",
        "baseurl": "https://mirror.example/ovirt/appliance/el9",
        "enabled": "1", "gpgcheck": "1", "repo_gpgcheck": "1",
        "gpgkey": "https://mirror.example/ovirt/appliance/el9/RPM-GPG-KEY-ovirt-appliance"}


@pytest.mark.parametrize(("changes", "message"), [
    ({"repo_id": "bad id"}, "repository id"),
    ({"repo_id": "x]\n[main"}, "repository id"),
    ({"name": "two\nlines"}, "repository name"),
    ({"name": "  "}, "repository name"),
    ({"base_url": "ftp://mirror.example/x"}, "base URL"),
    ({"base_url": "https://mirror.example/x\ngpgcheck=0"}, "base URL"),
    ({"base_url": "https://mirror.example/a b"}, "base URL"),
    ({"key_name": "../etc/passwd"}, "public key name"),
])
def test_bad_options_are_refused(changes: dict[str, str], message: str) -> None:
    values = {**GOOD.__dict__, **changes}
    with pytest.raises(InputError, match=message) as caught:
        check_options(RepoOptions(**values))
    assert "\n" not in caught.value.message  # values are quoted with repr: one line


def test_createrepo_is_pinned_for_reproducibility() -> None:
    argv = createrepo_argv(Path("/r"), GOOD)
    assert argv[-1] == "/r"
    assert {"--revision", "1700000000", "--set-timestamp-to-revision", "--no-database",
            "--workers", "1"} <= set(argv)
    unpinned = createrepo_argv(Path("/r"),
                               RepoOptions("x", "x", "file:///r", revision=None, sqlite=True))
    assert "--revision" not in unpinned and "--database" in unpinned


def test_secret_key_listing() -> None:
    listing = "\n".join([
        "sec:u:3072:1:985EABA75A83D89D:1600000000:::u:::scSC:::+:::23::0:",
        "fpr:::::::::611D38C3B6491FFDDD409637985EABA75A83D89D:",
        "grp:::::::::93B935FA407A3D7224A6B254D739EA738E628B4C:",
        "uid:u::::1600000000::X::Test <t@example.invalid>::::::::::0:",
        "ssb:u:3072:1:1111222233334444:1600000000::::::s:::+:::23:",
        "fpr:::::::::AAAABBBBCCCCDDDDEEEEFFFF1111222233334444:",
        "grp:::::::::0123456789ABCDEF0123456789ABCDEF01234567:",
        "sec:e:2048:1:5555666677778888:1500000000:1550000000::u:::sc:::+:::23::0:",
        "fpr:::::::::99998888777766665555444433332222AAAABBBB:",
        "grp:::::::::FEDCBA9876543210FEDCBA9876543210FEDCBA98:",
    ])
    first, second = parse_secret_keys(listing)
    assert first.fingerprint == "611D38C3B6491FFDDD409637985EABA75A83D89D"
    assert first.created == 1600000000 and first.validity == "u"
    assert first.keygrips == ("93B935FA407A3D7224A6B254D739EA738E628B4C",
                              "0123456789ABCDEF0123456789ABCDEF01234567")
    assert second.validity == "e"


def test_rpmlint_lines() -> None:
    output = ("he-hello.noarch: W: no-url-tag\n"
              "he-hello.noarch: E: no-signature\n"
              " 1 packages and 0 specfiles checked; 1 errors, 1 warnings, 1 badness\n")
    findings = parse_rpmlint(output)
    assert [(f.level, f.check) for f in findings] == [("W", "no-url-tag"), ("E", "no-signature")]
