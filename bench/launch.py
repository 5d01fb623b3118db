"""he-launch against a bare `virsh create` + socket read: time to engine-setup's exit status.

Both boot the same appliance disk with the same seed in one run; the difference is what
he-launch adds (interpreter start, OVA check, overlay, seed copy, domain XML, streaming, eject,
cleanup). The guest's own time (domain created -> RC line) varies by tens of seconds between
two TCG boots, so the overhead is also printed without it: each side's time outside its guest.

    .venv/bin/python -m bench.launch [--ova OVA] [--inventory FILE --site NAME] [--uri URI]

Without --ova the demo appliance is built (or taken from the stage cache).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lxml import etree

from bench import run_bench
from builder.console import Console
from builder.disk.registry import load_recipe
from builder.inventory.load import DEFAULT_INVENTORY, load_inventory
from builder.inventory.secrets import resolve_secrets
from builder.launch.image import create_overlay, prepare_disk
from builder.launch.storage import StorageModes
from builder.launch.vm import NicChoice, build_engine_spec
from builder.pipeline.appliance import BuildOptions, build_appliance
from builder.pipeline.store import default_cache_root
from builder.seed.master import write_site_seed
from builder.seed.protocol import CHANNEL_NAME
from builder.virt.domain import render_domain_xml
from builder.virt.hypervisor import Hypervisor

RC_PREFIX = b"HE_APPLIANCE_ENGINE_SETUP_RC="


def demo_ova(out: Path) -> Path:
    build = build_appliance(load_recipe("debian-test"), out_dir=out, options=BuildOptions(),
                            cache_root=default_cache_root(os.environ), console=Console(),
                            env=dict(os.environ))
    return build.ova.path


def seed_for(inventory: Path, site_name: str, out: Path) -> Path:
    site = load_inventory(inventory).sites[site_name]
    secrets = resolve_secrets(site, base_dir=inventory.parent, env=os.environ, prompt=None)
    return write_site_seed(site, secrets, out, env=os.environ).iso


def virsh(uri: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["virsh", "-c", uri, *args], capture_output=True, check=False)


def socket_path(uri: str, name: str) -> Path:
    root = etree.fromstring(virsh(uri, "dumpxml", name).stdout)
    for channel in root.iterfind("devices/channel"):
        target, source = channel.find("target"), channel.find("source")
        if target is not None and source is not None and target.get("name") == CHANNEL_NAME:
            return Path(str(source.get("path")))
    raise RuntimeError("the domain has no report channel")


def read_until_rc(path: Path) -> int:
    while True:
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(path))
            break
        except OSError:
            sock.close()
            time.sleep(0.1)
    data = b""
    with sock:
        while RC_PREFIX not in data or not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("channel closed before the RC line")
            data += chunk
    line = data[data.index(RC_PREFIX):].split(b"\n", 1)[0]
    return int(line[len(RC_PREFIX):])


def run_bare(uri: str, ova: Path, seed: Path, work: Path) -> tuple[float, float, int]:
    """The reference: a ready disk, one `virsh create`, read the socket until the RC line.

    Returns the seconds from `virsh create` to the RC line, those of them after the domain
    was created (the guest's own time), and the exit status."""
    with Hypervisor(uri) as hv:  # qemu's user must reach the disks, as with he-launch
        modes = StorageModes.for_qemu(hv.qemu_identity())
    # untimed: unpacked
    disk = prepare_disk(ova, work / "images", work / "bare-overlay.qcow2", modes)
    create_overlay(disk.base, disk.base_format, disk.overlay)
    modes.qemu_disk(disk.overlay)
    seed_copy = work / "bare-seed.iso"  # the seed builder's directory is private (0700)
    shutil.copyfile(seed, seed_copy)
    spec = build_engine_spec(name="he-bench-bare", virt_type="qemu",
                             memory_mib=disk.info.memory_mib, vcpus=disk.info.vcpus,
                             overlay=disk.overlay, seed=seed_copy, nic=NicChoice(), mac=None,
                             console_log=work / "bare-console.log")
    xml = work / "bare.xml"
    xml.write_bytes(render_domain_xml(spec))
    start = time.monotonic()
    done = virsh(uri, "create", str(xml))
    created = time.monotonic()
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode())
    try:
        rc = read_until_rc(socket_path(uri, "he-bench-bare"))
        end = time.monotonic()
        return end - start, end - created, rc
    finally:
        virsh(uri, "destroy", "he-bench-bare")


def run_he_launch(
    uri: str, ova: Path, seed: Path, site: str, work: Path
) -> tuple[float, int, dict[str, float]]:
    # The seed's own site (he-launch refuses a seed of another); a domain name of its own.
    argv = [sys.executable, "-m", "builder.cli.he_launch", "--appliance", str(ova), "--seed",
            str(seed), "--site", site, "--name", "he-engine-bench", "--no-network", "--uri", uri,
            "--storage", str(work), "--virt-type", "qemu", "--transient", "--json",
            "--boot-timeout", "600"]
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    virsh(uri, "destroy", "he-engine-bench")
    try:
        durations = json.loads(done.stdout).get("durations", {})
    except ValueError:
        durations = {}
    return elapsed, done.returncode, durations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ova", type=Path)
    parser.add_argument("--inventory", type=Path, default=DEFAULT_INVENTORY)
    parser.add_argument("--site", default="dc1")
    parser.add_argument("--uri", default="qemu:///system")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="he-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        work.chmod(0o711)
        # A private copy: the OVA's ctime then changes only if someone writes it, so the
        # verification record the first run leaves is what a rerun on a host finds.
        ova = work / "appliance.ova"
        shutil.copyfile(args.ova or demo_ova(work / "appliance"), ova)
        seed = seed_for(args.inventory, args.site, work / "seeds")
        bare_s, bare_guest, bare_rc = run_bare(args.uri, ova, seed, work)
        launch_s, launch_rc, phases = run_he_launch(args.uri, ova, seed, args.site, work)
        shutil.rmtree(work / "seeds", ignore_errors=True)
    report(bare_s, bare_guest, bare_rc, launch_s, launch_rc, phases)
    return 0 if bare_rc == launch_rc == 0 else 1


def report(bare_s: float, bare_guest: float, bare_rc: int, launch_s: float, launch_rc: int,
           phases: dict[str, float]) -> None:
    """End to end, then without the guest's own time (which varies by tens of seconds)."""
    launch_guest = phases.get("boot", 0.0) + phases.get("setup", 0.0)
    bare_out, launch_out = bare_s - bare_guest, launch_s - launch_guest
    print(f"bare virsh create + socket read: {bare_s:7.2f} s  (exit status {bare_rc}; guest "
          f"{bare_guest:.2f} s, outside the guest {bare_out:.2f} s)")
    print(f"he-launch to exit status:        {launch_s:7.2f} s  (exit status {launch_rc}; guest "
          f"{launch_guest:.2f} s, outside the guest {launch_out:.2f} s)")
    print("he-launch phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()))
    print(f"end to end: ratio he-launch/bare {launch_s / bare_s:.3f}, difference "
          f"{launch_s - bare_s:+.2f} s (includes the guest's boot-time variance)")
    print(f"overhead of he-launch over bare (outside the guest): {launch_out - bare_out:+.2f} s "
          f"(goal < 1 s); ratio with the bare guest time for both: "
          f"{(bare_guest + launch_out) / bare_s:.3f}")


if __name__ == "__main__":
    run_bench(main)
