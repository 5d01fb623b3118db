"""`he-build release --plan`: the stage graph with each stage's key and action, nothing built
(an empty store stays empty)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

STAGES = ["disk", "ova", "ova-ovf", "rpm", "rpm-sign", "seed", "smoke", "gates", "sbom", "repo",
          "provenance", "publish"]


def plan(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HE_BUILDER_CACHE": str(tmp_path / "cache"),
           "SOURCE_DATE_EPOCH": "1700000000"}
    return subprocess.run([sys.executable, "-m", "builder.cli.he_build", "release", "--plan",
                           "--publish", str(tmp_path / "publish"), *args],
                          capture_output=True, text=True, check=False, env=env)


def test_plan_on_an_empty_store(tmp_path: Path) -> None:
    done = plan(tmp_path, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["publish"] == str(tmp_path / "publish")
    rows = {row["stage"]: row for row in data["stages"]}
    assert list(rows) == STAGES
    assert {row["action"] for row in rows.values()} == {"run"}
    # Stages without inputs from other stages have their key now; the others once their
    # inputs exist.
    assert [s for s, row in rows.items() if row["key"] is not None] == ["disk", "seed"]
    assert rows["gates"]["needs"] == ["smoke", "rpm-sign", "seed", "ova", "ova-ovf"]
    assert rows["publish"]["needs"] == ["repo", "sbom", "provenance", "ova", "ova-ovf"]
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("stage.json"))
    assert not (tmp_path / "publish").exists()
    # The same plan for people: one row per stage.
    text = plan(tmp_path).stdout.splitlines()
    assert text[0].split() == ["STAGE", "NEEDS", "ACTION", "KEY"]
    assert [line.split()[0] for line in text[1:]] == STAGES
    assert text[1].split() == ["disk", "-", "run", rows["disk"]["key"]]
    assert text[-1].split() == ["publish", "repo,sbom,provenance,ova,ova-ovf", "run",
                                "(after", "its", "inputs", "are", "built)"]


def test_plan_keys_follow_the_epoch(tmp_path: Path) -> None:
    first = json.loads(plan(tmp_path, "--json").stdout)["stages"]
    env = {**os.environ, "HE_BUILDER_CACHE": str(tmp_path / "cache"),
           "SOURCE_DATE_EPOCH": "1700000001"}
    done = subprocess.run([sys.executable, "-m", "builder.cli.he_build", "release", "--plan",
                           "--json"], capture_output=True, text=True, check=True, env=env)
    second = json.loads(done.stdout)["stages"]
    seed = [row["key"] for row in (first[5], second[5])]
    assert first[5]["stage"] == "seed" and seed[0] != seed[1]


def test_the_seed_key_follows_the_smoke_sites_secrets(tmp_path: Path) -> None:
    """The seed stage holds the site's passwords: a changed secret file reruns it (and only
    it, of the stages keyed now); the key shows no secret."""
    examples = Path(__file__).resolve().parents[2] / "examples"
    shutil.copytree(examples, tmp_path / "examples")
    release = tmp_path / "release.yaml"
    release.write_text("recipe: debian-test\n"
                       "signing:\n"
                       f"  key: [file:{examples / 'keys' / 'demo-release.sec.asc'}]\n"
                       f"  passphrase: [file:{examples / 'keys' / 'demo-release.passphrase'}]\n"
                       "smoke:\n  inventory: examples/inventory.yaml\n  site: dc1\n")

    def keys() -> dict[str, str | None]:
        done = plan(tmp_path, "--file", str(release), "--json")
        assert done.returncode == 0, done.stderr
        return {row["stage"]: row["key"] for row in json.loads(done.stdout)["stages"]}

    secret = tmp_path / "examples" / "secrets" / "dc1-admin-password"
    before = keys()
    assert keys() == before  # stable while nothing changes
    secret.write_text("another-admin-password\n")
    after = keys()
    assert after["seed"] != before["seed"] and after["disk"] == before["disk"]
    secret.unlink()  # unreadable now: still a plan (the seed stage would fail, saying why)
    missing = keys()
    assert missing["seed"] not in (before["seed"], after["seed"])


def test_a_publish_directory_that_cannot_be_one_is_refused_first(tmp_path: Path) -> None:
    """Before any stage (the boot smoke test alone takes minutes), and before the plan."""
    (tmp_path / "publish").write_text("")
    done = plan(tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"he-build: error: the publish directory {tmp_path / 'publish'} is not a directory"]
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("stage.json"))
