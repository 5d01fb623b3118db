"""`he-build release` end to end, as CI runs it: one release of the demo appliance (recipe
debian-test; engine-setup is the bundled stand-in, no real engine exists here), shared by the
tests of this module, then judged by the real clients: sha256sum, gpg, Debian's dnf.

The smoke stage boots a VM (TCG, no NIC): run this module under the VM lock,
`flock /work/locks/vm.lock .venv/bin/python -m pytest tests/integration/test_release_pipeline.py`.
"""

from __future__ import annotations

import dataclasses
import filecmp
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.killrun import KillPoint, run_with_kill
from builder.disk.registry import resolve_recipe_path
from builder.pipeline.store import StageCache, default_cache_root
from builder.resources import data_path
from tests.fixtures.release import gpg_verify
from tests.integration.test_release_repo import dnf_install, installed

pytestmark = [pytest.mark.integration, pytest.mark.vm]

EPOCH = "1700000000"
SITE = "relsmoke"
KEYS = data_path("examples", "keys")
FINGERPRINT = "2EC3AEDE1EE9F3D790D266DF646642753200F72A"
RPM = "ovirt-engine-appliance-4.5.0-0.debiantest.noarch.rpm"
ALL_STAGES = ["disk", "ova", "ova-ovf", "rpm", "rpm-sign", "seed", "smoke", "gates", "sbom",
              "repo", "provenance", "publish"]
RUN_SPECIFIC_STAGES = ("repo", "provenance", "publish")
INVENTORY = f"""\
sites:
  {SITE}:
    fqdn: engine.{SITE}.example.com
    vcpus: 1
    memory_mib: 1024
    root_password: file:root-password
    admin_password: file:admin-password
"""
RELEASE = """\
recipe: {recipe}
ova:
  layouts: [ovirt, ovf]
rpm:
  name: ovirt-engine-appliance
signing:
  key: [file:{keys}/demo-release.sec.asc]
  passphrase: [env:TEST_RELEASE_PASSPHRASE]
smoke:
  inventory: inventory.yaml
  site: {site}
  uri: qemu:///system
  storage: {storage}
  boot_timeout: 900
  setup_timeout: 900
repo:
  id: ovirt-appliance
  name: oVirt engine appliance (test)
  key_name: RPM-GPG-KEY-ovirt-appliance
"""


@dataclass(frozen=True)
class Setup:
    work: Path
    release: Path
    recipe: Path
    publish: Path
    storage: Path
    env: dict[str, str]


def he_build_release(setup: Setup, *args: str, release: Path | None = None,
                     env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, "-m", "builder.cli.he_build", "release", "--file",
         str(release or setup.release), "--json", *args],
        capture_output=True, text=True, check=False, env=env or setup.env)
    return done.returncode, json.loads(done.stdout or "{}"), done.stderr


def write_release(work: Path, recipe: Path, storage: Path, name: str = "release.yaml") -> Path:
    path = work / name
    path.write_text(RELEASE.format(recipe=recipe, keys=KEYS, site=SITE, storage=storage))
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, libvirt_uri: str) -> Iterator[Setup]:
    work = tmp_path_factory.mktemp("release")
    recipe = work / "recipe.yaml"
    shutil.copyfile(resolve_recipe_path("debian-test"), recipe)
    for name in ("root-password", "admin-password"):
        (work / name).write_text(f"{name}-4-Tests\n")
        (work / name).chmod(0o600)
    (work / "inventory.yaml").write_text(INVENTORY)
    # qemu (its own user) must reach the launcher's storage: /tmp's pytest dirs are 0700.
    storage = Path("/var/tmp") / f"he-release-tests-{os.getpid()}"
    storage.mkdir(mode=0o711, exist_ok=True)
    storage.chmod(0o711)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HE_SIGNING")}
    env.update({"SOURCE_DATE_EPOCH": EPOCH,
                "TEST_RELEASE_PASSPHRASE": (KEYS / "demo-release.passphrase").read_text()
                .rstrip("\n")})
    yield Setup(work, write_release(work, recipe, storage), recipe, work / "publish", storage,
                env)
    shutil.rmtree(storage, ignore_errors=True)


