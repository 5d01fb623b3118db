"""The fleet playbook against real SSH hosts on this machine.

Three network namespaces on a private bridge (tests/fleet/netns.py), each with its own sshd and
key-only login; Ansible runs in a fourth namespace (the controller), so nothing can leave the
machine. he-launch on the hosts is a STAND-IN (tests/fleet/standin_he_launch.py): no VM is
booted (no nested VMs here), but it consumes the real seed that `he-build seed` rendered on the
controller and prints he-launch's --json result. Four sites: alpha and bravo succeed, charlie's
engine-setup exits 1 (an answer in its seed), delta's host does not exist (unreachable).
The prune after a successful deploy (`he_deploy_prune_images`) is the real he-launch's, on the
hosts' real storage directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.processes import alive
from tests.fixtures.storage import unpacked_image
from tests.fleet.ansible_env import run, tool
from tests.fleet.fleet_run import (
    FleetRun,
    SiteSpec,
    launch_environment,
    left_behind,
    playbook_argv,
    prepare_run,
)
from tests.fleet.netns import PREFIX, Fleet, namespaces, ssh_fleet

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and sshd need root"),
]


def sites_of(fleet: Fleet) -> list[SiteSpec]:
    h1, h2, h3 = fleet.hosts
    return [SiteSpec("alpha", h1.address, labels=("edge",)),
            SiteSpec("bravo", h2.address),
            SiteSpec("charlie", h3.address, engine_setup_exit=1),
            SiteSpec("delta", fleet.unreachable)]


def rendered_instance_ids(run_: FleetRun, scratch: Path) -> dict[str, str]:
    """What `he-build seed` gives for the same inventory (the instance-id derives from the
    seed's content), to check that each host's he-launch read its own site's seed."""
    proc = run([tool("he-build"), "seed", "--all", "--json", "--inventory", str(run_.inventory),
                "--out", str(scratch / "reference-seeds")], run_.env)
    assert proc.returncode == 0, proc.stderr
    return {s["site"]: s["instance_id"] for s in json.loads(proc.stdout)["sites"]}


def summary_of(run_: FleetRun) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((run_.out / "summary.json").read_text())
    document["by_site"] = {row["site"]: row for row in document["sites"]}
    return document


def aged_image(storage: Path, days: int) -> Path:
    """images/KEY/ as he-launch unpacks an appliance (a real qcow2), last used `days` ago."""
    return unpacked_image(storage, f"{days:016x}", used_at=time.time() - days * 86400)


def ansible_payloads(directory: Path) -> set[Path]:
    """AnsiballZ's payload directories in a temporary directory: a module that Ansible's async
    limit SIGKILLs leaves its own there (ansible-core's, not the role's)."""
    return set(directory.glob("ansible_*_payload_*"))


def test_fleet_deploys_in_parallel_and_reports_failed_and_unreachable_sites(
        tmp_path: Path, collections_path: Path) -> None:
    with ssh_fleet(tmp_path / "net", 3) as fleet:
        run_ = prepare_run(tmp_path, fleet, sites_of(fleet), collections=collections_path)
        old_image, recent_image = aged_image(run_.storage, 40), aged_image(run_.storage, 1)
        proc = subprocess.run(playbook_argv(fleet, run_, 4, "-e", "he_deploy_prune_images=true"),
                              env=run_.env, capture_output=True, text=True, check=False,
                              timeout=600)
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0, output  # a site failed: the run says so
        summary = summary_of(run_)
        by_site = summary["by_site"]
        expected_ids = rendered_instance_ids(run_, tmp_path)
        host_of = {spec.name: spec.address for spec in sites_of(fleet)}
        netns_of = {host.address: host.name for host in fleet.hosts}

        assert summary["ok"] is False
        assert summary["counts"] == {"ok": 2, "failed": 1, "unreachable": 1}
        for name in ("alpha", "bravo"):
            row = by_site[name]
            assert (row["status"], row["exit_status"], row["host"]) == ("ok", 0, host_of[name])
            assert set(row["durations"]) == {"prepare", "boot", "setup"}
            result = json.loads(Path(row["result"]).read_text())
            standin = result["launch"]["standin"]
            # Its own seed, read on its own host (namespace), reached over SSH.
            assert standin["instance_id"] == expected_ids[name]
            assert standin["fqdn"] == f"engine.{name}.example.com"
            assert standin["netns"] == netns_of[host_of[name]]
            assert expected_ids[name] in Path(row["console_log"]).read_text()
        # The successful sites pruned the (shared) storage with the real he-launch: the image
        # unused for 40 days went, once, the one used yesterday stayed; the failed site did
        # not prune.
        prunes = [by_site[name]["prune"] for name in ("alpha", "bravo")]
        assert all(p["exit_code"] == 0 and p["error"] is None for p in prunes), prunes
        assert sorted(path for p in prunes for path in p["removed"]) == [str(old_image)]
        assert sum(p["freed"] for p in prunes) > 0
        assert [(p["in_use"], p["kept_recent"]) for p in prunes] == [([], 1), ([], 1)]
        assert not old_image.exists() and (recent_image / "disk.qcow2").is_file()
        assert by_site["charlie"]["prune"] is None and by_site["delta"]["prune"] is None
        charlie = by_site["charlie"]
        assert (charlie["status"], charlie["exit_status"], charlie["stage"]) == \
            ("failed", 1, "launch")
        assert charlie["error"] == "engine-setup exited with 1"
        assert "HE_APPLIANCE_ENGINE_SETUP_FAIL" in Path(charlie["transcript"]).read_text()
        delta = by_site["delta"]
        assert delta["status"] == "unreachable" and fleet.unreachable in delta["error"]

        table = proc.stdout[proc.stdout.index("FLEET SUMMARY"):]
        assert "FLEET SUMMARY (1 failed, 2 ok, 1 unreachable)" in table
        assert "charlie: failed: engine-setup exited with 1" in table
        assert "delta: unreachable: " in table and fleet.unreachable in table
        for name in ("alpha", "bravo"):
            assert any(line.split()[:3] == [name, host_of[name], "ok"]
                       for line in table.splitlines()), table
        assert table.splitlines()[1].split()[-2:] == ["PRUNED", "LOG"], table
        assert "1 image, " in table and "0 images, 0 B (1 kept)" in table, table

        # Secrets: never printed, never in the summary; every seed copy is gone.
        summary_text = (run_.out / "summary.json").read_text()
        for secret in run_.secrets:
            assert secret not in output and secret not in summary_text
        assert left_behind(run_) == []

        # A subset, by label: only that site is deployed and summarized.
        # ... and a prune that fails (libvirt unreachable: it cannot tell which images are in
        # use) leaves the deployed site ok, with the prune's error recorded.
        subset = subprocess.run(
            playbook_argv(fleet, run_, 4, "-e", "he_fleet_sites=edge", "-e",
                          "he_deploy_prune_images=true", "-e", "he_deploy_uri=bogus:///x"),
            env=run_.env, capture_output=True, text=True, check=False, timeout=300)
        assert subset.returncode == 0, subset.stdout + subset.stderr
        assert [row["site"] for row in summary_of(run_)["sites"]] == ["alpha"]
        alpha = summary_of(run_)["by_site"]["alpha"]
        assert (alpha["status"], alpha["prune"]["exit_code"], alpha["prune"]["removed"]) == (
            "ok", 4, [])
        assert alpha["prune"]["error"].startswith("cannot connect to libvirt at bogus:///x")
        assert "alpha: prune failed (exit 4): cannot connect to libvirt at bogus:///x" in \
            subset.stdout, subset.stdout
        assert (recent_image / "disk.qcow2").is_file()
    assert [name for name in namespaces() if name.startswith(PREFIX)] == []


def test_a_stopped_he_launch_is_cleaned_up_as_he_launch_would_have(
        tmp_path: Path, collections_path: Path) -> None:
    """he-launch's own timeouts normally end it; when Ansible's async limit stops it first
    (SIGKILL: no cleanup of its own), the role removes what it left: here its seed copy."""
    machine_tmp = Path(tempfile.gettempdir())
    payloads_before = ansible_payloads(machine_tmp)
    with ssh_fleet(tmp_path / "net", 1) as fleet:
        run_ = prepare_run(tmp_path, fleet, [SiteSpec("echo", fleet.hosts[0].address)],
                           collections=collections_path)
        short = {"he_deploy_boot_timeout": 1, "he_deploy_setup_timeout": 1,
                 "he_deploy_async_margin": 3,
                 "he_deploy_launch_environment": launch_environment(300)}
        copy_of_he_launch = run_.storage / "echo" / "seed.iso"

        def deploy(**more: object) -> dict[str, Any]:
            proc = subprocess.run(
                playbook_argv(fleet, run_, 1, "-e", json.dumps({**short, **more})),
                env=run_.env, capture_output=True, text=True, check=False, timeout=300)
            assert proc.returncode != 0, proc.stdout + proc.stderr
            row: dict[str, Any] = summary_of(run_)["by_site"]["echo"]
            return row

        # With he_deploy_keep_on_failure (he-launch's --keep) nothing is removed: the copy the
        # stopped stand-in made is still there ...
        kept = deploy(he_deploy_keep_on_failure=True)
        assert (kept["status"], kept["stage"]) == ("failed", "launch")
        assert kept["error"].startswith("launch: he-launch did not finish within 5 s")
        assert copy_of_he_launch.exists()
        # ... without it, the role removes it, as he-launch would have.
        cleaned = deploy()
        assert cleaned["error"] == kept["error"]
        assert not copy_of_he_launch.exists()
        assert left_behind(run_) == []
        # The test host's temporary directory is the test's own (its sshd's SetEnv TMPDIR): the
        # stopped module's payload is left there, not in this machine's /tmp.
        host_tmp = fleet.hosts[0].temp_dir
        assert ansible_payloads(host_tmp), f"no module payload in {host_tmp}"
    assert ansible_payloads(machine_tmp) <= payloads_before


def test_test_hosts_are_removed_even_after_a_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), ssh_fleet(tmp_path / "net", 1) as fleet:
        sshd_pids = subprocess.run(["ip", "netns", "pids", fleet.hosts[0].name],
                                   capture_output=True, text=True, check=True).stdout.split()
        assert sshd_pids
        raise RuntimeError("boom")
    assert [name for name in namespaces() if name.startswith(PREFIX)] == []
    for pid in sshd_pids:
        assert not alive(int(pid))


def test_test_hosts_have_no_route_off_the_machine(tmp_path: Path) -> None:
    with ssh_fleet(tmp_path / "net", 1) as fleet:
        for name in (fleet.controller, fleet.hosts[0].name):
            routes = subprocess.run(["ip", "-n", name, "route", "show", "default"],
                                    capture_output=True, text=True, check=True).stdout
            assert routes.strip() == ""
            forwarding = subprocess.run(["ip", "netns", "exec", name, "sysctl", "-n",
                                         "net.ipv4.ip_forward"], capture_output=True,
                                        text=True, check=True).stdout
            assert forwarding.strip() == "0"
        probe = subprocess.run(fleet.in_controller(["python3", "-c",
                               "import socket; socket.create_connection(('192.0.2.1', 22), 2)"]),
                               capture_output=True, text=True, check=False)
        assert probe.returncode != 0 and "unreachable" in probe.stderr.lower()
