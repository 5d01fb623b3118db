"""SSH test hosts on this machine: network namespaces joined by veth pairs, each with its sshd.

Layout (N hosts, nothing in the root namespace is touched):

    netns CTL: lo, bridge br0 198.18.46.1/24 (RFC 2544 benchmarking range), veth hostI ports
    netns HOST-I: lo, eth0 198.18.46.(10+I)/24, the other end of the veth pair; sshd on that
                  address only (own host key and config, key-only login as root)

No namespace has a default route or forwarding, so nothing reaches beyond the bridge; Ansible
runs inside CTL (`Fleet.in_controller`). Every namespace and every process in them is removed
on exit, even after a failure; namespaces left by a killed earlier run are removed first.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.processes import alive, wait_until

SUBNET = "198.18.46"
PREFIX = "he6fleet"
SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class Host:
    name: str       # its namespace
    address: str
    temp_dir: Path  # TMPDIR of its SSH sessions (its sshd's SetEnv), inside the test's directory


@dataclass(frozen=True)
class Fleet:
    controller: str     # the namespace Ansible runs in
    hosts: tuple[Host, ...]
    client_key: Path
    known_hosts: Path
    unreachable: str    # an address on the subnet where nothing answers

    def in_controller(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.controller, *argv]


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def pids_in(name: str) -> list[int]:
    listed = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                            check=False).stdout.split()
    return [int(pid) for pid in listed if alive(int(pid))]


def remove_namespace(name: str) -> None:
    """Every process in it first (sshd, ssh masters, async jobs), then the namespace."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids_in(name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        wait_until(lambda: not pids_in(name), 3.0, every=0.1)
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def remove_stale_namespaces(prefix: str) -> None:
    """Namespaces of an earlier run whose process is gone (killed before it cleaned up)."""
    stale = re.compile(rf"^{re.escape(prefix)}(\d+)-")
    for line in run("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        match = stale.match(name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            remove_namespace(name)


def namespaces() -> list[str]:
    return [line.split()[0] for line in run("ip", "netns", "list").splitlines() if line.strip()]


@contextlib.contextmanager
def ssh_fleet(workdir: Path, count: int, prefix: str = PREFIX) -> Iterator[Fleet]:
    """`count` hosts in namespaces named `prefix`PID-... (a module running beside the fleet's
    own, in another lane, takes a prefix of its own: the fleet's modules check theirs are
    gone)."""
    remove_stale_namespaces(prefix)
    workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    tag = f"{prefix}{os.getpid()}"
    controller = f"{tag}-ctl"
    created: list[str] = []
    try:
        make_controller(controller, created)
        key = workdir / "id_ed25519"
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet-test", "-f", str(key))
        hosts: list[Host] = []
        known: list[str] = []
        for index in range(1, count + 1):
            name = f"{tag}-h{index}"
            host = Host(name, f"{SUBNET}.{10 + index}", workdir / name / "tmp")
            make_host(controller, host, index, created)
            hosts.append(host)
            known.append(start_sshd(workdir / host.name, host, key.with_suffix(".pub")))
        known_hosts = workdir / "known_hosts"
        known_hosts.write_text("".join(known))
        fleet = Fleet(controller, tuple(hosts), key, known_hosts, f"{SUBNET}.99")
        wait_for_sshd(fleet)
        yield fleet
    finally:
        for name in reversed(created):
            remove_namespace(name)


def make_controller(name: str, created: list[str]) -> None:
    run("ip", "netns", "add", name)
    created.append(name)
    for argv in (["link", "set", "lo", "up"],
                 ["link", "add", "br0", "type", "bridge"],
                 ["addr", "add", f"{SUBNET}.1/24", "dev", "br0"],
                 ["link", "set", "br0", "up"]):
        run("ip", "-n", name, *argv)


def make_host(controller: str, host: Host, index: int, created: list[str]) -> None:
    run("ip", "netns", "add", host.name)
    created.append(host.name)
    port = f"host{index}"
    run("ip", "-n", controller, "link", "add", port, "type", "veth", "peer", "name", "eth0",
        "netns", host.name)
    run("ip", "-n", controller, "link", "set", port, "master", "br0", "up")
    for argv in (["link", "set", "lo", "up"],
                 ["addr", "add", f"{host.address}/24", "dev", "eth0"],
                 ["link", "set", "eth0", "up"]):
        run("ip", "-n", host.name, *argv)


def start_sshd(home: Path, host: Host, client_pub: Path) -> str:
    """sshd in the host's namespace; returns its known_hosts line."""
    home.mkdir(mode=0o700)
    host_key = home / "ssh_host_ed25519_key"
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
    authorized = home / "authorized_keys"
    authorized.write_text(client_pub.read_text())
    host.temp_dir.mkdir(mode=0o700)
    config = home / "sshd_config"
    config.write_text(
        f"ListenAddress {host.address}:22\n"
        f"HostKey {host_key}\n"
        f"PidFile {home / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized}\n"
        "PermitRootLogin prohibit-password\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        # The test's files live under /tmp (world-writable): sshd's ownership checks would refuse.
        "StrictModes no\n"
        "Subsystem sftp /usr/lib/openssh/sftp-server\n"
        # The host's temporary files (Ansible's module payloads, which a SIGKILLed async job
        # leaves behind) stay in the test's directory, not in this machine's /tmp.
        f"SetEnv TMPDIR={host.temp_dir}\n"
        "LogLevel VERBOSE\n")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    run("ip", "netns", "exec", host.name, SSHD, "-f", str(config), "-E", str(home / "sshd.log"))
    key_type, blob = (host_key.with_suffix(".pub")).read_text().split()[:2]
    return f"{host.address} {key_type} {blob}\n"


def wait_for_sshd(fleet: Fleet, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for host in fleet.hosts:
        while True:
            probe = subprocess.run(fleet.in_controller(
                ["ssh", "-F", "/dev/null", "-i", str(fleet.client_key), "-o", "BatchMode=yes",
                 "-o", f"UserKnownHostsFile={fleet.known_hosts}", "-o",
                 "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=2",
                 f"root@{host.address}", "true"]), capture_output=True, text=True, check=False)
            if probe.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd on {host.address} did not answer: {probe.stderr}")
            time.sleep(0.2)
