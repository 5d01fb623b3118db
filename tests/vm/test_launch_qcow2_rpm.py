"""he-launch boots oVirt 4.5.7's kind of appliance RPM (a plain qcow2 with our metadata JSON)
under libvirt/TCG: memory, vCPUs and firmware come from the metadata, the seed and the channel
work as with the OVA RPM. The engine-setup inside is the debian-test stand-in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from builder.inventory.load import load_inventory
from builder.inventory.secrets import resolve_secrets
from builder.seed.master import write_site_seed
from tests.fixtures.appliance import DemoQcow2Rpm
from tests.fixtures.libvirt import fresh_domain

pytestmark = pytest.mark.vm

SITE = "vmqcow2"
INVENTORY = f"""
defaults:
  vcpus: 1
  memory_mib: 1024
  root_password: file:root-password
  admin_password: file:admin-password
sites:
  {SITE}:
    fqdn: engine.{SITE}.example.com
"""


def seed_iso(tmp_path: Path) -> Path:
    for name, value in (("root-password", "Root-pass-4-tests"),
                        ("admin-password", "Admin-pass-4-tests")):
        (tmp_path / name).write_text(value + "\n")
        (tmp_path / name).chmod(0o600)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY)
    site = load_inventory(inventory).sites[SITE]
    secrets = resolve_secrets(site, base_dir=tmp_path, env={}, prompt=None)
    return write_site_seed(site, secrets, tmp_path / "seeds",
                           env={"SOURCE_DATE_EPOCH": "0"}).iso


def console_tail(storage: Path, count: int = 60) -> str:
    """The end of the guest's serial console, which he-launch keeps after a failed boot."""
    log = storage / SITE / "console.log"
    if not log.is_file():
        return f"(no {log})"
    lines = log.read_text(errors="replace").splitlines()[-count:]
    return "\n".join([f"--- {log}, last {len(lines)} lines ---", *lines])


def test_the_qcow2_rpm_boots_and_reports(demo_qcow2_rpm: DemoQcow2Rpm, launch_storage: Path,
                                         libvirt_uri: str, tmp_path: Path) -> None:
    iso = seed_iso(tmp_path)
    name = f"he-engine-{SITE}"
    with fresh_domain(libvirt_uri, name):
        done = subprocess.run(
            [sys.executable, "-m", "builder.cli.he_launch", "--appliance", str(demo_qcow2_rpm.rpm),
             "--seed", str(iso), "--site", SITE, "--no-network", "--uri", libvirt_uri,
             "--storage", str(launch_storage), "--json", "--boot-timeout", "400",
             "--setup-timeout", "400"],
            capture_output=True, text=True, timeout=900, check=False)
        assert done.returncode == 0, f"{done.stderr}\n{console_tail(launch_storage)}"
        result = json.loads(done.stdout)
        assert result["ok"] is True and result["exit_status"] == 0
        assert "| [ INFO  ] Execution of setup completed successfully" in done.stderr
        domain = subprocess.run(["virsh", "-c", libvirt_uri, "dumpxml", name],
                                capture_output=True, text=True, check=True).stdout
        # Memory (KiB) and vCPUs from the RPM's metadata JSON (1024 MiB, 2).
        assert "<memory unit='KiB'>1048576</memory>" in domain
        assert ">2</vcpu>" in domain
