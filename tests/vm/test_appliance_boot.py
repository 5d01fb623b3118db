"""The debian-test disk boots under BIOS and under UEFI (OVMF), and its network behaves like
oVirt's appliance: cloud-init leaves it alone, NetworkManager runs DHCP on a NIC without a
profile, and a keyfile written by the seed and activated before engine-setup is what applies.

Two boots of the same disk (each a few minutes under TCG), each checking all it can. The DHCP
server is busybox's udhcpd in a network namespace on the test's own isolated network (no
<forward>, no <ip>): the guest reaches nothing but it. The domain XML for UEFI is written here
(Debian's OVMF as loader, a private variable store); the engine-setup the runner starts is the
appliance's stand-in (no real engine can exist here).
"""

from __future__ import annotations

import ipaddress
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from builder.launch.vm import NicChoice
from builder.repro import stable_mac
from builder.seed import protocol, runner
from builder.seed.iso import write_iso
from tests.fixtures.appliance import debian_test_disk
from tests.fixtures.boot import OVMF_CODE, Firmware, GuestRun, boot_and_report

pytestmark = pytest.mark.vm
__all__ = ["debian_test_disk"]

NETWORK = "he-test-h3a-dhcp"
BRIDGE = "hetesth3a0"
NAMESPACE = "he-h3a-dhcp"
VETH_HOST, VETH_NS = "hh3a-br", "hh3a-ns"
SERVER = "198.51.100.1/24"
POOL = ("198.51.100.100", "198.51.100.150")
DHCP_DNS, DHCP_DOMAIN = "198.51.100.53", "dhcp.h3a.example.test"
IGNORED_STATIC = "198.51.100.77/24"  # in the seed's network-config, which must not apply
KEYFILE = "/etc/NetworkManager/system-connections/he-static.nmconnection"
STATIC = "192.0.2.20/24"
STATIC_GATEWAY, STATIC_DNS, STATIC_SEARCH = "192.0.2.1", "192.0.2.53", "static.h3a.example.test"
FACT = "HE_H3A_FACT"
# What the guest says about itself before the runner reports its network and runs engine-setup.
FACTS_SCRIPT = f"""
nm-online -s -q -t 120 || true
exec >{protocol.PORT_PATH}
fact() {{ printf '{FACT} %s=%s\\n' "$1" "$2"; }}
if [ -d /sys/firmware/efi ]; then fact firmware uefi; else fact firmware bios; fi
fact networkmanager "$(systemctl is-active NetworkManager)"
fact nmcli "$(command -v nmcli)"
fact connections "$(nmcli -t -f NAME,TYPE,DEVICE connection show --active | tr '\\n' ' ')"
fact cloudinit_network "$(grep -c 'network config is disabled by system_cfg' \\
    /var/log/cloud-init.log)"
fact rendered "$(ls /etc/systemd/network /etc/network/interfaces.d \\
    /etc/NetworkManager/system-connections 2>/dev/null | grep -c cloud-init)"
"""
ANSWERS = "[environment:default]\nOVESETUP_CONFIG/fqdn=str:engine.h3a.example.test\n"


@dataclass(frozen=True)
class Report:
    """A boot's channel lines, split into the facts and the runner's network report."""

    run: GuestRun

    def fact(self, name: str) -> str:
        prefix = f"{FACT} {name}="
        found = [line[len(prefix):] for line in self.run.lines if line.startswith(prefix)]
        assert len(found) == 1, self.run.lines
        return found[0].strip()

    @property
    def network(self) -> list[str]:
        return self.run.report.network

    def addresses(self, device: str) -> list[str]:
        return [line for line in self.network if f"{device}    inet " in line]


def run_ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def virsh(uri: str, *args: str, check: bool = False) -> None:
    subprocess.run(["virsh", "-c", uri, *args], check=check, capture_output=True)


