"""A whole deploy under UEFI, on DHCP, with `umask 000` and marker passwords: afterwards no
cleartext secret is anywhere but where it is meant to be, and no file is open to other users.

One boot (a few minutes under TCG) of the debian-test appliance with OVMF (its disk boots under
both firmwares); its engine-setup is the stand-in (no real engine can exist here), everything
else is real: he-build seed, he-launch, libvirtd, qemu, cloud-init, NetworkManager, the runner.
The site uses DHCP with its fixed MAC: the seed's NetworkManager profile leases an address from
busybox's udhcpd, the only other member of the test's isolated network (the fixture of
tests/vm/test_appliance_boot.py).

The only places a cleartext password may be, by design: the site's seed directory written by
`he-build seed` (`heanswers.conf` and `seed.iso`, both 0600 in a 0700 directory), and only the
admin password. The root password exists only as its SHA-512 crypt hash: its cleartext must be
nowhere. Everything else is searched for both: every file under the seed outputs and the launch
storage (the engine's overlay included, byte for byte), what he-build and he-launch print with
--json and --debug, the live and defined domain XML, and libvirt's qemu log of the domain.
"""

from __future__ import annotations

import grp
import ipaddress
import json
import mmap
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterable
from pathlib import Path

import pytest
from lxml import etree

from tests.fixtures.appliance import DemoAppliance, demo_appliance
from tests.fixtures.libvirt import fresh_domain
from tests.vm.test_appliance_boot import DHCP_DNS, POOL, dhcp_network

pytestmark = pytest.mark.vm
__all__ = ["demo_appliance", "dhcp_network"]

SITE = "vmleak"
DOMAIN = f"he-engine-{SITE}"
QEMU_LOG = Path("/var/log/libvirt/qemu") / f"{DOMAIN}.log"


