"""he-launch boots the demo appliance under libvirt/TCG and returns engine-setup's verdict.

The appliance's engine-setup is the stand-in (no real oVirt engine can exist here); everything
around it is real: the OVA, its manifest, libvirtd, qemu, cloud-init, NetworkManager, the seed,
the channel. The debian-test appliance behaves like oVirt's: NetworkManager manages the network
and cloud-init's networking is disabled, so a static site's network-config is ignored and its
address comes from the seed's NetworkManager profile, brought up by the runner.
Boots are few on purpose (each a minute or more under TCG): every test checks all it can of one
boot.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from lxml import etree

from builder.inventory.load import load_inventory
from builder.inventory.secrets import resolve_secrets
from builder.repro import sha256_file
from builder.seed.iso import write_iso
from builder.seed.master import write_site_seed
from tests.fixtures.appliance import DemoAppliance, demo_appliance
from tests.fixtures.health_page import HEALTHY, health_page
from tests.fixtures.libvirt import domain_state, fresh_domain
from tests.fixtures.signals import INTERRUPTIBLE

pytestmark = pytest.mark.vm
__all__ = ["demo_appliance"]

TCG_TIMEOUTS = ["--boot-timeout", "400", "--setup-timeout", "400"]
STATIC_ADDRESS = "192.0.2.10/24"
INVENTORY = f"""
defaults:
  vcpus: 1
  memory_mib: 1024
  root_password: file:root-password
  admin_password: file:admin-password
sites:
  vmok:
    fqdn: engine.vmok.example.com
    network:
      mode: static
      ipv4: {{address: {STATIC_ADDRESS}, gateway: 192.0.2.1}}
      dns_servers: [192.0.2.53]
  vmfail:
    fqdn: engine.vmfail.example.com
    extra_answers:
      OVESETUP_STANDIN/exitCode: {{type: int, value: 3}}
  vmsigint:
    fqdn: engine.vmsigint.example.com
"""


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("inventory")
    for name, value in (("root-password", "Root-pass-4-tests"),
                        ("admin-password", "Admin-pass-4-tests")):
        (folder / name).write_text(value + "\n")
        (folder / name).chmod(0o600)
    path = folder / "inventory.yaml"
    path.write_text(INVENTORY)
    return path


def seed_iso(inventory: Path, site_name: str, out: Path) -> Path:
    """The site's seed, written by the seed builder (what `he-build seed` writes)."""
    site = load_inventory(inventory).sites[site_name]
    secrets = resolve_secrets(site, base_dir=inventory.parent, env={}, prompt=None)
    return write_site_seed(site, secrets, out, env={"SOURCE_DATE_EPOCH": "0"}).iso


