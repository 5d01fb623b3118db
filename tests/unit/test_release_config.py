"""The release file's schema: the bundled pipelines/release.yaml is valid; every problem of a
broken one is one line naming the file, the line and the field, and nothing runs (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from builder.errors import InputError
from builder.gpg import AgentKey, gnupg_home
from builder.release.config import (
    ReleaseFile,
    load_release,
    passphrase_reference,
    signing_key_source,
)
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


def key_file(release: ReleaseFile, env: dict[str, str]) -> Path | AgentKey:
    """The key a release without agent references resolves to (none is ever asked for:
    tests/integration/test_release_agent_key.py resolves them with a real gpg-agent)."""
    def no_agent(agent: AgentKey) -> str:
        raise AssertionError(f"{agent.reference} is not in this release file")

    return signing_key_source(release, env, no_agent)


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
    demo = key_file(release, {})
    assert isinstance(demo, Path) and demo.name == "demo-release.sec.asc"
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
  vcpus: yes
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
        f"{path}:14: smoke.vcpus: expected an integer, got true",
        f"{path}:16: gates.rpmlint: expected true or false, got 'maybe'",
        f"{path}:17: publish_dir: unknown field; did you mean 'publish'?",
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


AGENT_RELEASE = """\
recipe: debian-test
signing:
  key:
    - agent:2EC3 AEDE 1EE9 F3D7 90D2  66DF 6466 4275 3200 F72a
    - agent:2EC3AEDE
    - agent:2EC3AEDE1EE9F3D790D266DF646642753200F72A00
    - agent:not-a-fingerprint-at-all-not-a-fingerprint
    - gpg:2EC3AEDE1EE9F3D790D266DF646642753200F72A
smoke:
  inventory: inventory.yaml
  site: dc1
"""


def test_agent_references_need_a_full_fingerprint(tmp_path: Path) -> None:
    path = write(tmp_path, AGENT_RELEASE)
    need = "agent:FINGERPRINT needs the key's full fingerprint, 40 hex digits (spaces allowed)"
    assert problems_of(path) == [
        f"{path}:5: signing.key[1]: {need}",
        f"{path}:6: signing.key[2]: {need}",
        f"{path}:7: signing.key[3]: {need}",
        f"{path}:8: signing.key[4]: must be a reference (env:NAME, file:PATH or "
        "agent:FINGERPRINT), never a literal value",
    ]
    lines = AGENT_RELEASE.splitlines()
    valid = write(tmp_path, "\n".join(lines[:4] + lines[8:]) + "\n")
    release = load_release(valid)
    asked: list[AgentKey] = []

    def absent(agent: AgentKey) -> str:
        asked.append(agent)
        return "not here"

    env = {"GNUPGHOME": "/srv/gnupg", "HOME": "/home/op"}
    with pytest.raises(InputError) as caught:
        signing_key_source(release, env, absent)
    # Spaces dropped, upper case; the home is the environment's.
    assert asked == [AgentKey("2EC3AEDE1EE9F3D790D266DF646642753200F72A", Path("/srv/gnupg"))]
    assert caught.value.message == (
        f"{valid}: signing.key: none of agent:2EC3 AEDE 1EE9 F3D7 90D2  66DF 6466 4275 3200 "
        "F72a (not here) is set or exists")


def test_the_operators_gnupg_home() -> None:
    assert gnupg_home({"GNUPGHOME": "/srv/gnupg", "HOME": "/home/op"}) == Path("/srv/gnupg")
    assert gnupg_home({"HOME": "/home/op"}) == Path("/home/op/.gnupg")
    assert gnupg_home({"GNUPGHOME": "", "HOME": "/home/op"}) == Path("/home/op/.gnupg")


def test_a_key_that_is_not_text_is_named_as_written_at_its_line(tmp_path: Path) -> None:
    # YAML reads null, true and 3 as no text: such a key is no field. It is told once, as the
    # file writes it (not as pydantic's None or a list index), and the model never sees it.
    path = write(tmp_path, VALID.replace("  site: dc1\n", "  site: dc1\n  null: 1\n  true: 2\n")
                 + "3: x\nsigning2: y\n")
    assert problems_of(path) == [
        f"{path}:8: smoke.null: not a field name (field names are text)",
        f"{path}:9: smoke.true: not a field name (field names are text)",
        f"{path}:10: 3: not a field name (field names are text)",
        f"{path}:11: signing2: unknown field; did you mean 'signing'?",
    ]
