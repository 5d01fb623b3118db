"""he-launch's bad input, part one: options and paths, refused before anything is done.

Each row of ROWS is a row of docs/launch.md's "Bad input" table, run through `main(argv)`: the
first line after `he-launch: `, the exit code, and no traceback. The rows that need an
appliance, a seed, libvirt, a small file system or a signal are in
tests/integration/test_launch_bad_input.py; the last test here checks that the table and the
two files' rows agree, row for row.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from builder.cli.he_launch import main
from builder.errors import ExitCode

TRACEBACK = "Traceback (most recent call last)"
TEST_URI = "test:///default"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "launch.md"


@dataclass(frozen=True)
class Row:
    """One row of the table: what is typed, what he-launch says first, its exit code.

    `argv` may name `{w}`, the directory the test's inputs are in, and `{st}`, the row's
    storage; `line` shows paths relative to them, and the OVA's member UUIDs as UUID."""

    label: str
    argv: tuple[str, ...]
    line: str
    code: ExitCode
    more: tuple[str, ...] = ()  # the lines that follow, when the first is a summary


def launch(*extra: str, appliance: str | None = "{w}/appliance.ova",
           seed: tuple[str, ...] = ("--no-seed",), site: tuple[str, ...] = ("--site", "dc1"),
           nic: tuple[str, ...] = ("--no-network",)) -> tuple[str, ...]:
    """An argv that is right but for what the row changes (`extra` comes last: it wins);
    `{st}` is the storage directory, fresh for each row."""
    given = ("--appliance", appliance) if appliance is not None else ()
    return (*given, *seed, *site, *nic, "--uri", TEST_URI, "--storage", "{st}", *extra)


def prune(*extra: str) -> tuple[str, ...]:
    """A --prune-images argv, right but for `extra` (which comes last: it wins)."""
    return ("--prune-images", "--uri", TEST_URI, "--storage", "{st}", *extra)


def first_line(stderr: str) -> str:
    """The first line he-launch prints as itself (progress lines come without the prefix)."""
    found = [line for line in stderr.splitlines() if line.startswith("he-launch: ")]
    assert found, stderr
    return found[0].removeprefix("he-launch: ")


def shown(line: str, *roots: Path) -> str:
    """`line` as the table shows it: paths under `roots` relative, member UUIDs as UUID."""
    for root in roots:
        line = line.replace(f"{root}/", "")
    return UUID_RE.sub("UUID", line)


class TableRow(Protocol):
    """What both files' rows have in common (the table's columns)."""

    @property
    def label(self) -> str: ...
    @property
    def line(self) -> str: ...
    @property
    def more(self) -> tuple[str, ...]: ...
    @property
    def code(self) -> ExitCode: ...


def assert_row(row: TableRow, code: int, out: str, err: str, *roots: Path) -> None:
    """The row's lines first, its exit code, no traceback."""
    assert TRACEBACK not in err + out, err
    assert "internal error" not in err, err
    lines = [shown(line.removeprefix("he-launch: "), *roots) for line in err.splitlines()
             if line.startswith("he-launch: ")]
    assert (lines[:1 + len(row.more)], code) == ([row.line, *row.more], row.code), err


def fill(argv: tuple[str, ...], **places: Path | str) -> list[str]:
    return [arg.format(**{key: str(value) for key, value in places.items()}) for arg in argv]


def not_a_site(value: str) -> str:
    return (f"error: --site {value!r}: not a site name (lowercase letters, digits and '-', "
            "starting with a letter)")


def not_an_interface(flag: str, value: str) -> str:
    return (f"error: {flag} {value!r}: not an interface name (at most 15 letters, digits, "
            "'.', '_' and '-')")


def not_a_health_url(value: str) -> str:
    return (f"error: --health-url {value!r}: not an http:// or https:// URL with a host (and "
            "a port up to 65535)")


INVENTORY = ("--inventory", "{w}/inventory.yaml")
SYSTEM = "a system directory; he-launch sets the mode and owner of its storage, so name a " \
         "directory of its own (default /var/tmp/he-launch)"
BAD = ExitCode.BAD_INPUT