@dataclass(frozen=True)
class Runs:
    plan: dict[str, Any]
    first: dict[str, Any]
    second: dict[str, Any]
    second_stderr: str


@pytest.fixture(scope="module")
def runs(setup: Setup) -> Iterator[Runs]:
    """--plan, a full run, then the same command again, in the shared store (the appliance's
    stages are reused across runs of the suite)."""
    code, plan, stderr = he_build_release(setup, "--publish", str(setup.publish), "--plan")
    assert code == 0, stderr
    code, first, stderr = he_build_release(setup, "--publish", str(setup.publish))
    assert code == 0, stderr
    code, second, stderr = he_build_release(setup, "--publish", str(setup.publish))
    assert code == 0, stderr
    yield Runs(plan, first, second, stderr)
    remove_entries_of_this_run(first)


def remove_entries_of_this_run(run: dict[str, Any]) -> None:
    """The entries whose keys hold this module's temporary paths can never be reused (the
    publish directory is in the repository's base URL, the launcher's storage in the
    provenance's parameters): they leave the shared store, as `he-build cache prune` would
    take them after 30 days."""
    made = {(row["stage"], row["key"]) for row in run["stages"]
            if row["stage"] in RUN_SPECIFIC_STAGES and row["result"] == "ran"}
    cache = StageCache(default_cache_root(os.environ))
    for entry in cache.entries():
        if (entry.stage, entry.key) in made:
            cache.remove(entry, unused_since=math.inf)


def stage_results(data: dict[str, Any]) -> dict[str, str]:
    return {row["stage"]: row["result"] for row in data["stages"]}


def published_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_the_plan_names_every_stage_and_runs_nothing(runs: Runs, setup: Setup) -> None:
    plan = runs.plan["stages"]
    assert [row["stage"] for row in plan] == ALL_STAGES
    assert {row["action"] for row in plan} <= {"run", "reuse"}
    by_name = {row["stage"]: row for row in plan}
    assert by_name["smoke"]["needs"] == ["ova", "seed"]
    # A stage the plan could key is keyed the same by the run (nothing was built by --plan).
    keys = {row["stage"]: row["key"] for row in runs.first["stages"]}
    for row in plan:
        if row["key"] is not None:
            assert row["key"] == keys[row["stage"]], row
        else:
            assert row["action"] == "run"
    # After the run, the plan reuses every stage.
    code, again, stderr = he_build_release(setup, "--publish", str(setup.publish), "--plan")
    assert code == 0, stderr
    assert {row["action"] for row in again["stages"]} == {"reuse"}
    assert [row["key"] for row in again["stages"]] == [keys[s] for s in ALL_STAGES]


