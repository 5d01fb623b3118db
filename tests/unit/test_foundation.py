"""The subprocess helper, atomic writes, locks, stale partials and the CLI's error handling."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from builder.atomic import (
    LEGACY_GRACE_S,
    lock_path,
    staged_dir,
    staged_file,
    sweep_stale_partials,
    write_atomic,
)
from builder.cli.handler import CommandParser
from builder.cli.he_build import main
from builder.errors import CommandError, ExitCode, InputError, MissingPrerequisiteError
from builder.lock import acquire_lock, holder_pid, is_held_elsewhere, locked, try_lock
from builder.repro import source_date_epoch, stable_mac, stable_uuid
from builder.run import redact, run
from tests.fixtures.processes import TOOL, alive, killed_build, wait_until


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


# A build that runs the tool (tests.fixtures.processes.TOOL).
BUILD = """\
import sys
from builder.run import run
run([sys.executable, "-c", sys.argv[1], sys.argv[2]])
"""
# A command starting a command of its own (debootstrap starting dpkg), run plainly or
# with_descendants.
PARENT = """\
import subprocess, sys
subprocess.run([sys.executable, "-c", sys.argv[1], sys.argv[2]])
"""
BUILD_FAMILY = """\
import sys
from builder.run import run, with_descendants
argv = [sys.executable, "-c", sys.argv[2], sys.argv[3], sys.argv[4]]
run(with_descendants(argv) if sys.argv[1] == "own" else argv)
"""


def test_run_s_command_dies_with_a_killed_caller(tmp_path: Path) -> None:
    """he-build killed (kill -9, the OOM killer) takes the tool it was running with it: a
    compressing qemu-img went on for the rest of its stage, into a partial directory the
    rerun sweeps."""
    pid_file = tmp_path / "pid"
    with killed_build([sys.executable, "-c", BUILD, TOOL, str(pid_file)], pid_file) as tool:
        assert wait_until(lambda: not alive(tool), 30)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="a PID namespace: needs root and unshare(1)")
@pytest.mark.parametrize("namespace", ["own", "none"])
def test_what_a_command_starts_dies_with_it_in_a_pid_namespace_of_its_own(
    tmp_path: Path, namespace: str,
) -> None:
    """he-build killed: the command goes (pdeathsig), and with_descendants what it started goes
    too; without it (the control case) the command's own child runs on, orphaned."""
    pid_file = tmp_path / "pid"
    argv = [sys.executable, "-c", BUILD_FAMILY, namespace, PARENT, TOOL, str(pid_file)]
    with killed_build(argv, pid_file) as grandchild:
        gone = wait_until(lambda: not alive(grandchild), 30 if namespace == "own" else 2)
        assert gone == (namespace == "own")


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
    assert list(tmp_path.iterdir()) == []  # no partial, no lock file


def test_staged_dir_replaces_existing_only_when_complete(tmp_path: Path) -> None:
    final = tmp_path / "out"
    final.mkdir()
    (final / "old").write_text("old")
    with staged_dir(final) as temp:
        (temp / "new").write_text("new")
        assert (final / "old").exists()
        assert stat.S_IMODE(temp.stat().st_mode) == 0o700
    assert [p.name for p in final.iterdir()] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_staged_dir_without_replace_keeps_the_existing_entry(tmp_path: Path) -> None:
    final = tmp_path / "entry"
    final.mkdir()
    (final / "first").write_text("1")
    with staged_dir(final, replace=False) as temp:
        (temp / "second").write_text("2")
    assert [p.name for p in final.iterdir()] == ["first"]
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]


def test_a_writer_holds_the_final_paths_lock(tmp_path: Path) -> None:
    final = tmp_path / "artifact"
    with staged_file(final) as temp:
        assert temp.name.startswith(f".artifact.partial-{os.getpid()}-")
        assert is_held_elsewhere(lock_path(final))
        assert sweep_stale_partials(tmp_path) == []  # a live writer's partial is kept
        assert temp.exists()
    assert not lock_path(final).exists()


