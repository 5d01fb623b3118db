"""Build provenance: an in-toto v1 Statement with a SLSA provenance v1 predicate naming the
published files, the release parameters, the inputs with their digests, and the builder and
tool versions. Deterministic: the same inputs give the same bytes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from builder import __version__
from builder.atomic import write_atomic
from builder.errors import InputError
from builder.repro import sha256_file
from builder.run import tool_version

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
# Ours: what a release build is, and how its parameters read (docs/release.md, "Provenance").
BUILD_TYPE = "https://he-builder.invalid/provenance/release/v1"
LOCAL_BUILDER_ID = "https://he-builder.invalid/builders/local"
# The tools whose versions a release records (argv printing the version on its first line).
TOOL_VERSION_ARGV: Mapping[str, tuple[str, ...]] = {
    "rpm": ("rpm", "--version"),
    "rpmbuild": ("rpmbuild", "--version"),
    "createrepo_c": ("createrepo_c", "--version"),
    "gpg": ("gpg", "--version"),
    "qemu-img": ("qemu-img", "--version"),
    "libguestfs": ("guestfish", "--version"),
    "xorriso": ("xorriso", "-version"),
    "rpmlint": ("rpmlint", "--version"),
    "xmllint": ("xmllint", "--version"),
}
PYTHON_PACKAGES = ("pykickstart", "pycdlib", "lxml")


@dataclass(frozen=True)
class Subject:
    """A published file: its path in the publish directory and its SHA-256."""

    name: str
    sha256: str

    @classmethod
    def of_file(cls, root: Path, name: str) -> Subject:
        path = root / name
        if not path.is_file():
            raise InputError(f"release file not found: {path}")
        return cls(name, sha256_file(path))


@dataclass(frozen=True)
class Dependency:
    """An input of the build (an in-toto ResourceDescriptor): a name, and a digest and/or a
    URI. `digest` maps algorithm to hex value (sha256, gitCommit, ...)."""

    name: str
    digest: Mapping[str, str] = field(default_factory=dict)
    uri: str | None = None

    @classmethod
    def of_file(cls, path: Path, *, name: str | None = None,
                uri: str | None = None) -> Dependency:
        if not path.is_file():
            raise InputError(f"build input not found: {path}")
        return cls(name or path.name, {"sha256": sha256_file(path)}, uri)

    def render(self) -> dict[str, Any]:
        if not self.digest and not self.uri:
            raise InputError(f"build input {self.name}: needs a digest or a URI")
        entry: dict[str, Any] = {"name": self.name}
        if self.uri:
            entry["uri"] = self.uri
        if self.digest:
            entry["digest"] = dict(sorted(self.digest.items()))
        return entry


@dataclass(frozen=True)
class RunFacts:
    """Who built it and when: `versions` are the builder's own and its tools' versions;
    `started`/`finished` are SOURCE_DATE_EPOCH in a reproducible build."""

    builder_id: str
    versions: Mapping[str, str]
    started: int
    finished: int
    invocation_id: str | None = None


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_statement(subjects: Sequence[Subject], *, external_parameters: Mapping[str, Any],
                     dependencies: Sequence[Dependency], run: RunFacts,
                     internal_parameters: Mapping[str, Any] | None = None,
                     build_type: str = BUILD_TYPE) -> dict[str, Any]:
    """The Statement as data. Lists are sorted by name, so their order never depends on the
    order stages finished in."""
    if not subjects:
        raise InputError("provenance needs at least one published file")
    names = [s.name for s in subjects]
    if len(set(names)) != len(names):
        raise InputError("provenance: two published files with the same name")
    build_definition: dict[str, Any] = {
        "buildType": build_type,
        "externalParameters": dict(external_parameters),
    }
    if internal_parameters:
        build_definition["internalParameters"] = dict(internal_parameters)
    build_definition["resolvedDependencies"] = [
        d.render() for d in sorted(dependencies, key=lambda d: (d.name, d.uri or ""))]
    metadata_: dict[str, Any] = {"startedOn": rfc3339(run.started),
                                 "finishedOn": rfc3339(run.finished)}
    if run.invocation_id:
        metadata_["invocationId"] = run.invocation_id
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": s.name, "digest": {"sha256": s.sha256}}
                    for s in sorted(subjects, key=lambda s: s.name)],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": build_definition,
            "runDetails": {
                "builder": {"id": run.builder_id, "version": dict(sorted(run.versions.items()))},
                "metadata": metadata_,
            },
        },
    }


def dump_statement(statement: Mapping[str, Any]) -> bytes:
    return (json.dumps(statement, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def write_provenance(dest: Path, statement: Mapping[str, Any]) -> Path:
    write_atomic(dest, dump_statement(statement))
    return dest


def tool_versions(tools: Sequence[str] = tuple(TOOL_VERSION_ARGV)) -> dict[str, str]:
    """`he-builder` and each tool's version line, and the Python packages that shape the
    outputs."""
    versions = {"he-builder": __version__}
    for name in tools:
        versions[name] = tool_version(*TOOL_VERSION_ARGV[name])
    for package in PYTHON_PACKAGES:
        try:
            versions[f"python:{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def builder_id_from_env(env: Mapping[str, str]) -> str:
    """The CI workflow that ran the build (GitHub Actions, GitLab CI, Jenkins), else a local
    builder."""
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_WORKFLOW_REF"):
        return f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env['GITHUB_WORKFLOW_REF']}"
    if env.get("GITLAB_CI") == "true" and env.get("CI_PROJECT_URL"):
        config = env.get("CI_CONFIG_PATH") or ".gitlab-ci.yml"
        return f"{env['CI_PROJECT_URL']}/-/blob/{env.get('CI_COMMIT_SHA', 'HEAD')}/{config}"
    if env.get("JENKINS_URL") and env.get("JOB_NAME"):
        return f"{env['JENKINS_URL'].rstrip('/')}/job/{env['JOB_NAME']}"
    return LOCAL_BUILDER_ID


def invocation_id_from_env(env: Mapping[str, str]) -> str | None:
    """This CI run's URL, when there is one (it differs per run by design)."""
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        return (f"{server}/{env.get('GITHUB_REPOSITORY', '')}/actions/runs/"
                f"{env['GITHUB_RUN_ID']}/attempts/{env.get('GITHUB_RUN_ATTEMPT', '1')}")
    if env.get("GITLAB_CI") == "true" and env.get("CI_JOB_URL"):
        return env["CI_JOB_URL"]
    return env.get("BUILD_URL") or None
