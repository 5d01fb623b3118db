"""A fleet deployment on the SSH test hosts: inventory, variables and environment (test + bench)."""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.fleet.ansible_env import ANSIBLE_DIR, ansible_env, tool, write_plugin_config
from tests.fleet.netns import Fleet

STANDIN = Path(__file__).with_name("standin_he_launch.py")
# The answer-file key the stand-in engine-setup exits with (see standin_he_launch.py).
FAIL_ANSWER = "OVESETUP_STANDIN/exitCode"


@dataclass(frozen=True)
class SiteSpec:
    name: str
    address: str
    labels: tuple[str, ...] = ()
    engine_setup_exit: int = 0


@dataclass(frozen=True)
class FleetRun:
    source: Path          # the plugin's configuration (-i)
    inventory: Path       # he-builder's inventory
    extra_vars: Path      # -e @FILE
    out: Path             # HE_FLEET_OUT
    remote_dir: Path      # he_deploy_remote_dir on the hosts (one filesystem here)
    storage: Path         # he-launch's storage on the hosts
    secrets: tuple[str, ...]
    env: dict[str, str]


def site_yaml(spec: SiteSpec, secrets: Path) -> str:
    lines = [f"  {spec.name}:",
             f"    fqdn: engine.{spec.name}.example.com",
             f"    root_password: file:{secrets}/{spec.name}-root",
             f"    admin_password: file:{secrets}/{spec.name}-admin",
             f"    deploy_host: {{address: {spec.address}}}"]
    if spec.labels:
        lines.append(f"    labels: [{', '.join(spec.labels)}]")
    if spec.engine_setup_exit:
        lines.append(f"    extra_answers:\n      {FAIL_ANSWER}: "
                     f"{{type: int, value: {spec.engine_setup_exit}}}")
    return "\n".join(lines) + "\n"


def write_secret(path: Path, text: str) -> None:
    path.write_text(text + "\n")
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)


def prepare_run(scratch: Path, fleet: Fleet, sites: Sequence[SiteSpec],
                standin_seconds: float = 0.0, collections: Path = ANSIBLE_DIR) -> FleetRun:
    """Everything a deployment of `sites` needs; `collections` holds ansible_collections/
    (default: the checkout)."""
    secrets_dir = scratch / "secrets"
    secrets_dir.mkdir(mode=0o700)
    secrets = []
    for spec in sites:
        for kind in ("root", "admin"):
            value = f"s3cret-{kind}-{spec.name}-Zq7"
            write_secret(secrets_dir / f"{spec.name}-{kind}", value)
            secrets.append(value)
    inventory = scratch / "inventory.yaml"
    inventory.write_text("sites:\n" + "".join(site_yaml(s, secrets_dir) for s in sites))
    source = write_plugin_config(scratch / "fleet.he_builder.yml", inventory)
    launcher = scratch / "bin" / "he-launch"
    launcher.parent.mkdir()
    shutil.copyfile(STANDIN, launcher)
    launcher.chmod(0o755)
    appliance = scratch / "appliance" / "standin-appliance.ova"
    appliance.parent.mkdir()
    appliance.write_bytes(b"stand-in appliance: he-launch on the test hosts is a stand-in\n")
    remote_dir, storage, out = scratch / "remote", scratch / "storage", scratch / "out"
    extra_vars = scratch / "vars.json"
    extra_vars.write_text(json.dumps({
        "he_deploy_he_build": tool("he-build"),
        "he_deploy_he_launch": str(launcher),
        "he_deploy_appliance_source": "ova",
        "he_deploy_appliance_file": str(appliance),
        "he_deploy_remote_dir": str(remote_dir),
        "he_deploy_storage": str(storage),
        # libvirt's test driver: the role's cleanup after a stopped he-launch never touches
        # this machine's libvirtd.
        "he_deploy_uri": "test:///default",
        "he_deploy_poll_interval": 1,
        "he_deploy_launch_environment": launch_environment(standin_seconds),
    }))
    return FleetRun(source, inventory, extra_vars, out, remote_dir, storage, tuple(secrets),
                    fleet_env(scratch, fleet, out, collections))


def left_behind(run_: FleetRun) -> list[Path]:
    """Seed copies anywhere: on the hosts (placed and he-launch's), on the controller."""
    return [*run_.remote_dir.glob("*/seed.iso"), *run_.storage.glob("*/seed.iso"),
            *run_.out.glob("*/seed")]


def launch_environment(standin_seconds: float) -> dict[str, str]:
    """The stand-in's environment on the hosts: how long it "boots", and the real he-launch
    (its option checks, --prune-images)."""
    return {"HE_STANDIN_SECONDS": str(standin_seconds),
            "HE_STANDIN_REAL_HE_LAUNCH": tool("he-launch")}


def fleet_env(scratch: Path, fleet: Fleet, out: Path, collections: Path) -> dict[str, str]:
    """Ansible over SSH to the test hosts only: their known host keys, the test's key, no
    user ssh config; remote temporary and async files in scratch (the hosts share this
    machine's filesystem)."""
    control = scratch / "cp"
    control.mkdir()
    ssh_args = (f"-F /dev/null -o UserKnownHostsFile={fleet.known_hosts} "
                "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o ConnectTimeout=5 "
                "-o ControlMaster=auto -o ControlPersist=60s")
    return ansible_env(
        scratch, None, HE_FLEET_OUT=str(out),
        ANSIBLE_COLLECTIONS_PATH=str(collections),
        ANSIBLE_SSH_ARGS=ssh_args, ANSIBLE_SSH_CONTROL_PATH_DIR=str(control),
        ANSIBLE_PRIVATE_KEY_FILE=str(fleet.client_key),
        ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3",
        ANSIBLE_REMOTE_TEMP=str(scratch / "remote-tmp"),
        ANSIBLE_ASYNC_DIR=str(scratch / "async"),
    )


def playbook_argv(fleet: Fleet, run: FleetRun, forks: int, *extra: str) -> list[str]:
    return fleet.in_controller([tool("ansible-playbook"), "-i", str(run.source),
                                "--forks", str(forks), "-e", f"@{run.extra_vars}",
                                "ovirt_he.he_builder.deploy", *extra])
