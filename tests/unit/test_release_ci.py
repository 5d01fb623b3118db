"""The CI files under pipelines/ci/: the GitHub Actions workflow and the GitLab CI file pass
check-jsonschema with its bundled (offline) schemas, and every engine runs the suite and the
release, caches the stage store, uploads the publish directory and keeps secrets off argv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CI = REPO / "pipelines" / "ci"
GITHUB = CI / "github-release.yml"
GITLAB = CI / "gitlab-ci.yml"
RELEASE = "he-build release --file pipelines/release.yaml --publish publish --json"


def check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema,
                           str(path)], capture_output=True, text=True, check=False)


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


@pytest.mark.parametrize(("schema", "path"), [("vendor.github-workflows", GITHUB),
                                              ("vendor.gitlab-ci", GITLAB)])
def test_the_ci_files_pass_their_schemas(schema: str, path: Path) -> None:
    done = check_jsonschema(schema, path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok -- validation done" in done.stdout


@pytest.mark.parametrize(("schema", "path", "breakage"), [
    ("vendor.github-workflows", GITHUB, ("runs-on: ubuntu-24.04", "runs-onn: ubuntu-24.04")),
    ("vendor.gitlab-ci", GITLAB, ("expire_in: 90 days", "expire_in: [90]")),
])
def test_the_schema_check_has_teeth(schema: str, path: Path, breakage: tuple[str, str],
                                    tmp_path: Path) -> None:
    broken = tmp_path / path.name
    assert breakage[0] in path.read_text()
    broken.write_text(path.read_text().replace(*breakage))
    assert check_jsonschema(schema, broken).returncode != 0


def github_steps(job: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = load(GITHUB)["jobs"][job]["steps"]
    return steps


def test_github_runs_the_suite_and_the_release_and_uploads_it() -> None:
    workflow = load(GITHUB)
    assert workflow["env"]["HE_BUILDER_CACHE"] == "${{ github.workspace }}/.he-cache"
    for job in ("test", "release"):
        cache = [s for s in github_steps(job) if s.get("uses", "").startswith("actions/cache@")]
        assert cache and cache[0]["with"]["path"] == ".he-cache"
    assert any("bash scripts/test.sh" in s.get("run", "") for s in github_steps("test"))
    release_runs = " ".join(s.get("run", "") for s in github_steps("release"))
    assert RELEASE in release_runs.replace("\\\n", "").replace("  ", " ")
    upload = [s for s in github_steps("release") if s.get("uses", "").startswith(
        "actions/upload-artifact@")]
    assert "publish" in upload[0]["with"]["path"].split()


def test_github_secrets_only_reach_env_and_a_private_file() -> None:
    for job in ("test", "release"):
        for step in github_steps(job):
            assert "secrets." not in step.get("run", ""), step  # never spliced into a script
            for value in step.get("with", {}).values():
                assert "secrets." not in str(value), step
    key_step = next(s for s in github_steps("release") if "SIGNING_KEY" in s.get("env", {}))
    assert "umask 077" in key_step["run"]
    assert any(s.get("if") == "always()" and "signing-key.asc" in s.get("run", "")
               for s in github_steps("release"))


def test_gitlab_runs_the_suite_and_the_release_and_keeps_it() -> None:
    pipeline = load(GITLAB)
    assert pipeline["variables"]["HE_BUILDER_CACHE"] == "$CI_PROJECT_DIR/.he-cache"
    assert pipeline[".stage-store"]["cache"]["paths"] == [".he-cache/"]
    assert pipeline["test"]["extends"] == pipeline["release"]["extends"] == ".stage-store"
    assert any("bash scripts/test.sh" in line for line in pipeline["test"]["script"])
    assert any(RELEASE in line for line in pipeline["release"]["script"])
    assert "publish/" in pipeline["release"]["artifacts"]["paths"]
    scripts = [line for job in ("test", "release") for line in pipeline[job]["script"]]
    assert not any("HE_SIGNING" in line for line in scripts)  # he-build reads them itself
