"""`he-build release` signing with `agent:FINGERPRINT`: the release of
tests/integration/test_release_pipeline.py (its fixtures, its store entries: only the signing
stages and what follows them run again), made with the demo key held unlocked by the agent of
a throwaway operator's home instead of its key file and passphrase. What it publishes is
judged by the same real clients, and is the file-key release's bytes where the key is all that
signs (the RPM, repomd.xml.asc, the public key).

The file-key release may boot its smoke VM (a cold store): run this module under the VM lock,
`flock /work/locks/vm.lock .venv/bin/python -m pytest \
tests/integration/test_release_agent_pipeline.py`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.release import KeyFiles, gpg_verify, rpm_signature_check
from tests.integration import test_release_pipeline as file_key_release
from tests.integration.test_release_agent_key import (
    DEMO_FINGERPRINT,
    OperatorHome,
    left_as_it_was,
    operator_home,
)
from tests.integration.test_release_pipeline import (
    RPM,
    Runs,
    Setup,
    he_build_release,
    published_files,
    stage_results,
    store_of,
)
from tests.integration.test_release_repo import dnf_install, installed

pytestmark = [pytest.mark.integration, pytest.mark.vm]

# The file-key release's fixtures (module scope: made once here, its store entries reused).
setup = file_key_release.setup
runs = file_key_release.runs

# Signed by the key alone: the same bytes whichever way the key is reached. The provenance
# records the release file's signing section, so it and the checksums over it differ.
KEY_ONLY = {f"repo/Packages/{RPM}", "repo/repodata/repomd.xml.asc",
            "repo/RPM-GPG-KEY-ovirt-appliance"}


UNSIGNED = ["disk", "ova", "ova-ovf", "rpm", "seed", "smoke", "gates", "sbom"]


@pytest.fixture(scope="module")
def operator(release_key: KeyFiles) -> Iterator[OperatorHome]:
    with operator_home(release_key) as home:
        yield home


def agent_release(setup: Setup) -> Path:
    """The pipeline test's release file with `agent:DEMO` as the only key, no passphrase."""
    text = setup.release.read_text()
    start, end = text.index("signing:\n"), text.index("smoke:\n")
    path = setup.work / "release-agent.yaml"
    path.write_text(text[:start] + f"signing:\n  key: [agent:{DEMO_FINGERPRINT}]\n"
                    + text[end:])
    return path


def test_a_release_signed_in_the_operators_agent_verifies_like_the_file_key_one(
        runs: Runs, setup: Setup, operator: OperatorHome, tmp_path: Path) -> None:
    release = agent_release(setup)
    publish = setup.work / "publish-agent"
    # The release never sees a passphrase: none is in its environment. A private store with
    # the file-key release's entries of the stages that do not sign (the shared store may
    # hold an agent-signed run already).
    cache = store_of(runs.first, tmp_path / "cache", UNSIGNED)
    env = {k: v for k, v in setup.env.items() if k != "TEST_RELEASE_PASSPHRASE"}
    env.update({"GNUPGHOME": str(operator.home), "HE_BUILDER_CACHE": str(cache)})
    with left_as_it_was(operator):
        code, plan, stderr = he_build_release(setup, "--publish", str(publish), "--plan",
                                              release=release, env=env)
        assert code == 0, stderr
        code, data, stderr = he_build_release(setup, "--publish", str(publish),
                                              release=release, env=env)
        assert code == 0, stderr
    # The signing stages ran; the gates, keyed by the signed RPM's digest, were reused: the
    # agent signed the same RPM bytes as the key file.
    ran = {stage for stage, result in stage_results(data).items() if result == "ran"}
    assert ran == {"rpm-sign", "repo", "provenance", "publish"}
    planned = {row["stage"]: row["key"] for row in plan["stages"]}
    assert planned["rpm-sign"] == next(row["key"] for row in data["stages"]
                                       if row["stage"] == "rpm-sign")

    files = published_files(publish)
    assert files == published_files(setup.publish)
    for name in KEY_ONLY:
        assert (publish / name).read_bytes() == (setup.publish / name).read_bytes(), name
    done = subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=publish,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    key = publish / "repo" / "RPM-GPG-KEY-ovirt-appliance"
    verified = gpg_verify(publish / "SHA256SUMS.asc", publish / "SHA256SUMS", key,
                          tmp_path / "gnupg")
    assert verified.returncode == 0, verified.stderr
    assert f"VALIDSIG {DEMO_FINGERPRINT}" in verified.stdout
    assert rpm_signature_check(publish / "repo" / "Packages" / RPM, key,
                               tmp_path / "rpmdb").endswith("digests signatures OK")
    # dnf with gpgcheck=1 and repo_gpgcheck=1 installs from it.
    installed_by = dnf_install(publish / "repo" / "ovirt-appliance.repo", tmp_path / "dnf",
                               "ovirt-engine-appliance")
    assert installed_by.returncode == 0, installed_by.stdout + installed_by.stderr
    assert "ovirt-engine-appliance" in installed(tmp_path / "dnf")
