"""`he-build appliance --kickstart/--install-tree/--repo-url`: the flags reach the kickstart
backend's checks (exit 2, nothing published) before any VM is started; a bad value is named
by its flag."""

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


def flag_refused(message: str) -> list[str]:
    """What he-build says about one bad value given by a flag: the error line names the flag,
    not the recipe (the bundled one, which the user did not edit)."""
    return [f"he-build: error: {message}"]


def said(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("he-build:")]


def test_install_tree_without_pxeboot_files(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["appliance", "--install-tree", str(tmp_path), "--out", str(out)]) == (
        ExitCode.BAD_INPUT)
    assert said(capsys) == flag_refused(
        f"--install-tree: {tmp_path} has no images/pxeboot/vmlinuz, images/pxeboot/initrd.img")
    assert not out.exists()


def test_directory_tree_needs_a_repo_url(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["appliance", "--install-tree", str(fake_tree(tmp_path)), "--out", str(tmp_path / "out")]
    assert main(argv) == ExitCode.BAD_INPUT
    assert said(capsys) == flag_refused(
        "--install-tree: a directory, so repo_url (--repo-url) is needed too: the URL the "
        "installer fetches stage2 and packages from")


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