def he_launch(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "builder.cli.he_launch", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def domain_exists(uri: str, name: str) -> bool:
    return domain_state(uri, name) != "absent"


@pytest.fixture
def health_server() -> Iterator[str]:
    """The engine's health page on the loopback (the guest is not reachable by IP)."""
    with health_page([HEALTHY]) as url:
        yield url


def test_a_tampered_ova_is_refused_before_any_domain_exists(
    demo_appliance: DemoAppliance, launch_storage: Path, libvirt_uri: str, tmp_path: Path,
) -> None:
    tampered = tmp_path / "tampered.ova"
    shutil.copyfile(demo_appliance.ova, tampered)
    with tampered.open("r+b") as handle:
        handle.seek(tampered.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    done = he_launch("--appliance", str(tampered), "--no-seed", "--site", "vmtamper",
                     "--no-network", "--uri", libvirt_uri, "--storage", str(launch_storage))
    assert done.returncode == 5, done.stderr
    assert "he-launch: error: checksum mismatch" in done.stderr
    assert "waiting for the guest" not in done.stderr
    assert not domain_exists(libvirt_uri, "he-engine-vmtamper")


def test_success_streams_engine_setup_and_reports_the_static_network(
    demo_appliance: DemoAppliance, launch_storage: Path, libvirt_uri: str,
    isolated_network: str, inventory: Path, tmp_path: Path, health_server: str,
) -> None:
    iso = seed_iso(inventory, "vmok", tmp_path / "seeds")
    name = "he-engine-vmok"
    with fresh_domain(libvirt_uri, name):
        done = he_launch("--appliance", str(demo_appliance.rpm), "--seed", str(iso),
                         "--site", "vmok", "--network", isolated_network, "--uri", libvirt_uri,
                         "--storage", str(launch_storage), "--virt-type", "auto", "--json",
                         "--health-check", "--health-url", health_server, "--health-timeout",
                         "60", *TCG_TIMEOUTS)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["ok"] is True and result["exit_status"] == 0
        assert result["virt_type"] in ("kvm", "qemu") and result["virt_reason"]
        assert result["url"] == "https://engine.vmok.example.com/ovirt-engine/"
        assert result["health"] == "up"
        assert {"prepare", "start", "boot", "setup", "eject", "health"} <= set(result["durations"])
        assert result["seed_ejected"] is True
        # cloud-init's networking is disabled in this appliance: the seed's NetworkManager
        # profile, brought up by the runner, gave the static address, route and DNS.
        network = "\n".join(result["network"])
        assert result["network"][0] == "profile hosted-engine: activated", network
        eth0 = [line for line in result["network"] if f"eth0    inet {STATIC_ADDRESS}" in line]
        assert len(eth0) == 1, network
        assert "dynamic" not in eth0[0], network  # a static address, not a DHCP lease
        assert any(line.startswith("default via 192.0.2.1 dev eth0") for line in
                   result["network"]), network
        assert "nameserver 192.0.2.53" in [line.strip() for line in result["network"]], network
        # The answer file stayed in memory; what cloud-init kept of the seed is gone; the
        # engine's disk holds no copy of the password lines (checked by he-launch).
        assert result["scrub"][0].startswith("answer file read from the seed"), result["scrub"]
        assert result["scrub"][-1] == "cloud-init disabled for later boots"
        assert result["secret_scan"]["copies"] == 0
        assert result["ssh"] == ["no sshd"]  # this appliance has none; the drop-in is tested
        # engine-setup's own output was streamed live and kept in the transcript.
        assert "| [ INFO  ] Execution of setup completed successfully" in done.stderr
        transcript = Path(result["transcript"]).read_text()
        assert "Engine FQDN: engine.vmok.example.com" in transcript
        assert "HE_APPLIANCE_ENGINE_SETUP_RC=0" in transcript
        # The guest's cloud-init accepted the appliance's configuration merged with the seed.
        console = Path(result["console_log"]).read_text(errors="replace")
        assert "Cloud-init v. " in console
        assert [line for line in console.splitlines() if "Invalid cloud-config" in line] == []
        assert result["warnings"] == []
        # The seed (it holds secrets) is ejected and the launcher's copy is gone.
        live = etree.fromstring(subprocess.run(["virsh", "-c", libvirt_uri, "dumpxml", name],
                                               capture_output=True, check=True).stdout)
        assert live.xpath("devices/disk[@device='cdrom']/source/@file") == []
        if result["eject_attempts"] < 3:  # the drive stays unless its removal was needed
            assert live.find("devices/disk[@device='cdrom']") is not None
        inactive = subprocess.run(["virsh", "-c", libvirt_uri, "dumpxml", "--inactive", name],
                                  capture_output=True, check=True).stdout
        assert etree.fromstring(inactive).xpath("devices/disk[@device='cdrom']/source/@file") == []
        assert not (launch_storage / "vmok" / "seed.iso").exists()
        assert iso.exists()  # the operator's own ISO is left alone
        # The guest wrote only its overlay: the unpacked image still matches the OVA.
        for stamp in (launch_storage / "images").glob("*/unpacked.json"):
            recorded = json.loads(stamp.read_text())
            assert sha256_file(stamp.parent / recorded["image"]) == recorded["sha256"]
        # Pruning keeps the image the running domain's overlay backs onto (read through the
        # real libvirtd's XML, and through qemu-img while qemu holds the overlay's lock).
        pruned = he_launch("--prune-images", "--dry-run", "--unused-for", "0", "--json",
                           "--uri", libvirt_uri, "--storage", str(launch_storage))
        assert pruned.returncode == 0, pruned.stderr
        overlay = launch_storage / "vmok" / "engine-overlay.qcow2"
        users = {Path(item["path"]).name: item["users"]
                 for item in json.loads(pruned.stdout)["in_use"]}
        backing = json.loads(subprocess.run(
            ["qemu-img", "info", "-U", "--output=json", str(overlay)], capture_output=True,
            check=True, text=True).stdout)["backing-filename"]
        # (Other tests' overlays in the same storage may back onto it too.)
        assert f"{overlay} (domain {name})" in users.get(Path(backing).parent.name, []), users
        # A second launch for the site refuses while its domain exists.
        again = he_launch("--appliance", str(demo_appliance.rpm), "--seed", str(iso),
                          "--site", "vmok", "--no-network", "--uri", libvirt_uri,
                          "--storage", str(launch_storage))
        assert again.returncode == 2
        assert "already exists" in again.stderr and "--replace" in again.stderr


def test_a_failing_engine_setup_exit_code_is_returned_as_is(
    demo_appliance: DemoAppliance, launch_storage: Path, libvirt_uri: str, inventory: Path,
) -> None:
    name = "he-engine-vmfail"
    with fresh_domain(libvirt_uri, name):
        done = he_launch("--appliance", str(demo_appliance.ova), "--inventory", str(inventory),
                         "--site", "vmfail", "--no-network", "--uri", libvirt_uri,
                         "--storage", str(launch_storage), "--virt-type", "qemu",
                         *TCG_TIMEOUTS)
        assert done.returncode == 3, done.stderr
        assert "engine-setup failed with exit status 3" in done.stdout
        assert "| [ ERROR ] Execution of setup failed (stand-in exit code 3)" in done.stderr
        assert not domain_exists(libvirt_uri, name)
        workdir = launch_storage / "vmfail"
        assert "HE_APPLIANCE_ENGINE_SETUP_FAIL" in (workdir / "engine-setup.log").read_text()
        assert (workdir / "console.log").stat().st_size > 0
        assert not (workdir / "seed").exists()  # rendered seed (secrets) removed


def test_a_guest_that_never_reports_hits_the_boot_timeout(
    demo_appliance: DemoAppliance, launch_storage: Path, libvirt_uri: str,
) -> None:
    name = "he-engine-vmsilent"
    with fresh_domain(libvirt_uri, name):
        done = he_launch("--appliance", str(demo_appliance.ova), "--no-seed", "--site",
                         "vmsilent", "--no-network", "--uri", libvirt_uri, "--storage",
                         str(launch_storage), "--virt-type", "qemu", "--boot-timeout", "40",
                         "--json")
        assert done.returncode == 21, done.stderr
        assert "boot timeout" in done.stderr
        assert json.loads(done.stdout)["exit_code"] == 21
        assert not domain_exists(libvirt_uri, name)
        assert (launch_storage / "vmsilent" / "console.log").exists()


def test_ctrl_c_leaves_no_domain_behind(
    demo_appliance: DemoAppliance, launch_storage: Path, libvirt_uri: str, inventory: Path,
) -> None:
    name = "he-engine-vmsigint"
    with fresh_domain(libvirt_uri, name):
        proc = subprocess.Popen(
            [*INTERRUPTIBLE, sys.executable, "-m", "builder.cli.he_launch",
             "--appliance", str(demo_appliance.ova),
             "--inventory", str(inventory), "--site", "vmsigint", "--no-network", "--uri",
             libvirt_uri, "--storage", str(launch_storage), "--virt-type", "qemu", *TCG_TIMEOUTS],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 300
            while not domain_exists(libvirt_uri, name):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the domain never appeared"
                time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=120)
            assert proc.returncode == 130, stderr
            assert "interrupted" in stderr
            assert not domain_exists(libvirt_uri, name)
            assert not (launch_storage / "vmsigint" / "seed").exists()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


CHANNEL = "/dev/virtio-ports/org.ovirt.hosted-engine-setup.0"
# Hand-made seeds for the two endings the stand-in engine-setup cannot produce. `bootcmd` runs
# early in cloud-init's first stage, so these guests report sooner than a full seed's runcmd.
LOST_GUESTS = {
    "channel-closed": ("sleep 2; poweroff -f", 23,
                       "the report channel closed without an exit status"),
    "setup-timeout": ("sleep 3600", 22, "(setup timeout)"),
}


def hand_made_seed(out: Path, site: str, command: str) -> Path:
    """A NoCloud seed (the project's ISO writer) whose guest says one line, then `command`."""
    line = f"echo HE_APPLIANCE_NETWORK {site}-guest > {CHANNEL}; {command}"
    user_data = yaml.safe_dump({"bootcmd": [["sh", "-c", line]]})
    meta_data = yaml.safe_dump({"instance-id": out.stem, "local-hostname": "lost"})
    iso = out / "seed.iso"
    out.mkdir(parents=True, exist_ok=True)
    write_iso(iso, [("user-data", f"#cloud-config\n{user_data}".encode()),
                    ("meta-data", meta_data.encode())], epoch=0)
    return iso


@pytest.mark.parametrize("ending", sorted(LOST_GUESTS))
def test_a_guest_that_stops_or_hangs_after_reporting_has_its_own_exit_code(
    demo_appliance: DemoAppliance, launch_storage: Path, libvirt_uri: str, tmp_path: Path,
    ending: str,
) -> None:
    command, code, message = LOST_GUESTS[ending]
    site = f"vm{ending.replace('-', '')}"
    name = f"he-engine-{site}"
    iso = hand_made_seed(tmp_path / site, site, command)
    with fresh_domain(libvirt_uri, name):
        done = he_launch("--appliance", str(demo_appliance.ova), "--seed", str(iso), "--site",
                         site, "--no-network", "--uri", libvirt_uri, "--storage",
                         str(launch_storage), "--virt-type", "qemu", "--boot-timeout", "400",
                         "--setup-timeout", "20", "--json")
        assert done.returncode == code, done.stderr
        errors = [ln for ln in done.stderr.splitlines() if ln.startswith("he-launch: error:")]
        assert len(errors) == 1 and message in errors[0], done.stderr
        failure = json.loads(done.stdout)
        assert failure["exit_code"] == code and failure["network"] == [f"{site}-guest"]
        assert not domain_exists(libvirt_uri, name)
        transcript = (launch_storage / site / "engine-setup.log").read_text()
        assert "HE_APPLIANCE_NETWORK" in transcript
        assert (launch_storage / site / "console.log").stat().st_size > 0