def remove_dhcp_site(uri: str) -> None:
    subprocess.run(["ip", "netns", "delete", NAMESPACE], capture_output=True, check=False)
    subprocess.run(["ip", "link", "delete", VETH_HOST], capture_output=True, check=False)
    virsh(uri, "net-destroy", NETWORK)
    virsh(uri, "net-undefine", NETWORK)


def udhcpd_config(folder: Path) -> Path:
    config = folder / "udhcpd.conf"
    config.write_text("\n".join([
        f"start {POOL[0]}", f"end {POOL[1]}", f"interface {VETH_NS}",
        f"lease_file {folder / 'leases'}", f"pidfile {folder / 'udhcpd.pid'}",
        "option subnet 255.255.255.0", f"option dns {DHCP_DNS}", f"option domain {DHCP_DOMAIN}",
        "option lease 3600", "",
    ]))
    (folder / "leases").touch()
    return config


@pytest.fixture(scope="module")
def dhcp_network(libvirt_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An isolated libvirt network whose only other member is a DHCP server in a namespace."""
    if shutil.which("busybox") is None:
        pytest.fail("busybox is not installed: run scripts/setup.sh")
    folder = tmp_path_factory.mktemp("dhcp")
    remove_dhcp_site(libvirt_uri)
    xml = folder / "net.xml"
    xml.write_text(f"<network><name>{NETWORK}</name><bridge name='{BRIDGE}'/></network>")
    virsh(libvirt_uri, "net-define", str(xml), check=True)
    virsh(libvirt_uri, "net-start", NETWORK, check=True)
    run_ip("netns", "add", NAMESPACE)
    run_ip("link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS)
    run_ip("link", "set", VETH_NS, "netns", NAMESPACE)
    run_ip("link", "set", VETH_HOST, "master", BRIDGE, "up")
    run_ip("-n", NAMESPACE, "addr", "add", SERVER, "dev", VETH_NS)
    run_ip("-n", NAMESPACE, "link", "set", VETH_NS, "up")
    server = subprocess.Popen(["ip", "netns", "exec", NAMESPACE, "busybox", "udhcpd", "-f",
                               str(udhcpd_config(folder))],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        assert server.poll() is None, "udhcpd did not start"
        yield NETWORK
    finally:
        server.terminate()
        server.wait(timeout=10)
        remove_dhcp_site(libvirt_uri)


def seed(folder: Path, *, before_runner: list[str], write_files: list[dict[str, str]],
         network_config: dict[str, object] | None = None) -> Path:
    """A NoCloud seed: extra files, commands, then the project's own engine-setup runner."""
    files = [*write_files,
             {"path": runner.SEED_ANSWERS, "content": ANSWERS, "permissions": "0600"},
             {"path": runner.RUNNER_PATH, "content": runner.render_runner(),
              "permissions": "0700"}]
    commands = [["sh", "-c", command] for command in [*before_runner, FACTS_SCRIPT]]
    user_data = {"write_files": files, "runcmd": [*commands, ["/bin/sh", runner.RUNNER_PATH]]}
    documents = [("user-data", ("#cloud-config\n" + yaml.safe_dump(user_data)).encode()),
                 ("meta-data", yaml.safe_dump({"instance-id": folder.name,
                                               "local-hostname": "h3a"}).encode())]
    if network_config is not None:
        documents.append(("network-config", yaml.safe_dump(network_config).encode()))
    folder.mkdir(parents=True, exist_ok=True)
    iso = folder / "seed.iso"
    write_iso(iso, documents, epoch=0)
    return iso


def boot(uri: str, disk: Path, iso: Path, storage: Path, firmware: Firmware,
         network: str) -> Report:
    name = f"he-h3a-boot-{firmware}"
    run = boot_and_report(uri, name=name, disk=disk, seed=iso, firmware=firmware,
                          work=storage / name, nic=NicChoice(network=network),
                          mac=stable_mac(name), timeout_s=900)
    assert run.report.final_exit_code() == 0, (run.lines, run.console[-3000:])
    # The guest's cloud-init validated the image's configuration merged with this seed's.
    assert "Cloud-init v. " in run.console
    assert [line for line in run.console.splitlines() if "Invalid cloud-config" in line] == []
    return Report(run)


def test_bios_boot_gets_dhcp_from_networkmanager_and_ignores_cloud_init_networking(
    debian_test_disk: Path, libvirt_uri: str, launch_storage: Path, dhcp_network: str,
    tmp_path: Path,
) -> None:
    network_config = {"version": 2, "ethernets": {"eth0": {"addresses": [IGNORED_STATIC]}}}
    iso = seed(tmp_path / "dhcp", before_runner=[], write_files=[],
               network_config=network_config)
    report = boot(libvirt_uri, debian_test_disk, iso, launch_storage, "bios", dhcp_network)
    assert report.fact("firmware") == "bios"
    assert report.fact("networkmanager") == "active"
    assert report.fact("nmcli") == "/usr/bin/nmcli"
    # cloud-init read the seed's network-config, said it is disabled, and wrote no config.
    assert report.fact("cloudinit_network") != "0"
    assert report.fact("rendered") == "0"
    ignored = str(ipaddress.ip_interface(IGNORED_STATIC).ip)
    assert not any(ignored in line for line in report.network), report.network
    # NetworkManager's automatic profile leased an address from the pool, with its DNS.
    eth0 = report.addresses("eth0")
    assert len(eth0) == 1 and "dynamic" in eth0[0], report.network
    leased = ipaddress.IPv4Interface(eth0[0].split()[3]).ip
    assert ipaddress.IPv4Address(POOL[0]) <= leased <= ipaddress.IPv4Address(POOL[1]), eth0
    assert "Wired connection 1:802-3-ethernet:eth0" in report.fact("connections")
    resolv = [line.strip() for line in report.network]
    assert f"nameserver {DHCP_DNS}" in resolv and f"search {DHCP_DOMAIN}" in resolv, resolv


def static_keyfile() -> str:
    """What a seed writes for a static site (NetworkManager's keyfile format)."""
    return "\n".join([
        "[connection]", "id=he-static", "type=ethernet", "interface-name=eth0",
        "autoconnect-priority=100", "", "[ipv4]", "method=manual",
        f"address1={STATIC},{STATIC_GATEWAY}", f"dns={STATIC_DNS};",
        f"dns-search={STATIC_SEARCH};", "", "[ipv6]", "method=disabled", "",
    ])


def test_uefi_boot_applies_a_seeded_networkmanager_keyfile(
    debian_test_disk: Path, libvirt_uri: str, launch_storage: Path, dhcp_network: str,
    tmp_path: Path,
) -> None:
    assert OVMF_CODE.is_file(), "install the Debian package ovmf"
    keyfile = {"path": KEYFILE, "content": static_keyfile(), "permissions": "0600"}
    activate = f"nmcli connection reload && nmcli connection up {shlex.quote('he-static')}"
    iso = seed(tmp_path / "static", before_runner=[activate], write_files=[keyfile])
    report = boot(libvirt_uri, debian_test_disk, iso, launch_storage, "uefi", dhcp_network)
    assert report.fact("firmware") == "uefi"
    assert report.fact("networkmanager") == "active"
    assert "he-static:802-3-ethernet:eth0" in report.fact("connections")
    # The keyfile's address replaced the DHCP lease the NIC would otherwise have.
    eth0 = report.addresses("eth0")
    assert len(eth0) == 1 and f"inet {STATIC}" in eth0[0], report.network
    assert "dynamic" not in eth0[0], eth0
    assert any(line.startswith(f"default via {STATIC_GATEWAY} dev eth0")
               for line in report.network), report.network
    resolv = [line.strip() for line in report.network]
    assert f"nameserver {STATIC_DNS}" in resolv and f"search {STATIC_SEARCH}" in resolv, resolv
    assert f"nameserver {DHCP_DNS}" not in resolv, resolv