def run(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    """A command of ours, started with umask 000: every mode it sets must be explicit."""
    return subprocess.run(argv, capture_output=True, timeout=1200, check=False, umask=0)


def files_under(*roots: Path) -> Iterable[Path]:
    for root in roots:
        for path in [root, *root.rglob("*")]:
            if path.is_file() and not path.is_symlink():
                yield path


def holds(path: Path, marker: bytes) -> bool:
    if path.stat().st_size == 0:
        return False
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return m.find(marker) >= 0


def write_inventory(folder: Path, root: str, admin: str) -> Path:
    for name, value in (("root-password", root), ("admin-password", admin)):
        (folder / name).write_text(value + "\n")
        (folder / name).chmod(0o600)
    inventory = folder / "inventory.yaml"
    inventory.write_text(f"""
sites:
  {SITE}:
    fqdn: engine.{SITE}.example.com
    vcpus: 1
    memory_mib: 1024
    root_password: file:root-password
    admin_password: file:admin-password
    network: {{mode: dhcp}}
""")
    return inventory


def test_a_uefi_deploy_leaves_no_cleartext_secret_and_no_file_open_to_others(
    demo_appliance: DemoAppliance, launch_storage: Path, libvirt_uri: str, dhcp_network: str,
    tmp_path: Path,
) -> None:
    root_pw = f"RootLeak-{uuid.uuid4().hex}".encode()
    admin_pw = f"AdminLeak-{uuid.uuid4().hex}".encode()
    inventory = write_inventory(tmp_path, root_pw.decode(), admin_pw.decode())
    seeds = tmp_path / "seeds"
    built = run([sys.executable, "-m", "builder.cli.he_build", "seed", "--inventory",
                 str(inventory),
                 "--site", SITE, "--out", str(seeds), "--json", "--debug"])
    assert built.returncode == 0, built.stderr
    with fresh_domain(libvirt_uri, DOMAIN):
        launched = run([sys.executable, "-m", "builder.cli.he_launch", "--appliance",
                        str(demo_appliance.rpm), "--inventory", str(inventory), "--site", SITE,
                        "--network", dhcp_network, "--uri", libvirt_uri, "--storage",
                        str(launch_storage), "--virt-type", "qemu", "--firmware", "uefi",
                        "--boot-timeout", "600", "--setup-timeout", "600", "--json", "--debug"])
        assert launched.returncode == 0, launched.stderr.decode()[-4000:]
        result = json.loads(launched.stdout)
        xml = [subprocess.run(["virsh", "-c", libvirt_uri, "dumpxml", *flag, DOMAIN],
                              capture_output=True, check=True).stdout
               for flag in ([], ["--inactive"])]
        check_uefi_boot(result, xml[0], launch_storage)
        check_the_dhcp_lease(result)
        check_the_guest_scrubbed(result)
        leaks = secrets_found(
            [root_pw, admin_pw], files=files_under(seeds, launch_storage),
            texts={"he-build stdout": built.stdout, "he-build stderr": built.stderr,
                   "he-launch stdout": launched.stdout, "he-launch stderr": launched.stderr,
                   "live domain XML": xml[0], "defined domain XML": xml[1],
                   "libvirt's qemu log": QEMU_LOG.read_bytes()})
        # OUT/SITE is a link into the published generation: both names reach the same files.
        site_seed = (seeds / SITE).resolve()
        intended = {(site_seed / "heanswers.conf", admin_pw), (site_seed / "seed.iso", admin_pw)}
        assert real_places(leaks) == {(str(path), marker) for path, marker in intended}, leaks
        for path, _ in intended:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(site_seed.stat().st_mode) == 0o700
        check_modes(launch_storage, launch_storage / SITE)


def real_places(found: list[tuple[str, bytes]]) -> set[tuple[str, bytes]]:
    """Each file found under its real path (texts such as a log keep their name)."""
    return {(str(Path(where).resolve()) if where.startswith("/") else where, marker)
            for where, marker in found}


def secrets_found(markers: list[bytes], *, files: Iterable[Path],
                  texts: dict[str, bytes]) -> list[tuple[str, bytes]]:
    found = [(str(path), marker) for path in files for marker in markers if holds(path, marker)]
    found += [(name, marker) for name, text in texts.items() for marker in markers
              if marker in text]
    return found


def check_uefi_boot(result: dict[str, object], live_xml: bytes, storage: Path) -> None:
    """OVMF booted the guest (its loader in the live XML, EDK II named by the kernel) and
    engine-setup's status came back over the channel."""
    assert result["firmware"] == "uefi" and result["exit_status"] == 0
    os_el = etree.fromstring(live_xml).find("os")
    assert os_el is not None
    assert "OVMF" in (os_el.findtext("loader") or "")
    assert os_el.findtext("nvram") == str(storage / SITE / "nvram.fd")
    console = (storage / SITE / "console.log").read_text(errors="replace")
    assert "EDK II" in console, console[-2000:]


def check_the_dhcp_lease(result: dict[str, object]) -> None:
    """The seed's profile (DHCP on the site's MAC) leased an address from the test's server."""
    network = result["network"]
    assert isinstance(network, list) and network[0] == "profile hosted-engine: activated"
    eth0 = [line for line in network if "eth0    inet " in line]
    assert len(eth0) == 1 and "dynamic" in eth0[0], network
    leased = ipaddress.IPv4Interface(eth0[0].split()[3]).ip
    assert ipaddress.IPv4Address(POOL[0]) <= leased <= ipaddress.IPv4Address(POOL[1]), eth0
    assert f"nameserver {DHCP_DNS}" in [line.strip() for line in network], network


def check_the_guest_scrubbed(result: dict[str, object]) -> None:
    scrub = result["scrub"]
    assert isinstance(scrub, list)
    assert scrub[0] == ("answer file read from the seed into /run/he-engine-setup/"
                        "heanswers.conf (memory)"), scrub
    assert any(line.endswith("/obj.pkl") and line.startswith("removed ") for line in scrub)
    assert scrub[-1] == "cloud-init disabled for later boots"
    scan = result["secret_scan"]
    assert isinstance(scan, dict) and scan["copies"] == 0 and scan["bytes_read"] > 0


def check_modes(storage: Path, site: Path) -> None:
    """Nothing he-launch made is open to other users, and qemu's group may only pass."""
    qemu_gid = grp.getgrnam("libvirt-qemu").gr_gid
    own = [storage, *[p for d in ("images", "rpms") for p in [storage / d,
                                                             *(storage / d).rglob("*")]],
           site, *site.rglob("*")]
    loose = [f"{p} {stat.S_IMODE(p.stat().st_mode):o}" for p in own
             if p.stat().st_mode & (stat.S_IRWXO | stat.S_IWGRP)]
    assert loose == []
    for directory in (storage, storage / "images", site):
        st = directory.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o710, 0, qemu_gid)
    for private in (storage / "images" / "verified", storage / "rpms"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
    overlay = (site / "engine-overlay.qcow2").stat()
    assert stat.S_IMODE(overlay.st_mode) == 0o600 and overlay.st_uid != 0  # qemu's, 0600
    for log in ("console.log", "engine-setup.log"):
        st = (site / log).stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o600, 0)
    assert not (site / "seed.iso").exists() and not (site / "seed").exists()
    base = next((storage / "images").glob("*/disk.qcow2"))
    assert stat.S_IMODE(base.stat().st_mode) == 0o440
    assert os.access(base, os.R_OK)
