"""`he-build appliance --kickstart/--install-tree/--repo-url`: the flags reach the kickstart
backend's checks (one line, exit 2, nothing published) before any VM is started."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.cli.he_build import main
from builder.errors import ExitCode

pytestmark = pytest.mark.integration


def fake_tree(root: Path) -> Path:
    """A directory with the CentOS tree layout (empty kernel and initrd: never booted here)."""
    pxeboot = root / "tree" / "images" / "pxeboot"
    pxeboot.mkdir(parents=True)
    for name in ("vmlinuz", "initrd.img"):
        (pxeboot / name).write_bytes(b"")
    return root / "tree"


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "error:" in line]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["appliance", *argv])
    return code, error_lines(capsys.readouterr().err)


def test_install_tree_without_pxeboot_files(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, errors = run(["--install-tree", str(tmp_path), "--out", str(out)], capsys)
    assert code == ExitCode.BAD_INPUT
    assert len(errors) == 1 and str(tmp_path) in errors[0] and "images/pxeboot" in errors[0]
    assert not out.exists()


def test_directory_tree_needs_a_repo_url(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, errors = run(["--install-tree", str(fake_tree(tmp_path)),
                        "--out", str(tmp_path / "out")], capsys)
    assert code == ExitCode.BAD_INPUT
    assert len(errors) == 1 and "repo_url" in errors[0]


def test_a_kickstart_that_never_powers_off_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kickstart = tmp_path / "appliance.ks"
    kickstart.write_text("text\nrootpw --lock\n")
    out = tmp_path / "out"
    code, errors = run(["--install-tree", str(fake_tree(tmp_path)), "--kickstart", str(kickstart),
                        "--repo-url", "http://127.0.0.1:9/repo", "--out", str(out)], capsys)
    assert code == ExitCode.BAD_INPUT
    assert len(errors) == 1 and "poweroff" in errors[0]
    assert not out.exists()


def test_kickstart_flags_on_another_backend_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, errors = run(["--recipe", "debian-test", "--kickstart", str(tmp_path / "x.ks"),
                        "--out", str(tmp_path / "out")], capsys)
    assert code == ExitCode.BAD_INPUT
    assert errors == ["he-build: error: --kickstart: recipe debian-test uses the debian-test "
                      "backend, not kickstart"]