ROWS = [
    # What argparse refuses: reported like every other error (and as JSON with --json).
    Row("no --appliance", launch(appliance=None),
        "error: the following arguments are required: --appliance", BAD),
    Row("empty path", launch(appliance=""), "error: argument --appliance: an empty path", BAD),
    Row("no seed choice", launch(seed=()),
        "error: one of the arguments --seed --inventory --no-seed is required", BAD),
    Row("two seed choices", launch(seed=("--no-seed", "--seed", "{w}/seed.iso")),
        "error: argument --seed: not allowed with argument --no-seed", BAD),
    Row("no NIC choice", launch(nic=()),
        "error: one of the arguments --network --bridge --no-network is required", BAD),
    Row("unknown option", launch("--colour", "blue"),
        "error: unrecognized arguments: --colour blue", BAD),
    Row("abbreviated option", launch("--virt", "qemu"),
        "error: unrecognized arguments: --virt qemu", BAD),
    Row("unknown option and no --appliance", launch("--no", appliance=None),
        "error: unrecognized arguments: --no; the following arguments are required: "
        "--appliance", BAD),
    Row("option without its value", launch("--memory"),
        "error: argument --memory: expected one argument", BAD),
    Row("unknown virt type", launch("--virt-type", "xen"),
        "error: argument --virt-type: invalid choice: 'xen' (choose from 'auto', 'kvm', 'qemu')",
        BAD),
    Row("memory with a unit", launch("--memory", "16G"),
        "error: argument --memory: not a whole number: '16G'", BAD),
    Row("timeout with a unit", launch("--boot-timeout", "15m"),
        "error: argument --boot-timeout: not a number of seconds: '15m'", BAD),
    Row("malformed --address", launch("--address", "192.0.2.300"),
        "error: argument --address: not an IPv4 address: '192.0.2.300'", BAD),
    # Values argparse takes but he-launch cannot use.
    Row("zero memory", launch("--memory", "0"), "error: --memory 0: must be from 1 to 16,777,216",
        BAD),
    Row("negative vCPUs", launch("--vcpus", "-2"), "error: --vcpus -2: must be from 1 to 4,096",
        BAD),
    Row("too many vCPUs", launch("--vcpus", "5000"),
        "error: --vcpus 5000: must be from 1 to 4,096", BAD),
    Row("zero timeout", launch("--setup-timeout", "0"),
        "error: --setup-timeout 0: must be a positive number of seconds", BAD),
    Row("NaN timeout", launch("--boot-timeout", "nan"),
        "error: --boot-timeout nan: must be a positive number of seconds", BAD),
    Row("infinite timeout", launch("--health-timeout", "inf"),
        "error: --health-timeout inf: must be a positive number of seconds", BAD),
    Row("MAC not hexadecimal", launch("--mac", "zz:16:3e:00:00:01"),
        "error: --mac 'zz:16:3e:00:00:01': not a MAC address (aa:bb:cc:dd:ee:ff)", BAD),
    Row("MAC too short", launch("--mac", "00:16:3e:00:01"),
        "error: --mac '00:16:3e:00:01': not a MAC address (aa:bb:cc:dd:ee:ff)", BAD),
    Row("MAC with a line break", launch("--mac", "00:16:3e:00:00:01\n"),
        "error: --mac '00:16:3e:00:00:01\\n': not a MAC address (aa:bb:cc:dd:ee:ff)", BAD),
    Row("multicast MAC", launch("--mac", "01:00:5e:00:00:01"),
        "error: --mac '01:00:5e:00:00:01': a multicast address; a NIC needs a unicast one (an "
        "even first byte)", BAD),
    Row("site climbing out of the storage", launch(site=("--site", "../etc")),
        not_a_site("../etc"), BAD),
    Row("site in capitals", launch(site=("--site", "DC1")), not_a_site("DC1"), BAD),
    Row("domain name with a blank", launch(site=("--name", "he engine")),
        "error: --name 'he engine': not a domain name (up to 63 letters, digits, '.', '_' and "
        "'-', starting with a letter or digit)", BAD),
    Row("no site and no name", launch(site=()),
        "error: name the domain: --site NAME or --name NAME", BAD),
    Row("FQDN of one label", launch("--fqdn", "engine"),
        "error: --fqdn 'engine': not a fully qualified domain name", BAD),
    Row("bridge name too long", launch(nic=("--bridge", "ovirtmgmt-bridge0")),
        not_an_interface("--bridge", "ovirtmgmt-bridge0"), BAD),
    Row("network name with a slash", launch(nic=("--network", "lab/net")),
        "error: --network 'lab/net': not a libvirt network name", BAD),
    Row("empty URI", launch("--uri="),
        "error: --uri '': not a libvirt URI (an empty one would connect to libvirt's default)",
        BAD),
    Row("health URL not http", launch("--health-check", "--health-url", "ftp://x"),
        not_a_health_url("ftp://x"), BAD),
    Row("health URL without a host", launch("--health-check", "--health-url", "http:///health"),
        not_a_health_url("http:///health"), BAD),
    Row("health URL with a bad port",
        launch("--health-check", "--health-url", "http://engine:99999/"),
        not_a_health_url("http://engine:99999/"), BAD),
    Row("health check without an FQDN", launch("--health-check"),
        "error: --health-check needs the FQDN: --inventory, --seed, --fqdn or --health-url",
        BAD),
    Row("--address without --network-from-host", launch("--address", "192.0.2.10"),
        "error: --address is the engine's address for --network-from-host: it needs "
        "--network-from-host IFACE", BAD),
    Row("--network-from-host without --inventory", launch("--network-from-host", "lo"),
        "error: --network-from-host renders the seed: it needs --inventory", BAD),
    Row("interface name with a blank", launch("--network-from-host", "eth0 up", seed=INVENTORY),
        not_an_interface("--network-from-host", "eth0 up"), BAD),
    Row("--inventory without --site", launch(seed=INVENTORY, site=("--name", "engine")),
        "error: --inventory needs --site NAME", BAD),
    Row("--allow-secrets-from without --inventory", launch("--allow-secrets-from", "{w}/dir"),
        "error: --allow-secrets-from is for the seed rendered from --inventory", BAD),
    Row("two problems at once", launch("--mac", "zz", "--vcpus", "0"),
        "error: 2 problems with the options", BAD,
        more=("--mac 'zz': not a MAC address (aa:bb:cc:dd:ee:ff)",
              "--vcpus 0: must be from 1 to 4,096")),
    # Paths: checked before any connection, directory or domain is touched.
    Row("missing appliance", launch(appliance="{w}/absent.ova"),
        "error: --appliance 'absent.ova': No such file or directory", BAD),
    Row("appliance under a file", launch(appliance="{w}/appliance.ova/disk.ova"),
        "error: --appliance 'appliance.ova/disk.ova': Not a directory", BAD),
    Row("appliance is a FIFO", launch(appliance="{w}/fifo"),
        "error: --appliance 'fifo': a FIFO, not a file or a directory", BAD),
    Row("missing seed ISO", launch(seed=("--seed", "{w}/absent.iso")),
        "error: --seed 'absent.iso': No such file or directory", BAD),
    Row("seed is a directory", launch(seed=("--seed", "{w}/dir")),
        "error: --seed 'dir': a directory, not a regular file", BAD),
    Row("missing inventory", launch(seed=("--inventory", "{w}/absent.yaml")),
        "error: --inventory 'absent.yaml': No such file or directory", BAD),
    Row("inventory is a directory", launch(seed=("--inventory", "{w}/dir")),
        "error: --inventory 'dir': a directory, not a regular file", BAD),
    Row("missing secrets directory", launch("--allow-secrets-from", "{w}/absent", seed=INVENTORY),
        "error: --allow-secrets-from 'absent': No such file or directory", BAD),
    Row("secrets directory is a file",
        launch("--allow-secrets-from", "{w}/appliance.ova", seed=INVENTORY),
        "error: --allow-secrets-from 'appliance.ova': a regular file, not a directory", BAD),
    Row("storage is a file", launch("--storage", "{w}/appliance.ova"),
        "error: --storage 'appliance.ova': a regular file, not a directory", BAD),
    Row("storage under a file", launch("--storage", "{w}/appliance.ova/storage"),
        "error: --storage 'appliance.ova/storage': Not a directory", BAD),
    Row("storage is a system directory", launch("--storage", "/var/tmp"),
        f"error: --storage '/var/tmp': {SYSTEM}", BAD),
    Row("storage climbing to the root", launch("--storage", "{w}/../../../../../../../.."),
        f"error: --storage '../../../../../../../..': {SYSTEM}", BAD),
    # --prune-images: its own options only, checked before libvirt or the storage is read.
    Row("pruning with a launch option", prune("--appliance", "{w}/appliance.ova"),
        "error: unrecognized arguments: --appliance appliance.ova", BAD),
    Row("pruning age not a number", prune("--unused-for", "soon"),
        "error: argument --unused-for: not a number of days: 'soon'", BAD),
    Row("pruning age below zero", prune("--unused-for=-1"),
        "error: argument --unused-for: must be from 0 to 999999 days, got '-1'", BAD),
    Row("pruning a system directory", prune("--storage", "/var/tmp"),
        f"error: --storage '/var/tmp': {SYSTEM}", BAD),
    Row("pruning a file", prune("--storage", "{w}/appliance.ova"),
        "error: --storage 'appliance.ova': a regular file, not a directory", BAD),
    Row("pruning with an empty URI", prune("--uri", ""),
        "error: --uri '': not a libvirt URI (an empty one would connect to libvirt's default)",
        BAD),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files that exist (never read: every row stops at the options), a directory, a FIFO."""
    root = tmp_path_factory.mktemp("inputs")
    for name in ("appliance.ova", "seed.iso", "inventory.yaml"):
        (root / name).write_text("never read\n")
    (root / "dir").mkdir()
    os.mkfifo(root / "fifo")
    return root


@pytest.mark.parametrize("row", ROWS, ids=[row.label for row in ROWS])
def test_row(row: Row, inputs: Path, tmp_path: Path,
             capsys: pytest.CaptureFixture[str]) -> None:
    code = main(fill(row.argv, w=inputs, st=tmp_path / "storage"))
    captured = capsys.readouterr()
    assert_row(row, code, captured.out, captured.err, inputs, tmp_path)
    # Refused before anything was done: not even the storage directory exists.
    assert list(tmp_path.iterdir()) == []


def test_every_problem_of_several_is_named(inputs: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    argv = fill(launch("--mac", "zz", "--vcpus", "0", appliance="{w}/absent.ova"), w=inputs,
                st=tmp_path)
    assert main(argv) == ExitCode.BAD_INPUT
    lines = [shown(line, inputs) for line in capsys.readouterr().err.splitlines()]
    assert lines == [
        "he-launch: error: 3 problems with the options",
        "he-launch: --mac 'zz': not a MAC address (aa:bb:cc:dd:ee:ff)",
        "he-launch: --vcpus 0: must be from 1 to 4,096",
        "he-launch: --appliance 'absent.ova': No such file or directory",
        "he-launch: hint: see he-launch --help",
    ]


@pytest.mark.parametrize("argv", [launch("--json", appliance=None),
                                  launch("--json", "--mac", "zz")], ids=["usage", "option"])
def test_with_json_a_refusal_is_a_json_object_too(
    argv: tuple[str, ...], inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """A program reading --json (the Ansible role does) gets an object for every refusal."""
    assert main(fill(argv, w=inputs, st=tmp_path)) == ExitCode.BAD_INPUT
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert (result["ok"], result["exit_code"], result["kind"]) == (False, 2, "InputError")
    assert result["error"] == first_line(captured.err).removeprefix("error: ")


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_return_zero(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([flag]) == 0
    assert "he-launch" in capsys.readouterr().out


def documented_rows() -> dict[str, tuple[tuple[str, ...], int]]:
    """label -> (lines, exit code) of every table under docs/launch.md's "## Bad input"; a
    cell holds one line in backquotes, or several joined by <br>."""
    section = DOCS.read_text().split("\n## Bad input\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[tuple[str, ...], int]] = {}
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith(("| bad input |", "| --- |")):
            continue
        label, rest = line[2:].split(" | `", 1)
        cell, code = rest.rsplit("` | ", 1)
        assert label not in rows, f"{label!r} appears twice in docs/launch.md"
        lines = tuple(text.replace("\\|", "|") for text in cell.split("`<br>`"))
        rows[label] = (lines, int(code.removesuffix(" |")))
    return rows


def test_the_documented_table_is_the_tested_one() -> None:
    from tests.integration.test_launch_bad_input import ROWS as MORE_ROWS  # noqa: PLC0415

    tested: list[TableRow] = [*ROWS, *MORE_ROWS]
    assert len({row.label for row in tested}) == len(tested), "a label is used twice"
    assert documented_rows() == {row.label: ((row.line, *row.more), int(row.code))
                                 for row in tested}
