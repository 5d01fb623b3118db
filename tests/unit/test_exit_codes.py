"""The README's "Exit codes" table says what builder.errors.MEANINGS says, code for code."""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

import pytest

from builder.cli.handler import CommandResult, run_command
from builder.cli.he_build import main
from builder.console import Console
from builder.errors import MEANINGS, ExitCode, InputError

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inventory.yaml"
ROW_RE = re.compile(r"^\| (\d+) \| (.+) \|$")


def readme_table() -> dict[int, str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    return {int(m[1]): m[2] for line in section.splitlines() if (m := ROW_RE.match(line))}


def test_readme_lists_every_exit_code_with_its_meaning() -> None:
    assert readme_table() == {int(code): text for code, text in MEANINGS.items()}


def test_every_exit_code_has_a_meaning() -> None:
    assert set(MEANINGS) == set(ExitCode)


@pytest.mark.parametrize(("number", "code"), [
    (errno.ENAMETOOLONG, ExitCode.BAD_INPUT), (errno.ELOOP, ExitCode.BAD_INPUT),
    (errno.ENOTDIR, ExitCode.BAD_INPUT), (errno.EISDIR, ExitCode.BAD_INPUT),
    (errno.ENOENT, ExitCode.BAD_INPUT), (errno.EIO, ExitCode.STORAGE),
    (errno.EACCES, ExitCode.STORAGE), (errno.ENOSPC, ExitCode.STORAGE),
])
def test_an_os_error_on_a_named_file_is_reported_not_a_bug(
        number: int, code: ExitCode, capsys: pytest.CaptureFixture[str]) -> None:
    """Whatever OSError on a named file escapes a command is one line and its exit code."""
    def action() -> CommandResult:
        raise OSError(number, os.strerror(number), "/srv/x")
    assert run_command("he-build", Console(), action, debug=False) == code
    assert capsys.readouterr().err == (f"he-build: error: cannot use /srv/x: "
                                       f"{os.strerror(number)}\n")


def test_an_os_error_without_a_file_is_still_an_internal_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    def action() -> CommandResult:
        raise OSError(errno.EINVAL, "Invalid argument")
    assert run_command("he-build", Console(), action, debug=False) == ExitCode.INTERNAL
    assert capsys.readouterr().err.startswith("he-build: internal error: OSError:")


LONG = "a" * 300


@pytest.mark.parametrize("argv", [
    ["appliance", "--recipe", f"{LONG}.yaml"],
    ["appliance", "--recipe", "kickstart-centos9", "--render-kickstart", f"/tmp/{LONG}/ks.cfg"],
    ["seed", "--all", "--inventory", str(EXAMPLE), "--out", f"/tmp/{LONG}/seeds"],
    ["ova", "verify", f"/tmp/{LONG}.ova"],
], ids=["recipe", "render-kickstart", "seed-out", "ova-verify"])
def test_a_path_too_long_is_bad_input(argv: list[str], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HE_BUILDER_CACHE", str(tmp_path / "cache"))
    assert main(argv) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("he-build: error: cannot use ")
    assert LONG in err[-1] and err[-1].endswith(": File name too long")
    assert not any("internal error" in line or "Traceback" in line for line in err)


@pytest.mark.parametrize(("error", "hint"), [
    (InputError("no site 'x'", hint="he-build inventory check lists the sites"),
     "he-build inventory check lists the sites"),
    (RuntimeError("boom"), "run with --debug for the traceback"),
], ids=["input-error", "internal-error"])
def test_the_json_error_object_carries_the_hint_the_text_prints(
        error: Exception, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    def action() -> CommandResult:
        raise error
    run_command("he-build", Console(json_mode=True), action, debug=False)
    out, err = capsys.readouterr()
    assert json.loads(out)["hint"] == hint
    assert err.splitlines()[-1] == f"he-build: hint: {hint}"


def test_the_json_error_object_has_no_hint_when_none_is_printed(
        capsys: pytest.CaptureFixture[str]) -> None:
    def action() -> CommandResult:
        raise RuntimeError("boom")
    run_command("he-build", Console(json_mode=True), action, debug=True)
    out, err = capsys.readouterr()
    assert "hint" not in json.loads(out)
    assert "hint:" not in err


def test_debugs_traceback_keeps_each_message_on_one_printable_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A value with a line break, quoted by an exception's message, cannot start a line of its
    own (a fake `he-build: error:` line) in --debug's traceback either; the chain is kept."""
    def action() -> CommandResult:
        try:
            raise KeyError("first\nhe-build: error: fake one")
        except KeyError as exc:
            raise InputError("second\nhe-build: error: fake two") from exc
    assert run_command("he-build", Console(), action, debug=True) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err.splitlines()
    assert not [line for line in err if line.startswith("he-build: error: fake")]
    assert err.count("Traceback (most recent call last):") == 2
    assert "KeyError: 'first\\nhe-build: error: fake one'" in err
    assert ("builder.errors.InputError: second\\x0ahe-build: error: fake two") in err
    assert err[-1] == "he-build: error: second\\x0ahe-build: error: fake two"
