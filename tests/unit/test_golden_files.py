"""The golden-file mechanism itself, and the set of golden files: each one produced by a test,
listed in tests/golden/README.md, and free of real secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.fixtures.golden import GOLDEN_DIR, REGEN_ALL, GoldenFiles
from tests.fixtures.golden_inputs import (
    ADMIN_PASSWORD_MARKER,
    EXAMPLE_SECRETS,
    KICKSTART_ROOT_PASSWORD,
    ROOT_PASSWORD_MARKER,
    SITES,
)
from tests.fixtures.passwords import verify_sha512_crypt
from tests.integration import test_domain_xml
from tests.unit import test_golden_kickstart, test_golden_ovf, test_golden_rpm, test_golden_seed

README = GOLDEN_DIR / "README.md"
PRODUCERS = (test_golden_seed, test_golden_ovf, test_golden_rpm, test_golden_kickstart,
             test_domain_xml)
# A golden file's name in the README: first cell of a table row, in backquotes.
README_ROW = re.compile(r"^\| `([^`]+)` \|", re.MULTILINE)


def golden_files() -> dict[str, bytes]:
    return {str(path.relative_to(GOLDEN_DIR)): path.read_bytes()
            for path in sorted(GOLDEN_DIR.rglob("*")) if path.is_file() and path != README}


# --- the set of files ---------------------------------------------------------------------


def test_every_golden_file_is_produced_by_a_test_and_every_produced_one_exists() -> None:
    produced: set[str] = set().union(*(module.golden_names() for module in PRODUCERS))
    assert set(golden_files()) == produced


def test_every_golden_file_is_described_in_the_readme() -> None:
    listed = README_ROW.findall(README.read_text())
    assert len(listed) == len(set(listed)), "a file is listed twice"
    assert sorted(listed) == sorted(golden_files())


def test_the_readme_gives_the_command_that_regenerates_everything() -> None:
    assert REGEN_ALL.removesuffix(" -q") in README.read_text()


# --- secrets ------------------------------------------------------------------------------


def test_no_plain_root_password_and_no_demo_secret_is_in_a_golden_file() -> None:
    forbidden = [ROOT_PASSWORD_MARKER.format(site=site) for site in SITES]
    forbidden += [KICKSTART_ROOT_PASSWORD]
    forbidden += [path.read_text().strip() for path in EXAMPLE_SECRETS.iterdir()
                  if path.name != "README.md"]
    for name, data in golden_files().items():
        text = data.decode("utf-8")
        found = [secret for secret in forbidden if secret in text]
        assert not found, f"{name} holds a secret that must not be there"


def test_the_admin_password_marker_is_only_in_the_answer_files() -> None:
    holders = {name for name, data in golden_files().items()
               if b"GOLDEN-TEST-ADMIN-PASSWORD" in data}
    assert holders == {f"seed/{site}/heanswers.conf" for site in SITES}
    for site in SITES:
        answers = (GOLDEN_DIR / f"seed/{site}/heanswers.conf").read_text()
        assert f"adminPassword=str:{ADMIN_PASSWORD_MARKER.format(site=site)}\n" in answers


@pytest.mark.parametrize("site", SITES)
def test_the_golden_root_hash_is_the_marker_s(site: str) -> None:
    user_data = yaml.safe_load((GOLDEN_DIR / f"seed/{site}/user-data").read_text())
    [root] = user_data["chpasswd"]["users"]
    assert root["type"] == "hash"
    assert verify_sha512_crypt(ROOT_PASSWORD_MARKER.format(site=site), root["password"])


def test_the_golden_kickstart_root_hash_is_the_marker_s() -> None:
    text = (GOLDEN_DIR / "kickstart/kickstart-centos9.ks").read_text()
    [hashed] = re.findall(r'^rootpw --iscrypted "([^"]+)"$', text, re.MULTILINE)
    assert verify_sha512_crypt(KICKSTART_ROOT_PASSWORD, hashed)


# --- the mechanism ------------------------------------------------------------------------


def files_in(root: Path, *, regenerate: bool) -> GoldenFiles:
    return GoldenFiles(regenerate=regenerate, nodeid="tests/unit/test_x.py::test_y[a b]",
                       root=root)


def test_a_difference_fails_with_a_unified_diff_and_the_command(tmp_path: Path) -> None:
    (tmp_path / "doc.txt").write_text("one\ntwo\nthree\n")
    with pytest.raises(pytest.fail.Exception) as failed:
        files_in(tmp_path, regenerate=False).check("doc.txt", "one\nTWO\nthree")
    message = str(failed.value)
    assert "--- tests/golden/doc.txt\n+++ doc.txt (rendered now)\n" in message
    assert "-two\n-three\n+TWO\n+three\n\\ No newline at end of file" in message
    assert ".venv/bin/python -m pytest 'tests/unit/test_x.py::test_y[a b]' --regen-golden" \
        in message
    assert REGEN_ALL in message
    assert (tmp_path / "doc.txt").read_text() == "one\ntwo\nthree\n"


def test_equal_bytes_pass_and_a_missing_file_fails(tmp_path: Path) -> None:
    (tmp_path / "doc.bin").write_bytes(b"\x00\xff")
    files_in(tmp_path, regenerate=False).check("doc.bin", b"\x00\xff")
    with pytest.raises(pytest.fail.Exception, match=r"no golden file tests/golden/new\.txt"):
        files_in(tmp_path, regenerate=False).check("new.txt", "x\n")
    assert not (tmp_path / "new.txt").exists()


def test_regenerate_writes_new_and_changed_files_only(tmp_path: Path) -> None:
    golden = files_in(tmp_path, regenerate=True)
    golden.check("sub/new.txt", "fresh\n")
    assert (tmp_path / "sub/new.txt").read_text() == "fresh\n"
    (tmp_path / "same.txt").write_text("same\n")
    before = (tmp_path / "same.txt").stat().st_ino
    golden.check("same.txt", "same\n")
    assert (tmp_path / "same.txt").stat().st_ino == before  # untouched
    golden.check("same.txt", "changed\n")
    assert (tmp_path / "same.txt").read_text() == "changed\n"
    files_in(tmp_path, regenerate=False).check("same.txt", "changed\n")
