"""Provenance over real files and the real tools' versions."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from builder.release.provenance import (
    TOOL_VERSION_ARGV,
    Dependency,
    RunFacts,
    Subject,
    builder_id_from_env,
    render_statement,
    tool_versions,
    write_provenance,
)
from tests.unit.test_release_provenance import check_with_in_toto

pytestmark = pytest.mark.integration
EPOCH = 1700000000


def test_subjects_carry_the_digests_sha256sum_computes(tmp_path: Path) -> None:
    publish = tmp_path / "publish"
    (publish / "repo").mkdir(parents=True)
    (publish / "appliance.ova").write_bytes(b"ova" * 1000)
    (publish / "repo" / "a.rpm").write_bytes(b"rpm")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: debian-test\n")
    versions = tool_versions()
    assert set(TOOL_VERSION_ARGV) | {"he-builder"} <= set(versions)
    assert all(any(c.isdigit() for c in v) for v in versions.values()), versions
    statement = render_statement(
        [Subject.of_file(publish, "appliance.ova"), Subject.of_file(publish, "repo/a.rpm")],
        external_parameters={"recipe": "debian-test"},
        dependencies=[Dependency.of_file(recipe, name="recipe")],
        run=RunFacts(builder_id_from_env({}), versions, started=EPOCH, finished=EPOCH))
    written = write_provenance(publish / "provenance.intoto.json", statement)
    document = json.loads(written.read_text())
    check_with_in_toto(document)
    expected = subprocess.run(["sha256sum", "appliance.ova", "repo/a.rpm"], cwd=publish,
                              capture_output=True, text=True, check=True).stdout
    ours = "".join(f"{s['digest']['sha256']}  {s['name']}\n" for s in document["subject"])
    assert ours == expected
    recipe_digest = document["predicate"]["buildDefinition"]["resolvedDependencies"][0]
    assert recipe_digest["digest"]["sha256"] == subprocess.run(
        ["sha256sum", str(recipe)], capture_output=True, text=True, check=True).stdout.split()[0]
