"""The subprocess helper, atomic writes and the CLI's error handling."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from builder.atomic import staged_dir, write_atomic
from builder.cli import main
from builder.errors import CommandError, ExitCode, MissingPrerequisiteError
from builder.repro import source_date_epoch, stable_mac, stable_uuid
from builder.run import redact, run


def test_run_captures_output() -> None:
    assert run(["printf", "a b"]).text == "a b"


def test_run_failure_carries_code_and_redacted_stderr() -> None:
    with pytest.raises(CommandError) as info:
        run(["sh", "-c", "echo 'bad hunter2' >&2; exit 7", "hunter2"], secrets=["hunter2"])
    err = info.value
    assert err.returncode == 7
    assert "hunter2" not in err.stderr_tail and "bad ***" in err.stderr_tail
    assert "hunter2" not in " ".join(err.argv)
    assert err.exit_code == ExitCode.COMMAND_FAILED


def test_run_missing_tool_is_a_prerequisite_error() -> None:
    with pytest.raises(MissingPrerequisiteError):
        run(["no-such-tool-here-12345"])


def test_redact_masks_longest_first() -> None:
    assert redact("pw=abcdef abc", ["abc", "abcdef"]) == "pw=*** ***"


def test_write_atomic_creates_with_mode(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "secret"
    write_atomic(target, b"x", mode=0o600)
    assert target.read_bytes() == b"x"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(target.parent) == ["secret"]


def test_staged_dir_leaves_nothing_on_failure(tmp_path: Path) -> None:
    final = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_dir(final) as temp:
        (temp / "half").write_text("x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_staged_dir_replaces_existing_only_when_complete(tmp_path: Path) -> None:
    final = tmp_path / "out"
    final.mkdir()
    (final / "old").write_text("old")
    with staged_dir(final) as temp:
        (temp / "new").write_text("new")
        assert (final / "old").exists()
    assert [p.name for p in final.iterdir()] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_stable_ids_are_deterministic() -> None:
    assert stable_uuid("a", "b") == stable_uuid("a", "b") != stable_uuid("a", "c")
    mac = stable_mac("dc1")
    assert mac == stable_mac("dc1") and mac.startswith("00:16:3e:") and len(mac) == 17


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), ("", None), ("1700000000", 1700000000)]
)
def test_source_date_epoch(value: str | None, expected: int | None) -> None:
    env = {} if value is None else {"SOURCE_DATE_EPOCH": value}
    assert source_date_epoch(env) == expected


def test_cli_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == ExitCode.BAD_INPUT
    assert "invalid choice" in capsys.readouterr().err
