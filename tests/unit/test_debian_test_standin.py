"""The stand-in engine-setup shipped in the debian-test appliance (run here with python3).

It stands in for oVirt's engine-setup, which cannot exist on this machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from builder.appliance.debian_test import data_file

GOOD = "[environment:default]\nOVESETUP_CONFIG/fqdn=str:engine.example.test\nA/b=bool:False\n"


@pytest.fixture
def standin(tmp_path: Path) -> Path:
    script = tmp_path / "engine-setup"
    script.write_bytes(data_file("engine-setup"))
    return script


def run_standin(script: Path, *answers: Path,
                timeout: float = 30) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(script), "--offline"]
    argv += [f"--config-append={a}" for a in answers]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def answer(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_success_prints_stages_and_exits_zero(standin: Path, tmp_path: Path) -> None:
    done = run_standin(standin, answer(tmp_path, "a.conf", GOOD),
                       answer(tmp_path, "b.conf", "[environment:override]\nX/y=int:3\n"))
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0] == "[ INFO  ] Stage: Initializing"
    assert lines[-1] == "[ INFO  ] Execution of setup completed successfully"
    assert "[ INFO  ] Engine FQDN: engine.example.test" in lines
    assert "STAND-IN" in done.stdout


def test_exit_code_key_is_honoured(standin: Path, tmp_path: Path) -> None:
    done = run_standin(standin, answer(tmp_path, "a.conf",
                                       GOOD + "OVESETUP_STANDIN/exitCode=int:7\n"))
    assert done.returncode == 7
    assert "Execution of setup failed" in done.stdout


@pytest.mark.parametrize(("line", "message"), [
    ("OVESETUP_CONFIG/fqdn=engine.example.test", "Missing variable type"),
    ("OVESETUP_CONFIG/fqdn=float:1.5", "Unknown variable type 'float'"),
    ("OVESETUP_DB/port=int:five", "Invalid int value"),
])
def test_bad_values_fail_with_a_message(standin: Path, tmp_path: Path, line: str,
                                        message: str) -> None:
    done = run_standin(standin, answer(tmp_path, "a.conf", f"[environment:default]\n{line}\n"))
    assert done.returncode == 1
    assert "[ ERROR ]" in done.stdout and message in done.stdout


def test_unknown_section_fails(standin: Path, tmp_path: Path) -> None:
    done = run_standin(standin, answer(tmp_path, "a.conf", "[environment:other]\nA/b=str:x\n"))
    assert done.returncode == 1
    assert "Unknown section [environment:other]" in done.stdout


def test_types_follow_otopi(standin: Path, tmp_path: Path) -> None:
    # bool is FALSE only for 0/f/F/false/False: exitCode stays 0 through a False-ish bool.
    text = ("[environment:default]\nA/n=none:ignored\nA/m=multi-str:x\n"
            "OVESETUP_STANDIN/hang=bool:f\n")
    assert run_standin(standin, answer(tmp_path, "a.conf", text)).returncode == 0


def test_hang_key_keeps_it_running(standin: Path, tmp_path: Path) -> None:
    path = answer(tmp_path, "a.conf", GOOD + "OVESETUP_STANDIN/hang=bool:True\n")
    with pytest.raises(subprocess.TimeoutExpired) as info:
        run_standin(standin, path, timeout=3)
    assert b"asked to hang" in (info.value.stdout or b"")


def test_appliance_answer_file_parses(standin: Path, tmp_path: Path) -> None:
    shipped = answer(tmp_path, "ovirt-engine-answers", data_file("ovirt-engine-answers").decode())
    assert run_standin(standin, shipped).returncode == 0
