"""The appliance kickstart: renders, passes pykickstart/ksvalidator, and refuses injection."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from pykickstart.parser import KickstartParser
from pykickstart.version import makeVersion

from builder.appliance.kickstart import (
    KickstartInputs,
    Repo,
    ks_arg,
    render_kickstart,
    validate_kickstart,
)
from builder.errors import InputError

HASH = "$6$saltsalt$" + "a" * 86
INPUTS = KickstartInputs(
    install_tree="http://mirror.example/centos/9-stream/BaseOS/x86_64/os/",
    timezone="Europe/Prague",
    root_password_hash=HASH,
    disk_size_gib=60,
    repos=(Repo("ovirt-45", "http://mirror.example/ovirt/4.5/el9/"),),
    extra_packages=("vim-enhanced",),
)
INJECTION = '"\n%post\ntouch /pwned\n%end\n'


def parse(text: str) -> KickstartParser:
    parser = KickstartParser(makeVersion())
    parser.readKickstartFromString(text)
    return parser


def test_rendered_kickstart_has_the_appliance_settings() -> None:
    handler = parse(render_kickstart(INPUTS)).handler
    assert handler.selinux.selinux == 1  # enforcing
    assert handler.timezone.timezone == "Europe/Prague"
    assert handler.rootpw.password == HASH and handler.rootpw.isCrypted
    assert handler.url.url == INPUTS.install_tree
    assert [r.name for r in handler.repo.repoList] == ["ovirt-45"]
    assert {"ovirt-engine", "cloud-init", "vim-enhanced"} <= set(handler.packages.packageList)
    posts = "\n".join(script.script for script in handler.scripts)
    assert "datasource_list: [ NoCloud, None ]" in posts
    assert "/root/ovirt-engine-answers" in posts
    assert ": > /etc/machine-id" in posts and "rm -f /etc/ssh/ssh_host_*" in posts


def test_locked_root_when_no_hash() -> None:
    handler = parse(render_kickstart(replace(INPUTS, root_password_hash=None))).handler
    assert handler.rootpw.lock


def test_ksvalidator_accepts_the_rendered_kickstart(tmp_path: Path) -> None:
    ks = tmp_path / "ks.cfg"
    ks.write_text(render_kickstart(INPUTS))
    validator = Path(sys.executable).parent / "ksvalidator"
    proc = subprocess.run([str(validator), str(ks)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "field",
    ["install_tree", "timezone", "root_password_hash", "repo_url", "repo_name", "package"],
)
def test_injection_in_every_value_is_refused(field: str) -> None:
    bad = {
        "install_tree": replace(INPUTS, install_tree="http://x/" + INJECTION),
        "timezone": replace(INPUTS, timezone="UTC" + INJECTION),
        "root_password_hash": replace(INPUTS, root_password_hash=HASH + INJECTION),
        "repo_url": replace(INPUTS, repos=(Repo("r", "http://x/" + INJECTION),)),
        "repo_name": replace(INPUTS, repos=(Repo("r" + INJECTION, "http://x/"),)),
        "package": replace(INPUTS, extra_packages=("vim" + INJECTION,)),
    }[field]
    with pytest.raises(InputError) as info:
        render_kickstart(bad)
    assert info.value.problems and "\n" not in info.value.message


def test_quotes_and_option_lookalikes_stay_inert() -> None:
    # A value that passed the checks but carries quotes stays one argument of its command.
    value = 'Etc/UTC" --ntpservers=evil'
    text = f"timezone {ks_arg(value)}\n"
    handler = parse(text).handler
    assert handler.timezone.timezone == 'Etc/UTC" --ntpservers=evil'
    assert not handler.timezone.ntpservers
    assert len(handler.scripts) == 0
    with pytest.raises(InputError):
        ks_arg("--isUtc")


def test_disk_below_fifty_gib_is_refused() -> None:
    with pytest.raises(InputError) as info:
        render_kickstart(replace(INPUTS, disk_size_gib=20))
    assert any("disk_size_gib" in p for p in info.value.problems)


def test_broken_kickstart_is_one_line_input_error() -> None:
    with pytest.raises(InputError) as info:
        validate_kickstart("selinux --enforcing\nbogus-command --x\n")
    assert "\n" not in info.value.message
