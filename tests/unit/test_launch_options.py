"""he-launch's options and the health poll (a loopback server stands in for the engine)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.cli.he_launch import build_parser, options_from_args
from builder.errors import InputError, SetupTimeoutError
from builder.launch.health import wait_for_health
from builder.launch.options import LaunchOptions
from tests.fixtures.health_page import HEALTHY, health_page


@pytest.fixture
def base(tmp_path: Path) -> list[str]:
    """An appliance, a seed and a storage directory that exist (the options check paths)."""
    for name in ("a.ova", "s.iso", "inv.yaml"):
        (tmp_path / name).write_text("x\n")
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    return ["--appliance", str(tmp_path / "a.ova"), "--seed", str(tmp_path / "s.iso"),
            "--site", "dc1"]


def parse(base: list[str], *extra: str) -> LaunchOptions:
    return options_from_args(build_parser().parse_args([*base, *extra]))


def test_defaults_are_for_real_hardware(base: list[str]) -> None:
    opts = parse(base, "--network", "ovirtmgmt")
    assert opts.uri == "qemu:///system" and opts.virt_type == "auto"
    assert opts.storage == Path("/var/tmp/he-launch")
    assert opts.boot_timeout >= 600 and opts.setup_timeout >= 3600
    assert opts.network == "ovirtmgmt" and opts.bridge is None


@pytest.mark.parametrize(("extra", "problem"), [
    (["--no-network", "--mac", "zz:16:3e:00:00:01"], "not a MAC address"),
    (["--no-network", "--boot-timeout", "0"], "--boot-timeout 0: must be a positive number"),
    (["--no-network", "--vcpus", "0"], "--vcpus 0: must be from 1 to 4,096"),
    (["--no-network", "--name", "bad name"], "--name 'bad name'"),
    (["--no-network", "--network-from-host", "eth0"], "needs --inventory"),
    (["--no-network", "--allow-secrets-from", "/srv"],
     "--allow-secrets-from is for the seed rendered from --inventory"),
])
def test_bad_options_are_refused_with_one_line_each(
    base: list[str], extra: list[str], problem: str,
) -> None:
    with pytest.raises(InputError) as caught:
        parse(base, *extra)
    assert caught.value.exit_code == 2
    lines = [caught.value.message, *caught.value.problems]
    assert any(problem in line for line in lines), lines


def test_allowed_secret_directories_are_collected_in_order(tmp_path: Path) -> None:
    (tmp_path / "a.ova").write_text("x\n")
    (tmp_path / "inv.yaml").write_text("x\n")
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    argv = ["--appliance", str(tmp_path / "a.ova"), "--inventory", str(tmp_path / "inv.yaml"),
            "--site", "dc1", "--no-network"]
    assert parse(argv).allow_secrets_from == ()
    opts = parse(argv, "--allow-secrets-from", str(tmp_path / "a"),
                 "--allow-secrets-from", str(tmp_path / "b"))
    assert opts.allow_secrets_from == (tmp_path / "a", tmp_path / "b")


def test_a_relative_storage_is_made_absolute(base: list[str]) -> None:
    """The disks' paths go into the domain XML, which libvirtd reads from its own directory."""
    opts = parse(base, "--no-network", "--storage", "relative/storage")
    assert opts.storage.is_absolute() and opts.storage == Path.cwd() / "relative" / "storage"


def test_a_nic_choice_is_required(base: list[str]) -> None:
    with pytest.raises(InputError) as caught:
        build_parser().parse_args(base)
    assert caught.value.exit_code == 2
    assert caught.value.message == \
        "one of the arguments --network --bridge --no-network is required"


@pytest.fixture
def page() -> Iterator[tuple[str, list[bytes]]]:
    answers: list[bytes] = []
    with health_page(answers) as url:
        yield url, answers


def test_health_poll_waits_for_the_database(page: tuple[str, list[bytes]]) -> None:
    url, answers = page
    answers.extend([b"DB Down", HEALTHY])
    wait_for_health(url, 30, poll_s=0.05)
    assert answers == [HEALTHY]


def test_health_poll_gives_up_with_a_timeout(page: tuple[str, list[bytes]]) -> None:
    url, answers = page
    answers.append(b"DB Down")
    with pytest.raises(SetupTimeoutError, match="did not answer"):
        wait_for_health(url, 0.3, poll_s=0.05)
