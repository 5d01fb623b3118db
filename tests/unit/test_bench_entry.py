"""The benches' entry point: an expected failure is printed as he-build prints it (one line, its
problems and hint) with its exit code, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bench import run_bench
from builder.errors import ExitCode, InputError, MissingPrerequisiteError

ROOT = Path(__file__).resolve().parents[2]


def _exit_of(main: Callable[[], None], script: str, monkeypatch: pytest.MonkeyPatch) -> object:
    """`main` run as the bench `script` (its path in argv[0]): the code it exits with."""
    monkeypatch.setattr(sys, "argv", [f"/work/bench/{script}"])
    with pytest.raises(SystemExit) as exited:
        run_bench(main)
    return exited.value.code


def _missing_libvirtd() -> None:
    raise MissingPrerequisiteError("cannot connect to libvirt at qemu:///system",
                                   hint="start libvirtd (scripts/services.sh)")


def test_a_builder_error_is_its_message_hint_and_exit_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _exit_of(_missing_libvirtd, "launch.py", monkeypatch) == ExitCode.MISSING_PREREQUISITE
    assert capsys.readouterr().err == (
        "bench.launch: error: cannot connect to libvirt at qemu:///system\n"
        "bench.launch: hint: start libvirtd (scripts/services.sh)\n")


def _bad_inventory() -> None:
    raise InputError("inventory x.yaml has 1 problem",
                     problems=["x.yaml:3: site dc1: vcpus: not an integer\x1b[2J"])


def test_an_input_error_lists_its_problems_printable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _exit_of(_bad_inventory, "seeds.py", monkeypatch) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("bench.seeds: error: inventory x.yaml has 1 problem\n"
                          "bench.seeds: x.yaml:3: site dc1: vcpus: not an integer")
    assert "\x1b" not in err and err.count("\n") == 2


@pytest.mark.parametrize(("returned", "code"), [(None, 0), (0, 0), (1, 1)])
def test_the_exit_code_is_what_main_returned(returned: int | None, code: int) -> None:
    with pytest.raises(SystemExit) as exited:
        run_bench(lambda: returned)
    assert exited.value.code == code


def test_an_error_without_a_file_keeps_its_traceback() -> None:
    def broken() -> None:
        raise OSError("no file in this one")

    with pytest.raises(OSError, match="no file in this one"):
        run_bench(broken)


def test_a_file_given_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no.ova"
    done = subprocess.run([sys.executable, "-m", "bench.rpm", "--ova", str(missing)],
                          capture_output=True, text=True, check=False, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == ExitCode.BAD_INPUT
    assert done.stderr == f"bench.rpm: error: cannot use {missing}: No such file or directory\n"
