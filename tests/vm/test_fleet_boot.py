"""The fleet playbook deploys one site with the REAL he-launch, which boots the demo appliance
under libvirt/TCG on the test host (tests/fleet/test_fleet_deploy.py runs a stand-in: no VM).

One SSH test host in a network namespace (tests/fleet/netns.py, under a prefix of its own, as
this module runs beside the fleet's), Ansible in the controller namespace: the role copies the
OVA and the seed that `he-build seed` rendered on the controller, starts he-launch with the
command line it builds, waits for it, and records its result. The guest has no NIC
(he-launch's --no-network); its engine-setup is the debian-test stand-in (no real oVirt engine
can exist here). One boot, a few minutes under TCG: the test checks all it can of it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.appliance import DemoAppliance, demo_appliance
from tests.fixtures.libvirt import domain_state, fresh_domain
from tests.fleet.ansible_env import tool
from tests.fleet.fleet_run import FleetRun, SiteSpec, left_behind, playbook_argv, prepare_run
from tests.fleet.netns import namespaces, ssh_fleet

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and sshd need root"),
]
__all__ = ["demo_appliance"]

SITE = "fleetvm"
PREFIX = "he6boot"
TIMEOUT = 400  # he-launch's boot and setup timeouts, each (TCG)


def use_real_he_launch(run_: FleetRun, appliance: Path, uri: str, storage: Path) -> FleetRun:
    """The run prepare_run made for the stand-in, made for the real he-launch and a small VM."""
    variables = json.loads(run_.extra_vars.read_text())
    variables.update({
        "he_deploy_he_launch": tool("he-launch"),
        "he_deploy_appliance_file": str(appliance),
        "he_deploy_uri": uri,
        "he_deploy_storage": str(storage),
        "he_deploy_boot_timeout": TIMEOUT,
        "he_deploy_setup_timeout": TIMEOUT,
        "he_deploy_poll_interval": 5,
        "he_deploy_launch_environment": {},
    })
    run_.extra_vars.write_text(json.dumps(variables))
    run_.inventory.write_text("defaults:\n  vcpus: 1\n  memory_mib: 1024\n"
                              + run_.inventory.read_text())
    return dataclasses.replace(run_, storage=storage)


def test_the_role_deploys_a_site_with_the_real_he_launch(
    demo_appliance: DemoAppliance, libvirt_uri: str, launch_storage: Path, tmp_path: Path,
) -> None:
    with ssh_fleet(tmp_path / "net", 1, prefix=PREFIX) as fleet, \
            fresh_domain(libvirt_uri, f"he-engine-{SITE}") as domain:
        run_ = use_real_he_launch(
            prepare_run(tmp_path, fleet, [SiteSpec(SITE, fleet.hosts[0].address)]),
            demo_appliance.ova, libvirt_uri, launch_storage / "fleet")
        proc = subprocess.run(playbook_argv(fleet, run_, 1), env=run_.env, capture_output=True,
                              text=True, check=False, timeout=3 * TIMEOUT)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output
        summary: dict[str, Any] = json.loads((run_.out / "summary.json").read_text())
        assert summary["ok"] is True and summary["counts"] == {"ok": 1}, summary
        row = summary["sites"][0]
        assert (row["site"], row["status"], row["exit_status"]) == (SITE, "ok", 0), row
        assert {"prepare", "start", "boot", "setup", "eject"} <= set(row["durations"]), row
        # The result is the real he-launch's (no stand-in), for this site's seed.
        launch = json.loads(Path(row["result"]).read_text())["launch"]
        assert "standin" not in launch
        assert launch["ok"] is True and launch["domain"] == domain
        assert launch["virt_type"] in ("kvm", "qemu") and launch["seed_ejected"] is True
        assert launch["secret_scan"]["copies"] == 0
        transcript = Path(row["transcript"]).read_text()
        assert f"Engine FQDN: engine.{SITE}.example.com" in transcript
        assert "HE_APPLIANCE_ENGINE_SETUP_RC=0" in transcript
        assert "Cloud-init v. " in Path(row["console_log"]).read_text(errors="replace")
        # The engine VM runs on; no seed copy is left (the role's, he-launch's, the
        # controller's), and no secret was printed or recorded.
        assert domain_state(libvirt_uri, domain) == "running"
        assert left_behind(run_) == []
        recorded = (run_.out / "summary.json").read_text() + Path(row["result"]).read_text()
        for secret in run_.secrets:
            assert secret not in output and secret not in recorded
    assert [name for name in namespaces() if name.startswith(PREFIX)] == []
