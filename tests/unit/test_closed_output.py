"""A reader that has gone (`he-build cache list | head -1`): what it would have read is dropped,
the work is done, the exit status is the command's own, and no traceback is printed.

Each command runs as its own process with stdout (and in one case stderr too) the write end of
a pipe whose read end is already closed: every write fails with EPIPE, as after `head` exits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from builder.errors import ExitCode
from builder.resources import data_path

INVENTORY = data_path("examples", "inventory.yaml")


@pytest.fixture
def gone() -> Iterator[int]:
    """The write end of a pipe nobody reads."""
    read, write = os.pipe()
    os.close(read)
    yield write
    os.close(write)


def run(program: str, *argv: str | Path, stdout: int,
        stderr: int = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", f"builder.cli.{program}", *map(str, argv)],
                          stdout=stdout, stderr=stderr, text=True, check=False, timeout=120)


@pytest.mark.parametrize("argv", [
    ("he_build", "--help"),
    ("he_build", "--version"),
    ("he_build", "seed", "--help"),
    ("he_launch", "--help"),
    ("he_launch", "--version"),
    ("he_build", "inventory", "schema"),  # more than a pipe holds
    ("he_build", "appliance", "--list-recipes", "--json"),
], ids=" ".join)
def test_output_nobody_reads_is_dropped_without_a_traceback(argv: tuple[str, ...],
                                                            gone: int) -> None:
    done = run(argv[0], *argv[1:], stdout=gone)
    assert (done.returncode, done.stderr) == (0, "")


def test_the_work_is_done_and_its_status_stands(gone: int, tmp_path: Path) -> None:
    done = run("he_build", "seed", "--site", "dc1", "--inventory", INVENTORY, "--out",
               tmp_path / "out", "--json", stdout=gone)
    assert done.returncode == 0
    # (A checkout whose example secrets are readable by others adds a WARNING line first.)
    assert f"\npublished {tmp_path / 'out'}: generation 1, 1 site" in "\n" + done.stderr
    assert "Traceback" not in done.stderr
    assert (tmp_path / "out" / "dc1" / "seed.iso").is_file()
    refused = run("he_build", "seed", "--site", "nope", "--inventory", INVENTORY, "--out",
                  tmp_path / "out", "--json", stdout=gone)
    assert refused.returncode == ExitCode.BAD_INPUT
    assert refused.stderr.startswith("he-build: error: inventory ")
    assert "Traceback" not in refused.stderr


def test_with_stderr_gone_too_the_seeds_are_still_published(gone: int, tmp_path: Path) -> None:
    done = run("he_build", "seed", "--all", "--inventory", INVENTORY, "--out", tmp_path / "out",
               stdout=gone, stderr=gone)
    assert done.returncode == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_symlink()) == [
        "dc1", "dc2"]


@pytest.fixture
def readable_secrets(tmp_path: Path) -> Iterator[Path]:
    """The example inventory beside copies of its secrets that others can read: loading it
    logs a WARNING (through logging, not the console). The copies go when the test ends:
    pytest keeps its recent temporary directories."""
    shutil.copy(INVENTORY, tmp_path / "inventory.yaml")
    secrets = tmp_path / "secrets"
    shutil.copytree(INVENTORY.parent / "secrets", secrets)
    for secret in secrets.glob("dc*"):
        secret.chmod(0o644)
    yield tmp_path / "inventory.yaml"
    shutil.rmtree(secrets)


def debug_case(status: ExitCode, warns: bool, *argv: str) -> Any:
    return pytest.param(argv, status, warns, id=" ".join(argv))


@pytest.mark.parametrize(("argv", "status", "warns"), [
    debug_case(ExitCode.OK, True, "seed", "--site", "dc1", "--debug"),
    debug_case(ExitCode.BAD_INPUT, False, "seed", "--site", "nope", "--debug"),
    debug_case(ExitCode.BAD_INPUT, False, "--debug", "seed", "--site", "dc1", "--inventory",
               "/nonexistent/inventory.yaml"),
    debug_case(ExitCode.BAD_INPUT, False, "--debug", "appliance", "--recipe", "nope"),
])
def test_under_debug_with_every_stream_gone_the_status_stands(
        argv: tuple[str, ...], status: ExitCode, warns: bool, gone: int,
        readable_secrets: Path, tmp_path: Path) -> None:
    """--debug's log lines and traceback go to stderr: nobody reads it, the status is the
    command's own (it was 1: the traceback's write failed in the error handler)."""
    inventory = () if "--inventory" in argv or "appliance" in argv else (
        "--inventory", readable_secrets)
    command = (*argv, *inventory, "--out", tmp_path / "out")
    heard = run("he_build", *command, stdout=subprocess.DEVNULL)
    assert heard.returncode == status
    # What the closed stream loses: a WARNING (through logging) and, on failure, a traceback.
    assert ("WARNING" in heard.stderr, "Traceback" in heard.stderr) == (
        warns, status != ExitCode.OK)
    assert run("he_build", *command, stdout=gone, stderr=gone).returncode == status
