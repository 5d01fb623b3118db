"""`he-build seed` on an Ansible controller that has neither libvirt nor libguestfs.

The fleet renders every seed on the controller; only the sites' hosts run libvirt. Here the
bindings exist on the machine, so a `sitecustomize` in a subprocess makes importing them fail
(as on a controller without them), and the real command runs under it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import pycdlib
import yaml

from builder.inventory.load import DEFAULT_INVENTORY

BLOCKER = '''\
import sys

BLOCKED = ("libvirt", "libvirtmod", "guestfs", "libguestfsmod")


class NoVirtualization:
    """Any import of the libvirt or libguestfs bindings fails, as if not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None


sys.meta_path.insert(0, NoVirtualization())
'''


def controller_env(tmp_path: Path) -> dict[str, str]:
    blocker_dir = tmp_path / "blocker"
    blocker_dir.mkdir()
    (blocker_dir / "sitecustomize.py").write_text(BLOCKER)
    return {**os.environ, "PYTHONPATH": str(blocker_dir), "SOURCE_DATE_EPOCH": "1700000000"}


# The installed command, as an operator runs it (its script starts the same interpreter).
HE_BUILD = str(Path(sys.executable).parent / "he-build")


def run_python(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run(env, sys.executable, *args)


def run(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False,
                          timeout=120)


def test_the_blocker_really_hides_libvirt_and_guestfs(tmp_path: Path) -> None:
    env = controller_env(tmp_path)
    # Without the blocker both import here (Debian's bindings) ...
    assert run_python({**env, "PYTHONPATH": ""}, "-c", "import libvirt, guestfs").returncode == 0
    # ... with it, neither does.
    for module in ("libvirt", "guestfs"):
        proc = run_python(env, "-c", f"import {module}")
        assert proc.returncode != 0 and "blocked by the test" in proc.stderr, proc.stderr


def test_seed_renders_without_libvirt_or_guestfs(tmp_path: Path) -> None:
    env = controller_env(tmp_path)
    out = tmp_path / "seeds"
    proc = run(env, HE_BUILD, "seed", "--all", "--out", str(out),
                      "--inventory", str(DEFAULT_INVENTORY), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert [s["site"] for s in result["sites"]] == ["dc1", "dc2"]
    for entry in result["sites"]:
        iso = pycdlib.PyCdlib()
        iso.open(entry["iso"])
        try:
            assert iso.pvd.volume_identifier.decode().strip() == "cidata"
            meta = read_file(iso, "/meta-data")
        finally:
            iso.close()
        assert yaml.safe_load(meta)["instance-id"] == entry["instance_id"]


def test_inventory_check_runs_without_libvirt_or_guestfs(tmp_path: Path) -> None:
    proc = run(controller_env(tmp_path), HE_BUILD, "inventory", "check",
                      "--inventory", str(DEFAULT_INVENTORY), "--json")
    assert proc.returncode == 0, proc.stderr
    assert [s["site"] for s in json.loads(proc.stdout)["sites"]] == ["dc1", "dc2"]


def read_file(iso: pycdlib.PyCdlib, name: str) -> str:
    buffer = BytesIO()
    iso.get_file_from_iso_fp(buffer, rr_path=name)
    return buffer.getvalue().decode()