def test_a_rerun_reuses_every_stage_and_publishes_the_same_files(runs: Runs,
                                                                   setup: Setup) -> None:
    assert list(stage_results(runs.first)) == ALL_STAGES
    assert set(stage_results(runs.second).values()) == {"reused"}
    assert runs.second["files"] == runs.first["files"]
    assert runs.first["signed_by"] == runs.second["signed_by"] == FINGERPRINT
    assert [row["key"] for row in runs.second["stages"]] == [
        row["key"] for row in runs.first["stages"]]
    names = [row["name"] for row in runs.first["files"]]
    assert published_files(setup.publish) == sorted(names)
    assert {"SHA256SUMS", "SHA256SUMS.asc", "sbom.spdx.json", "provenance.intoto.json",
            "ovirt-engine-appliance-4.5.0-0.debiantest.ova",
            "ovirt-engine-appliance-4.5.0-0.debiantest.ovf.ova", f"repo/Packages/{RPM}",
            "repo/repodata/repomd.xml", "repo/repodata/repomd.xml.asc",
            "repo/RPM-GPG-KEY-ovirt-appliance", "repo/ovirt-appliance.repo"} <= set(names)
    smoke = next(r for r in runs.first["stages"] if r["stage"] == "smoke")
    report = next(a for a in smoke["artifacts"] if a["name"] == "smoke")
    assert report["file"] == "smoke.json"
    # Each stage's facts, the same whether it ran or was reused.
    facts = {row["stage"]: row["facts"] for row in runs.first["stages"]}
    assert facts == {row["stage"]: row["facts"] for row in runs.second["stages"]}
    assert facts["smoke"] == {"exit_status": 0}
    assert facts["seed"] == {"site": SITE, "fqdn": f"engine.{SITE}.example.com"}
    assert facts["rpm-sign"] == facts["repo"] == {"signed_by": FINGERPRINT}
    assert facts["rpm"] == {"signed_by": None}  # signed by the rpm-sign stage
    assert facts["provenance"] == facts["publish"] == {}
    assert facts["disk"] == {"format": "raw"}
    assert [len(facts[stage]["sha1"]) for stage in ("ova", "ova-ovf")] == [40, 40]
    assert facts["sbom"]["packages"] > 0
    assert {row["gate"]: row["passed"] for row in facts["gates"]["gates"]}["rpmlint"] is True
    # No domain is left behind by the smoke test.
    domains = subprocess.run(["virsh", "-c", "qemu:///system", "list", "--all", "--name"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert f"he-release-smoke-{SITE}" not in domains


def test_sha256sums_and_its_signature_pass_the_real_tools(runs: Runs, setup: Setup,
                                                          tmp_path: Path) -> None:
    done = subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=setup.publish,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    listed = {line.split("  ", 1)[1] for line in (setup.publish / "SHA256SUMS")
              .read_text().splitlines()}
    assert listed == set(published_files(setup.publish)) - {"SHA256SUMS", "SHA256SUMS.asc"}
    verified = gpg_verify(setup.publish / "SHA256SUMS.asc", setup.publish / "SHA256SUMS",
                          setup.publish / "repo" / "RPM-GPG-KEY-ovirt-appliance",
                          tmp_path / "gnupg")
    assert verified.returncode == 0, verified.stderr
    assert f"VALIDSIG {FINGERPRINT}" in verified.stdout


def test_sbom_and_provenance_describe_the_release(runs: Runs, setup: Setup) -> None:
    sbom = json.loads((setup.publish / "sbom.spdx.json").read_text())
    assert sbom["spdxVersion"] == "SPDX-2.3"
    assert len(sbom["packages"]) > 100  # the debian-test image's installed packages
    statement = json.loads((setup.publish / "provenance.intoto.json").read_text())
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    sums = {name: digest for digest, name in (
        line.split("  ", 1) for line in (setup.publish / "SHA256SUMS").read_text().splitlines())}
    # Every published file but the provenance itself and the checksums is a subject.
    assert subjects == {name: digest for name, digest in sums.items()
                        if name != "provenance.intoto.json"}
    parameters = statement["predicate"]["buildDefinition"]["externalParameters"]
    assert parameters["source_date_epoch"] == int(EPOCH)
    assert parameters["smoke"]["site"] == SITE


def test_dnf_installs_the_appliance_with_both_gpg_checks(runs: Runs, setup: Setup,
                                                         tmp_path: Path) -> None:
    repo_file = setup.publish / "repo" / "ovirt-appliance.repo"
    assert f"baseurl = file://{setup.publish}/repo" in repo_file.read_text()
    done = dnf_install(repo_file, tmp_path / "dnf", "ovirt-engine-appliance")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Importing GPG key" in done.stderr
    assert "ovirt-engine-appliance" in installed(tmp_path / "dnf")
    ovas = list((tmp_path / "dnf" / "root" / "usr/share/ovirt-engine-appliance").glob("*.ova"))
    assert len(ovas) == 1


def test_dnf_refuses_a_tampered_rpm(runs: Runs, setup: Setup, tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(setup.publish / "repo", copy)
    rpm = copy / "Packages" / RPM
    with rpm.open("r+b") as handle:  # one byte of the payload
        handle.seek(rpm.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    repo_file = tmp_path / "ovirt-appliance.repo"
    repo_file.write_text((copy / "ovirt-appliance.repo").read_text()
                         .replace(str(setup.publish / "repo"), str(copy)))
    done = dnf_install(repo_file, tmp_path / "dnf", "ovirt-engine-appliance")
    assert done.returncode != 0
    assert "ovirt-engine-appliance" not in installed(tmp_path / "dnf")


def store_of(run: dict[str, Any], cache: Path, stages: Sequence[str] = ALL_STAGES) -> Path:
    """A private store with the entries `run` used for `stages`, as hard links."""
    shared = default_cache_root(os.environ)
    for row in run["stages"]:
        if row["stage"] in stages:
            (cache / row["stage"]).mkdir(parents=True)
            subprocess.run(["cp", "-al", str(shared / row["stage"] / row["key"]),
                            str(cache / row["stage"] / row["key"])], check=True)
    return cache


def test_touching_the_recipe_reruns_exactly_the_dependent_stages(runs: Runs,
                                                                 setup: Setup) -> None:
    recipe = setup.work / "recipe-touched.yaml"
    text = setup.recipe.read_text()
    assert "summary: The oVirt Engine Appliance image" in text
    recipe.write_text(text.replace("summary: The oVirt Engine Appliance image",
                                   "summary: The oVirt Engine Appliance image (touched)"))
    release = write_release(setup.work, recipe, setup.storage, name="release-touched.yaml")
    publish = setup.work / "publish-touched"
    # A store holding only the first run's entries (links): the shared store may already
    # hold what a touched run of another session made.
    cache = store_of(runs.first, setup.work / "touched-cache")
    code, data, stderr = he_build_release(setup, "--publish", str(publish), release=release,
                                          env={**setup.env, "HE_BUILDER_CACHE": str(cache)})
    assert code == 0, stderr
    ran = {stage for stage, result in stage_results(data).items() if result == "ran"}
    # The RPM's summary feeds the RPM and what is made from it; the disk, the OVAs, the seed,
    # the boot smoke test and the SBOM are reused.
    assert ran == {"rpm", "rpm-sign", "gates", "repo", "provenance", "publish"}


def test_two_clean_runs_publish_the_same_bytes(runs: Runs, setup: Setup) -> None:
    """A second store, empty but for the disk stage (the disk's own reproducibility is
    tests/integration/test_appliance_repro.py's), rebuilds every other stage, the boot
    included: every published file is byte-identical, the signatures too (RSA, signature
    time from SOURCE_DATE_EPOCH)."""
    cache = store_of(runs.first, setup.work / "clean-cache", ["disk"])
    first = setup.work / "publish-first"
    shutil.copytree(setup.publish, first)
    code, data, stderr = he_build_release(setup, "--publish", str(setup.publish),
                                          env={**setup.env, "HE_BUILDER_CACHE": str(cache)})
    assert code == 0, stderr
    results = stage_results(data)
    assert results.pop("disk") == "reused"
    assert set(results.values()) == {"ran"}
    # The boot's progress is followed live, line by line, from he-launch.
    assert "smoke: ==> waiting for the guest to report" in stderr
    files = published_files(first)
    assert published_files(setup.publish) == files
    match, mismatch, errors = filecmp.cmpfiles(first, setup.publish, files, shallow=False)
    assert (match, mismatch, errors) == (files, [], [])
    assert data["files"] == runs.first["files"]


def test_a_failed_gate_stops_the_release_and_publishes_nothing(runs: Runs, setup: Setup) -> None:
    """The standard OVA damaged in a private store (a new file: the shared store's link stays
    whole), and a gate option changed so that the gates run again: `he-build ova verify`
    refuses the OVA, the release stops at the gates with exit 7, nothing is published."""
    cache = store_of(runs.first, setup.work / "gate-cache")
    key = next(row["key"] for row in runs.first["stages"] if row["stage"] == "ova-ovf")
    (ova,) = (cache / "ova-ovf" / key).glob("*.ova")
    damaged = bytearray(ova.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # inside the disk image
    ova.unlink()
    ova.write_bytes(bytes(damaged))
    release = setup.work / "release-gate.yaml"
    release.write_text(setup.release.read_text() + "gates:\n  rpmlint_allow: [no-such-check]\n")
    publish = setup.work / "publish-gate"
    publish.mkdir()
    (publish / "SHA256SUMS").write_text("the previous release\n")
    code, data, stderr = he_build_release(setup, "--publish", str(publish), release=release,
                                          env={**setup.env, "HE_BUILDER_CACHE": str(cache)})
    assert code == 7, stderr
    assert data["error"].startswith(
        f"stage gates failed: gate ova-verify-ovf failed: {ova.name}: checksum mismatch"), data
    assert "==> sbom" not in stderr and "==> publish" not in stderr
    assert sorted(p.name for p in publish.iterdir()) == ["SHA256SUMS"]
    assert (publish / "SHA256SUMS").read_text() == "the previous release\n"
    assert [p.name for p in publish.parent.iterdir() if ".partial-" in p.name] == []


# Kill points of the suite's sample (the campaign, 50 random points: python -m bench.release
# --kills 50). The stages' own partials (repo, provenance, publish: each lasts long enough to
# be seen) and the swap itself: strace kills the command on its first renameat2, the exchange
# of the new release tree with the published one. Then the same command again must publish the
# full run's files and leave no partial.
KILLS = {
    "repo": KillPoint("repo", glob="{cache}/repo/.*.partial-*"),
    "provenance": KillPoint("provenance", glob="{cache}/provenance/.*.partial-*"),
    "publish": KillPoint("publish", glob="{cache}/publish/.*.partial-*"),
    "publish-swap": KillPoint("publish-swap", syscall="renameat2", nth=1),
}
REDO_FROM = {"repo": "repo", "provenance": "provenance", "publish": "publish",
             "publish-swap": "publish"}


@pytest.mark.parametrize("name", list(KILLS))
def test_a_release_killed_in_a_stage_recovers_and_publishes_the_same_files(
        runs: Runs, setup: Setup, name: str) -> None:
    first = REDO_FROM[name]
    redo = ALL_STAGES[ALL_STAGES.index(first):]
    cache = store_of(runs.first, setup.work / f"kill-{name}",
                     [s for s in ALL_STAGES if s not in redo])
    point = KILLS[name]
    if point.glob is not None:
        point = dataclasses.replace(point, glob=point.glob.format(cache=cache))
    env = {**setup.env, "HE_BUILDER_CACHE": str(cache)}
    argv = [sys.executable, "-m", "builder.cli.he_build", "release", "--file",
            str(setup.release), "--publish", str(setup.publish), "--json"]
    assert setup.publish.is_dir()  # so the swap is an exchange (renameat2)
    killed = run_with_kill(argv, env, point, timeout_s=900)
    assert killed.killed, f"the run was not killed at {name}: {killed.stderr[-500:]}"
    # Whatever the moment, the publish directory is one whole release.
    whole = subprocess.run(["sha256sum", "--strict", "--quiet", "-c", "SHA256SUMS"],
                           cwd=setup.publish, capture_output=True, text=True, check=False)
    assert whole.returncode == 0, whole.stdout + whole.stderr
    code, data, stderr = he_build_release(setup, "--publish", str(setup.publish), env=env)
    assert code == 0, stderr
    assert data["files"] == runs.first["files"]
    left = [p for root in (cache, setup.publish.parent) for p in root.rglob("*")
            if ".partial-" in p.name or p.name.endswith(".lock")]
    assert left == []
