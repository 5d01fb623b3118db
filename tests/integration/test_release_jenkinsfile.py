"""The Jenkinsfile, checked offline: Groovy 2.4 (the version Jenkins embeds) parses and runs
it with every step recorded instead of executed (tests/data/ci/record_jenkinsfile.groovy),
and the recorded declarative structure is checked. Not checked here (it needs a Jenkins
controller): the declarative model's own validation and the plugins' step signatures."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
JENKINSFILE = REPO / "pipelines" / "ci" / "Jenkinsfile"
RECORDER = REPO / "tests" / "data" / "ci" / "record_jenkinsfile.groovy"
Node = dict[str, Any]


def record(jenkinsfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["groovy", str(RECORDER), str(jenkinsfile)], capture_output=True,
                          text=True, check=False)


@pytest.fixture(scope="module")
def tree() -> list[Node]:
    done = record(JENKINSFILE)
    assert done.returncode == 0, done.stderr
    nodes: list[Node] = json.loads(done.stdout)
    return nodes


def child(nodes: list[Node], name: str, first_arg: str | None = None) -> Node:
    for node in nodes:
        if node["name"] == name and (first_arg is None or node["args"][0]["value"] == first_arg):
            return node
    raise AssertionError(f"no {name} {first_arg or ''} in {[n['name'] for n in nodes]}")


def walk(nodes: list[Node]) -> list[Node]:
    return [n for node in nodes for n in (node, *walk(node["children"]))]


def test_declarative_skeleton(tree: list[Node]) -> None:
    assert [n["name"] for n in tree] == ["pipeline"]
    pipeline = tree[0]["children"]
    assert [n["name"] for n in pipeline] == ["agent", "options", "environment", "stages"]
    environment = child(pipeline, "environment")["children"]
    assert {n["name"]: n["args"][0]["value"] for n in environment} == {
        "=HE_BUILDER_CACHE": "/var/cache/he-builder", "=LIBGUESTFS_BACKEND": "direct"}
    stages = child(pipeline, "stages")["children"]
    assert [s["args"][0]["value"] for s in stages] == ["Set up", "Test", "Release"]


def test_the_release_stage(tree: list[Node]) -> None:
    stages = child(tree[0]["children"], "stages")["children"]
    release = child(stages, "stage", "Release")["children"]
    steps = child(release, "steps")["children"]
    credentials = child(steps, "withCredentials")
    bindings = {b["call"]: b["args"][0] for b in credentials["args"][0]}
    assert bindings["file"]["variable"]["value"] == "HE_SIGNING_KEY_FILE"
    assert bindings["string"]["variable"]["value"] == "HE_SIGNING_PASSPHRASE"
    shell = child(credentials["children"], "sh")["args"][0]
    assert "he-build release --file pipelines/release.yaml --publish publish --json" in (
        shell["value"])
    archive = child(child(child(release, "post")["children"], "success")["children"],
                    "archiveArtifacts")
    assert archive["args"][0]["artifacts"]["value"].startswith("publish/**")


def test_no_shell_step_interpolates_in_groovy(tree: list[Node]) -> None:
    # A GString would splice a secret into the command line Jenkins logs and runs.
    shells = [n for n in walk(tree) if n["name"] == "sh"]
    assert len(shells) == 3
    assert {s["args"][0]["type"] for s in shells} == {"String"}


def test_the_recorder_sees_breakage(tmp_path: Path) -> None:
    # The checks above are worthless if a broken file passed too.
    broken = tmp_path / "Jenkinsfile"
    broken.write_text(JENKINSFILE.read_text().replace("stages {", "stages {{", 1))
    assert record(broken).returncode != 0
    interpolated = tmp_path / "Interpolated"
    interpolated.write_text(JENKINSFILE.read_text().replace(
        "sh 'bash scripts/setup.sh && bash scripts/services.sh'",
        'sh "echo ${HE_SIGNING_PASSPHRASE}"'))
    done = record(interpolated)
    assert done.returncode == 0, done.stderr
    types = {n["args"][0]["type"] for n in walk(json.loads(done.stdout)) if n["name"] == "sh"}
    assert "GStringImpl" in types
