"""The single-launch customize backend against virt-customize + virt-sysprep + virt-sparsify
doing the same work on the same base image (goal: >= 2x faster).

Both start from a qcow2 overlay on the debian-test disk (the base is never written) and end
with a standalone, sparse qcow2: upload, write, install a .deb, run a command, root password,
SSH key, timezone, sysprep (machine-id, SSH host keys, logs, cloud-init state), SELinux
relabel, sparsify. The three virt-* tools each launch their own appliance.

    .venv/bin/python -m bench.customize [--disk RAW]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from bench import run_bench
from builder.console import Console
from builder.disk.backend import BuildContext
from builder.disk.customize import CustomizeBackend
from builder.disk.registry import create_backend, load_recipe
from builder.pipeline.appliance import build_disk_cached
from builder.pipeline.store import default_cache_root

# Both sides run the appliance the same way (no KVM on the machines this was measured on).
GUEST_ENV = {"LIBGUESTFS_BACKEND": "direct", "LIBGUESTFS_BACKEND_SETTINGS": "force_tcg"}
SSH_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICOMmIBmxxbO7jGrCHJUE69EzbgBfedDOWf/EyJq+XnP "
           "bench@example")
RUN = "echo customized > /etc/he-bench-run"
APPLIANCE = {"name": "he-bench", "version": "1", "release": "1", "memory_mib": 1024,
             "vcpus": 1, "description": "customize bench"}


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def make_inputs(work: Path) -> None:
    """The files both sides use: an upload, a .deb, the password's cleartext."""
    (work / "motd").write_text("customized by the bench\n")
    (work / "password").write_text("bench-password\n")
    (work / "password").chmod(0o600)
    root = work / "deb-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        "Package: he-bench-probe\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: bench <bench@example.invalid>\nDescription: bench probe\n")
    (root / "usr/share/he-bench-probe").mkdir(parents=True)
    (root / "usr/share/he-bench-probe/hello").write_text("hello\n")
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root),
                    str(work / "probe.deb")], check=True, capture_output=True)


def write_recipe(work: Path, base: Path) -> Path:
    operations = [
        {"op": "upload", "source": "motd", "path": "/etc/motd"},
        {"op": "write", "path": "/etc/he-bench.conf", "content": "key = value\n"},
        {"op": "install", "package": "probe.deb"},
        {"op": "run", "argv": ["sh", "-c", RUN]},
        {"op": "root_password", "file": "password"},
        {"op": "ssh_keys", "keys": [SSH_KEY]},
        {"op": "timezone", "zone": "Europe/Prague"},
        {"op": "sysprep"}, {"op": "selinux_relabel"}, {"op": "sparsify"},
    ]
    recipe = work / "bench.yaml"
    recipe.write_text(yaml.safe_dump({"backend": "customize", "appliance": APPLIANCE,
                                      "options": {"base": str(base), "operations": operations}}))
    return recipe


def run_ours(work: Path, recipe: Path, env: dict[str, str]) -> Path:
    backend = create_backend(load_recipe(str(recipe)))
    assert isinstance(backend, CustomizeBackend)
    ctx = BuildContext(work / "ours", work / "cache", quiet_console(), env)
    ctx.work_dir.mkdir()
    return backend.build_disk(ctx).path


def run_virt_tools(work: Path, base: Path, env: dict[str, str]) -> Path:
    overlay, out = work / "virt-overlay.qcow2", work / "virt-out.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(base), str(overlay)],
        env)
    run(["virt-customize", "-q", "-a", str(overlay), "--no-network",
         "--upload", f"{work / 'motd'}:/etc/motd",
         "--write", "/etc/he-bench.conf:key = value\n",
         "--upload", f"{work / 'probe.deb'}:/var/tmp/probe.deb",
         "--run-command", "dpkg -i /var/tmp/probe.deb && rm /var/tmp/probe.deb",
         "--run-command", RUN,
         "--root-password", f"file:{work / 'password'}",
         "--ssh-inject", f"root:string:{SSH_KEY}",
         "--timezone", "Europe/Prague", "--selinux-relabel"], env)
    run(["virt-sysprep", "-q", "-a", str(overlay), "--operations",
         "machine-id,ssh-hostkeys,logfiles,customize", "--delete", "/var/lib/cloud/*",
         "--delete", "/var/lib/systemd/random-seed"], env)
    run(["virt-sparsify", "-q", "--format", "qcow2", "--convert", "qcow2", str(overlay),
         str(out)], env)
    return out


def run(argv: list[str], env: dict[str, str]) -> None:
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)


def quiet_console() -> Console:
    return Console(err=Path(os.devnull).open("w"))


def allocated_mib(path: Path) -> int:
    return path.stat().st_blocks * 512 >> 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--disk", type=Path, help="raw base disk (default: the debian-test disk)")
    args = parser.parse_args()
    env = {**os.environ, **GUEST_ENV}
    base = (args.disk if args.disk else build_disk_cached(
        load_recipe("debian-test"), default_cache_root(env), quiet_console(), env)[0].path)
    with tempfile.TemporaryDirectory(prefix="bench-customize-", dir=Path.home()) as tmp:
        work = Path(tmp)
        make_inputs(work)
        recipe = write_recipe(work, base.resolve())
        ours_out: list[Path] = []
        ours = timed(lambda: ours_out.append(run_ours(work, recipe, env)))
        ref_out: list[Path] = []
        ref = timed(lambda: ref_out.append(run_virt_tools(work, base.resolve(), env)))
        sizes = allocated_mib(ours_out[0]), allocated_mib(ref_out[0])
    print(f"base: {base}")
    print(f"customize backend (one launch):                    {ours:6.1f} s, {sizes[0]} MiB")
    print(f"virt-customize + virt-sysprep + virt-sparsify (3): {ref:6.1f} s, {sizes[1]} MiB")
    print(f"ratio: {ref / ours:.2f}x faster (goal >= 2x)")


if __name__ == "__main__":
    run_bench(main)
