"""Provenance checked against the in-toto attestation framework's own definitions: the
protobuf messages of in-toto Statement v1 and SLSA provenance v1 (unknown fields and wrong
types are refused) and the validators of its Python package; plus the fields SLSA v1 marks
REQUIRED (buildDefinition.buildType, .externalParameters, runDetails.builder.id)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement

from builder.errors import InputError
from builder.release.provenance import (
    BUILD_TYPE,
    LOCAL_BUILDER_ID,
    Dependency,
    RunFacts,
    Subject,
    builder_id_from_env,
    dump_statement,
    invocation_id_from_env,
    render_statement,
)

EPOCH = 1700000000
SUBJECTS = [Subject("ovirt-engine-appliance-4.5-1.ova", "a" * 64),
            Subject("repo/Packages/ovirt-engine-appliance-4.5-1.noarch.rpm", "b" * 64),
            Subject("sbom.spdx.json", "c" * 64)]
DEPENDENCIES = [Dependency("recipe:debian-test.yaml", {"sha256": "d" * 64}),
                Dependency("he-builder", {"gitCommit": "e" * 40},
                           uri="git+https://example.invalid/he-builder.git"),
                Dependency("base-image", uri="https://example.invalid/base.qcow2")]
PARAMETERS = {"recipe": "debian-test", "layouts": ["ovirt", "ovf"],
              "rpm": {"name": "ovirt-engine-appliance", "payload": "speed"},
              "SOURCE_DATE_EPOCH": EPOCH}
RUN = RunFacts(LOCAL_BUILDER_ID, {"he-builder": "0.1.0", "rpm": "RPM version 4.18.0"},
               started=EPOCH, finished=EPOCH)


def statement(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"external_parameters": PARAMETERS, "dependencies": DEPENDENCIES,
                              "run": RUN}
    values.update(changes)
    subjects = values.pop("subjects", SUBJECTS)
    return render_statement(subjects, **values)


def check_with_in_toto(document: dict[str, Any]) -> provenance_pb2.Provenance:
    """Parse as in-toto's own code does; raises on any unknown field or wrong type."""
    pb = json_format.ParseDict(document, statement_pb2.Statement())
    Statement.copy_from_pb(pb).validate()
    predicate = json_format.ParseDict(document["predicate"], provenance_pb2.Provenance())
    for dependency in predicate.build_definition.resolved_dependencies:
        ResourceDescriptor.copy_from_pb(dependency).validate()
    return predicate


def test_the_statement_parses_as_in_toto_and_slsa_v1() -> None:
    document = json.loads(dump_statement(statement()))
    predicate = check_with_in_toto(document)
    assert document["_type"] == "https://in-toto.io/Statement/v1"
    assert document["predicateType"] == "https://slsa.dev/provenance/v1"
    # SLSA v1's REQUIRED fields.
    assert predicate.build_definition.build_type == BUILD_TYPE
    assert dict(predicate.build_definition.external_parameters)["recipe"] == "debian-test"
    assert predicate.run_details.builder.id == LOCAL_BUILDER_ID
    assert predicate.run_details.metadata.started_on.seconds == EPOCH
    assert predicate.run_details.metadata.finished_on.seconds == EPOCH
    assert dict(predicate.run_details.builder.version)["rpm"] == "RPM version 4.18.0"
    assert [s["name"] for s in document["subject"]] == sorted(s.name for s in SUBJECTS)
    assert document["subject"][0]["digest"] == {"sha256": "a" * 64}


def test_the_in_toto_check_refuses_what_it_should() -> None:
    # The check above is worthless if it accepts anything.
    bad = statement()
    bad["predicate"]["runDetails"]["builder"]["bogus"] = 1
    with pytest.raises(json_format.ParseError):
        check_with_in_toto(bad)
    no_subject = statement()
    no_subject["subject"] = []
    with pytest.raises(ValueError, match="At least one subject"):
        check_with_in_toto(no_subject)


def test_any_input_order_gives_the_same_bytes() -> None:
    shuffled_subjects, shuffled_deps = SUBJECTS[:], DEPENDENCIES[:]
    random.Random(3).shuffle(shuffled_subjects)
    random.Random(5).shuffle(shuffled_deps)
    reordered = dict(reversed(list(PARAMETERS.items())))
    assert dump_statement(statement()) == dump_statement(statement(
        subjects=shuffled_subjects, dependencies=shuffled_deps, external_parameters=reordered))


def test_invocation_and_internal_parameters_are_optional() -> None:
    run = RunFacts("https://ci.example.invalid/job/release", {"he-builder": "0.1.0"},
                   started=EPOCH, finished=EPOCH + 60, invocation_id="https://ci.example.invalid/1")
    document = statement(run=run, internal_parameters={"cache": "hit"})
    predicate = check_with_in_toto(document)
    assert predicate.run_details.metadata.invocation_id == "https://ci.example.invalid/1"
    assert document["predicate"]["runDetails"]["metadata"]["finishedOn"] == "2023-11-14T22:14:20Z"
    assert document["predicate"]["buildDefinition"]["internalParameters"] == {"cache": "hit"}


@pytest.mark.parametrize(("subjects", "dependencies", "message"), [
    ([], DEPENDENCIES, "at least one published file"),
    ([SUBJECTS[0], SUBJECTS[0]], DEPENDENCIES, "two published files with the same name"),
    (SUBJECTS, [Dependency("nothing")], "needs a digest or a URI"),
])
def test_bad_inputs(subjects: list[Subject], dependencies: list[Dependency],
                    message: str) -> None:
    with pytest.raises(InputError, match=message):
        statement(subjects=subjects, dependencies=dependencies)


@pytest.mark.parametrize(("env", "builder", "invocation"), [
    ({}, LOCAL_BUILDER_ID, None),
    ({"GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.com",
      "GITHUB_WORKFLOW_REF": "org/he/.github/workflows/release.yml@refs/tags/v1",
      "GITHUB_REPOSITORY": "org/he", "GITHUB_RUN_ID": "42", "GITHUB_RUN_ATTEMPT": "2"},
     "https://github.com/org/he/.github/workflows/release.yml@refs/tags/v1",
     "https://github.com/org/he/actions/runs/42/attempts/2"),
    ({"GITLAB_CI": "true", "CI_PROJECT_URL": "https://gitlab.example/org/he",
      "CI_COMMIT_SHA": "f" * 40, "CI_CONFIG_PATH": "pipelines/ci/gitlab-ci.yml",
      "CI_JOB_URL": "https://gitlab.example/org/he/-/jobs/7"},
     f"https://gitlab.example/org/he/-/blob/{'f' * 40}/pipelines/ci/gitlab-ci.yml",
     "https://gitlab.example/org/he/-/jobs/7"),
    ({"JENKINS_URL": "https://jenkins.example/", "JOB_NAME": "he-release",
      "BUILD_URL": "https://jenkins.example/job/he-release/9/"},
     "https://jenkins.example/job/he-release", "https://jenkins.example/job/he-release/9/"),
])
def test_ci_identity(env: dict[str, str], builder: str, invocation: str | None) -> None:
    assert builder_id_from_env(env) == builder
    assert invocation_id_from_env(env) == invocation
