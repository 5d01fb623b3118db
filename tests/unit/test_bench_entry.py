"""The benches' entry point: an expected failure is one line and its exit code, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import run_bench
from builder.errors import ExitCode, MissingPrerequisiteError

ROOT = Path(__file__).resolve().parents[2]


def _missing_libvirtd() -> None:
    raise MissingPrerequisiteError("cannot connect to libvirt at qemu:///system",
                                   hint="start libvirtd (scripts/services.sh)")


def test_a_builder_error_is_its_message_hint_and_exit_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["/work/bench/launch.py"])
    with pytest.raises(SystemExit) as exited:
        run_bench(_missing_libvirtd)
    assert exited.value.code == ExitCode.MISSING_PREREQUISITE
    assert capsys.readouterr().err == ("bench.launch: cannot connect to libvirt at qemu:///system\n"
                                       "hint: start libvirtd (scripts/services.sh)\n")


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
    assert done.returncode == ExitCode.STORAGE
    assert done.stderr == f"bench.rpm: {missing}: No such file or directory\n"
