"""A release that fails publishes nothing: the publish directory keeps what it held, the stage
is named, the exit code is the documented one, no partial is left beside the target."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.disk.registry import resolve_recipe_path
from builder.resources import data_path

pytestmark = pytest.mark.integration

KEYS = data_path("examples", "keys")
RELEASE = """\
recipe: {recipe}
signing:
  key: [file:{keys}/demo-release.sec.asc]
  passphrase: [env:TEST_RELEASE_PASSPHRASE]
smoke:
  inventory: inventory.yaml
  site: {site}
"""
INVENTORY = """\
sites:
  relfail:
    fqdn: engine.relfail.example.com
    root_password: env:ROOT_PW
    admin_password: env:ADMIN_PW
"""


def release(tmp_path: Path, site: str, passphrase: str,
            recipe: Path | None = None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "inventory.yaml").write_text(INVENTORY)
    path = tmp_path / "release.yaml"
    path.write_text(RELEASE.format(recipe=recipe or resolve_recipe_path("debian-test"),
                                   keys=KEYS, site=site))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HE_SIGNING")}
    env.update({"SOURCE_DATE_EPOCH": "1700000000", "TEST_RELEASE_PASSPHRASE": passphrase,
                "ROOT_PW": "Root-pw-4-tests", "ADMIN_PW": "Admin-pw-4-tests"})
    return subprocess.run([sys.executable, "-m", "builder.cli.he_build", "release", "--file",
                           str(path), "--publish", str(tmp_path / "publish"), "--json"],
                          capture_output=True, text=True, check=False, env=env)


@pytest.fixture
def old_release(tmp_path: Path) -> Path:
    publish = tmp_path / "publish"
    publish.mkdir()
    (publish / "SHA256SUMS").write_text("the previous release\n")
    return publish


def assert_untouched(publish: Path) -> None:
    assert sorted(p.name for p in publish.iterdir()) == ["SHA256SUMS"]
    assert (publish / "SHA256SUMS").read_text() == "the previous release\n"
    assert [p.name for p in publish.parent.iterdir() if ".partial-" in p.name] == []


def test_an_unknown_smoke_site_is_refused_before_any_stage(tmp_path: Path,
                                                           old_release: Path) -> None:
    done = release(tmp_path, "nosuchsite", "whatever")
    assert done.returncode == 2, done.stderr
    assert json.loads(done.stdout)["error"] == (
        f"{tmp_path / 'release.yaml'}: smoke.site: no site 'nosuchsite' in "
        f"{tmp_path / 'inventory.yaml'}")
    assert "==>" not in done.stderr  # no stage started
    assert_untouched(old_release)


def test_a_wrong_passphrase_is_refused_before_any_stage(tmp_path: Path,
                                                        old_release: Path) -> None:
    passphrase = "not the demo passphrase"
    done = release(tmp_path, "relfail", passphrase)
    assert done.returncode == 2, done.stderr
    assert json.loads(done.stdout)["error"] == (
        f"{KEYS / 'demo-release.sec.asc'}: the passphrase from env:TEST_RELEASE_PASSPHRASE "
        "does not unlock key 2EC3AEDE1EE9F3D790D266DF646642753200F72A")
    assert passphrase not in done.stdout + done.stderr
    assert "==>" not in done.stderr  # no stage started
    assert_untouched(old_release)


def test_a_kickstart_the_gate_would_refuse_is_refused_before_any_stage(
        tmp_path: Path, old_release: Path) -> None:
    """Anaconda, and `he-build appliance`, go on with a warning for a user given twice; the
    release's ksvalidator gate (-e) refuses it: said before the build, not after it."""
    own = tmp_path / "own.ks"
    own.write_text("text\nuser --name=admin\nuser --name=admin\nrootpw --lock\npoweroff\n")
    recipe = tmp_path / "ks.yaml"
    recipe.write_text(resolve_recipe_path("kickstart-centos9").read_text().replace(
        "\noptions:\n", "\noptions:\n  kickstart: own.ks\n", 1))
    passphrase = (KEYS / "demo-release.passphrase").read_text().strip()
    done = release(tmp_path, "relfail", passphrase, recipe=recipe)
    assert done.returncode == 2, done.stderr
    error = json.loads(done.stdout)["error"]
    assert error == (
        f"{tmp_path / 'release.yaml'}: gates.kickstart: the kickstart of recipe ks fails "
        "ksvalidator-RHEL9, which the gates stage runs after the build: General error in input "
        "file: A user with the name admin has already been defined.")
    assert "==>" not in done.stderr  # no stage started
    assert_untouched(old_release)
