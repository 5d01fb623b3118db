"""The release file's schema: the bundled pipelines/release.yaml is valid; every problem of a
broken one is one line naming the file, the line and the field, and nothing runs (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from builder.errors import InputError
from builder.release.config import key_file, load_release, passphrase_reference
from builder.resources import data_path

RELEASE = data_path("pipelines", "release.yaml")
VALID = """\
recipe: debian-test
signing:
  key: [file:key.asc]
  passphrase: [env:PASS, file:pass.txt]
smoke:
  inventory: inventory.yaml
  site: dc1
"""


def problems_of(path: Path) -> list[str]:
    with pytest.raises(InputError) as caught:
        load_release(path)
    return list(caught.value.problems)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "release.yaml"
    path.write_text(text)
    return path


def test_the_bundled_release_file_is_valid() -> None:
    release = load_release(RELEASE)
    model = release.model
    assert model.recipe == "debian-test"
    assert model.ova.layouts == ("ovirt", "ovf")
    assert model.smoke.site == "dc1"
    assert (release.base / "../examples/keys/demo-release.sec.asc").is_file()
    # Without CI's variables, the committed demo key and its passphrase file are used.
    assert key_file(release, {}).name == "demo-release.sec.asc"
    assert passphrase_reference(release, {}) == (
        f"file:{release.base / '../examples/keys/demo-release.passphrase'}")
    ci = {"HE_SIGNING_KEY_FILE": "/run/key.asc", "HE_SIGNING_PASSPHRASE": "x"}
    assert key_file(release, ci) == Path("/run/key.asc")
    assert passphrase_reference(release, ci) == "env:HE_SIGNING_PASSPHRASE"


def test_a_minimal_file_takes_the_defaults(tmp_path: Path) -> None:
    model = load_release(write(tmp_path, VALID)).model
    assert model.ova.layouts == ("ovirt", "ovf") and model.gates.rpmlint
    assert model.repo.base_url is None and model.publish == "publish"


def test_every_problem_is_one_line_with_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, """\
recipe: debian-test
ova:
  layouts: [ovirt, vmdk]
  compresion: zlib
rpm:
  name: "bad name"
signing:
  key: [file:key.asc]
  passphrase: [hunter2]
smoke:
  inventory: inventory.yaml
  site: DC1
  memory_mib: lots
gates:
  rpmlint: maybe
publish_dir: out
""")
    problems = problems_of(path)
    assert problems == [
        f"{path}:3: ova.layouts[1]: must be 'ovirt' or 'ovf', got 'vmdk'",
        f"{path}:4: ova.compresion: unknown field; did you mean 'compression'?",
        f"{path}:6: rpm.name: not an RPM name: 'bad name'",
        f"{path}:9: signing.passphrase[0]: must be a reference (env:NAME or file:PATH), "
        "never a literal value",
        f"{path}:12: smoke.site: 'DC1' is not a site name (lowercase letters, digits and '-')",
        f"{path}:13: smoke.memory_mib: expected an integer, got 'lots'",
        f"{path}:15: gates.rpmlint: expected true or false, got 'maybe'",
        f"{path}:16: publish_dir: unknown field; did you mean 'publish'?",
    ]
    # The literal passphrase is never echoed.
    assert not any("hunter2" in line for line in problems)


def test_missing_sections_duplicates_and_syntax(tmp_path: Path) -> None:
    path = write(tmp_path, "recipe: debian-test\nrecipe: other\n")
    assert problems_of(path) == [
        f"{path}:2: recipe: given twice (first on line 1)",
        f"{path}:1: signing: required",
        f"{path}:1: smoke: required",
    ]
    path = write(tmp_path, "recipe: [unclosed\n")
    lines = problems_of(path)
    assert len(lines) == 1 and lines[0].startswith(f"{path}:")
    path = write(tmp_path, "- a list\n")
    assert problems_of(path) == [f"{path}:1: expected a mapping of release settings"]
    path = write(tmp_path, VALID.replace("layouts", "x") + "ova:\n  layouts: [ovf, ovf]\n")
    assert problems_of(path) == [f"{path}:8: ova: a layout is listed twice"]


def test_no_reference_set(tmp_path: Path) -> None:
    release = load_release(write(tmp_path, VALID))
    with pytest.raises(InputError, match=r"signing\.key: none of file:key\.asc is set or exists"):
        key_file(release, {})
    with pytest.raises(InputError, match=r"signing\.passphrase: none of env:PASS"):
        passphrase_reference(release, {})
    (tmp_path / "pass.txt").write_text("secret\n")
    assert passphrase_reference(release, {}) == f"file:{tmp_path / 'pass.txt'}"


def test_the_command_refuses_a_bad_file_before_anything_runs(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "surprise: 1\n")
    done = subprocess.run([sys.executable, "-m", "builder.cli.he_build", "release", "--file",
                           str(path), "--plan", "--json"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 2
    data = json.loads(done.stdout)
    assert data["problems"] == [f"{path}:8: surprise: unknown field"]
    human = subprocess.run([sys.executable, "-m", "builder.cli.he_build", "release", "--file",
                            str(path)], capture_output=True, text=True, check=False)
    assert human.returncode == 2 and "Traceback" not in human.stderr
    assert human.stderr.splitlines() == [
        f"he-build: error: release file {path} has 1 problem",
        f"he-build: {path}:8: surprise: unknown field"]