def test_sweep_removes_partials_whose_writer_is_gone(tmp_path: Path) -> None:
    dead_dir = tmp_path / ".disk.partial-4242-abcdefgh"
    (dead_dir / "work").mkdir(parents=True)
    (dead_dir / "work" / "disk.raw").write_bytes(b"\0" * 1024)
    dead_file = tmp_path / ".app.ova.partial-4242-xyz12345"
    dead_file.write_bytes(b"half")
    (tmp_path / ".app.ova.lock").write_text("4242\n")  # its holder died before unlinking it
    live = tmp_path / ".rpm.partial-4343-abcdefgh"
    live.mkdir()
    keep = [tmp_path / "disk", tmp_path / "notes.partial", tmp_path / ".hidden"]
    for path in keep:
        path.write_text("mine")
    held = try_lock(tmp_path / ".rpm.lock", transient=True)
    assert held is not None
    try:
        removed = sweep_stale_partials(tmp_path)
    finally:
        held.release()
    assert sorted(removed) == sorted([dead_dir, dead_file])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, *(p.name for p in keep)])


def test_sweep_removes_lock_files_nobody_holds(tmp_path: Path) -> None:
    # Killed just after renaming its temp file into place, before unlinking its lock.
    (tmp_path / "app.ova").write_text("done")
    (tmp_path / ".app.ova.lock").write_text("4242\n")
    held = try_lock(tmp_path / ".app.rpm.lock", transient=True)  # a live writer's
    assert held is not None
    try:
        sweep_stale_partials(tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == [".app.rpm.lock", "app.ova"]
    finally:
        held.release()


def test_sweep_waits_a_day_before_removing_partials_of_earlier_versions(tmp_path: Path) -> None:
    # Earlier versions named partials `.NAME.partial-PIDXXXXXXXX` and took no lock: only
    # age tells that their writer is gone.
    young = tmp_path / ".disk.partial-4242abcdefgh"
    old = tmp_path / ".ova.partial-4343abcdefgh"
    young.mkdir()
    old.mkdir()
    long_ago = time.time() - LEGACY_GRACE_S - 60
    os.utime(old, (long_ago, long_ago))
    assert sweep_stale_partials(tmp_path) == [old]
    assert [p.name for p in tmp_path.iterdir()] == [young.name]


def test_sweep_limited_to_some_finals_leaves_the_others(tmp_path: Path) -> None:
    mine = tmp_path / ".state.partial-4242-abcdefgh"
    theirs = tmp_path / ".other.partial-4242-abcdefgh"
    mine.mkdir()
    theirs.mkdir()
    assert sweep_stale_partials(tmp_path, finals=["state"]) == [mine]
    assert theirs.exists()


def test_a_lock_is_exclusive_across_open_files_and_records_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with locked(path):
        assert try_lock(path) is None
        assert is_held_elsewhere(path)
        assert holder_pid(path) == os.getpid()
    held = try_lock(path)
    assert held is not None
    held.release()
    assert path.exists()  # a permanent lock file stays


def test_a_transient_lock_file_goes_with_its_release(tmp_path: Path) -> None:
    path = tmp_path / ".x.lock"
    held = try_lock(path, transient=True)
    assert held is not None
    held.release()
    assert not path.exists()
    assert not is_held_elsewhere(path)


def test_a_waiter_is_told_and_gets_the_lock_when_released(tmp_path: Path) -> None:
    path = tmp_path / ".x.lock"
    told = threading.Event()
    messages: list[str] = []
    order: list[str] = []

    def notify(message: str) -> None:
        messages.append(message)
        told.set()

    def waiter() -> None:
        acquire_lock(path, transient=True, notify=notify, what="building x").release()
        order.append("waiter")

    first = acquire_lock(path, transient=True)
    thread = threading.Thread(target=waiter)
    thread.start()
    assert told.wait(timeout=30)
    order.append("first")
    first.release()  # unlinks the file the waiter opened: it must take the new one
    thread.join(timeout=30)
    assert order == ["first", "waiter"]
    assert messages == [f"waiting for process {os.getpid()} to finish building x"]
    assert not path.exists()


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


@pytest.mark.parametrize(("argv", "lines"), [
    (["no-such-command"],
     ["he-build: error: argument COMMAND: invalid choice: 'no-such-command' (choose from "
      "'inventory', 'seed', 'appliance', 'ova', 'release', 'cache')",
      "he-build: hint: see he-build --help"]),
    ([], ["he-build: error: the following arguments are required: COMMAND",
          "he-build: hint: see he-build --help"]),
    (["seed"], ["he-build: error: one of the arguments --site --all is required",
                "he-build: hint: see he-build seed --help"]),
    # Words left over are refused by the subcommand that was given them.
    (["seed", "--all", "--colour", "blue"],
     ["he-build: error: unrecognized arguments: --colour blue",
      "he-build: hint: see he-build seed --help"]),
    (["inventory", "check", "extra"],
     ["he-build: error: unrecognized arguments: extra",
      "he-build: hint: see he-build inventory check --help"]),
    (["appliance", "--format", "xz"],
     ["he-build: error: argument --format: invalid choice: 'xz' (choose from 'ovirt', "
      "'qcow2', 'ovf')", "he-build: hint: see he-build appliance --help"]),
    (["ova", "verify"], ["he-build: error: the following arguments are required: OVA",
                         "he-build: hint: see he-build ova verify --help"]),
    # A missing option comes with the words no option took (argparse stops at the first).
    (["seed", "--no"],
     ["he-build: error: unrecognized arguments: --no; one of the arguments --site --all is "
      "required", "he-build: hint: see he-build seed --help"]),
    (["--colour"],
     ["he-build: error: unrecognized arguments: --colour; the following arguments are "
      "required: COMMAND", "he-build: hint: see he-build --help"]),
    (["ova", "verify", "--quick"],
     ["he-build: error: unrecognized arguments: --quick; the following arguments are "
      "required: OVA", "he-build: hint: see he-build ova verify --help"]),
])
def test_a_usage_error_is_one_error_line_and_a_hint_and_exit_2(
        argv: list[str], lines: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == ExitCode.BAD_INPUT
    out, err = capsys.readouterr()
    assert (out, err.splitlines()) == ("", lines)


def test_the_parser_requires_again_what_it_relaxed_to_find_the_words_left_over() -> None:
    parser = CommandParser(prog="he-test")
    parser.add_argument("--appliance", required=True)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--site")
    which.add_argument("--all", action="store_true")
    with pytest.raises(InputError, match=r"^unrecognized arguments: --no; the following"):
        parser.parse_args(["--site", "dc1", "--no"])
    with pytest.raises(InputError, match=r"^the following arguments are required: --appliance$"):
        parser.parse_args(["--site", "dc1"])
    with pytest.raises(InputError, match=r"^one of the arguments --site --all is required$"):
        parser.parse_args(["--appliance", "a.ova"])


def test_a_usage_error_under_json_is_the_json_error_object(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "seed", "--site"]) == ExitCode.BAD_INPUT
    out, err = capsys.readouterr()
    assert json.loads(out) == {"ok": False, "error": "argument --site: expected one argument",
                               "kind": "InputError", "exit_code": 2, "problems": [],
                               "hint": "see he-build seed --help"}
    assert err.splitlines() == ["he-build: error: argument --site: expected one argument",
                                "he-build: hint: see he-build seed --help"]


@pytest.mark.parametrize("argv", [["--help"], ["seed", "--help"], ["--version"]])
def test_help_and_version_print_and_return_0(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out.startswith(("usage: he-build", "he-build ")) and err == ""


@pytest.mark.parametrize(("argv", "unrecognized"), [
    (["seed", "--inv", "examples/inventory.yaml", "--site", "dc1"],
     "--inv examples/inventory.yaml"),
    (["--js", "inventory", "check"], "--js"),
])
def test_a_long_option_is_taken_only_as_written_in_full(
        argv: list[str], unrecognized: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == ExitCode.BAD_INPUT
    assert capsys.readouterr().err.splitlines()[0] == (
        f"he-build: error: unrecognized arguments: {unrecognized}")


@pytest.mark.parametrize("unshare", ["refuses", "missing"])
def test_without_namespaces_a_command_runs_plainly(tmp_path: Path, unshare: str) -> None:
    """Where unshare cannot make a namespace (a container that forbids them) or is not there,
    with_descendants_where_possible leaves the command as it is, rather than failing it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if unshare == "refuses":
        fake = bin_dir / "unshare"
        fake.write_text("#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\n"
                        "exit 1\n")
        fake.chmod(0o755)
    path = str(bin_dir) if unshare == "missing" else f"{bin_dir}:{os.environ['PATH']}"
    script = ("from builder.run import with_descendants_where_possible as w\n"
              "print(' '.join(w(['rpmbuild', '-bb'])))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, env={**os.environ, "PATH": path})
    assert done.stdout == "rpmbuild -bb\n"
