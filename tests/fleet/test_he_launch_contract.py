"""What the fleet's stand-in he-launch (tests/fleet/standin_he_launch.py) shares with the real
one, and what the he_deploy role reads of he-launch's `--json` result. The deploy tests run the
role against the stand-in (no VM can boot on the test hosts); these keep the stand-in to the
real command line and the real result, without Ansible and without a VM: the real he-launch is
only ever given command lines it refuses before it does anything."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from builder.launch.report import LaunchReport
from builder.seed.master import build_seeds
from tests.fixtures.seeds import Secrets, dhcp_site
from tests.fleet.ansible_env import COLLECTION_SRC, tool
from tests.fleet.fleet_run import STANDIN

ROLE_TASKS = COLLECTION_SRC / "roles" / "he_deploy" / "tasks"
# How the role's tasks read the parsed result: `he_deploy_report.FIELD`.
REPORT_FIELD = re.compile(r"\bhe_deploy_report\.(\w+)")
EPOCH = 1700000000


@dataclasses.dataclass(frozen=True)
class Host:
    """What a test host holds: an appliance file, a seed ISO, he-launch's storage (not yet
    made: he-launch makes it)."""

    appliance: Path
    seed: Path
    storage: Path

    def argv(self, *extra: str) -> list[str]:
        """The command line the role builds, as for a site without a network."""
        return ["--json", "--site", "dc1", "--appliance", str(self.appliance),
                "--seed", str(self.seed), "--uri", "test:///default",
                "--storage", str(self.storage), "--boot-timeout", "900",
                "--setup-timeout", "7200", *extra]


@pytest.fixture
def host(tmp_path: Path) -> Host:
    appliance = tmp_path / "standin-appliance.ova"
    appliance.write_bytes(b"stand-in appliance\n")
    seeds = build_seeds([(dhcp_site(), Secrets())], tmp_path / "seeds", epoch=EPOCH)
    return Host(appliance, seeds[0].iso, tmp_path / "storage")


def run_standin(argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HE_STANDIN_REAL_HE_LAUNCH": tool("he-launch")}
    return subprocess.run(["/usr/bin/python3", str(STANDIN), *argv], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


def run_he_launch(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("he-launch"), *argv], capture_output=True, text=True,
                          timeout=120, check=False)


def result_fields() -> set[str]:
    """The fields of he-launch's --json result: `ok` and its report's."""
    return {"ok", *(field.name for field in dataclasses.fields(LaunchReport))}


def role_reads() -> set[str]:
    return {found for path in sorted(ROLE_TASKS.glob("*.yml"))
            for found in REPORT_FIELD.findall(path.read_text())}


REFUSED = [
    pytest.param(["--no-network", "--setup-timout", "60"], id="misspelt option"),
    pytest.param([], id="no network choice"),
    pytest.param(["--no-network", "--boot-timeout", "nan"], id="nan timeout"),
    pytest.param(["--bridge", "br0", "--network", "default"], id="two network choices"),
    pytest.param(["--no-network", "--health-check", "--health-url", "ftp://x/"],
                 id="not an http health url"),
    pytest.param(["--no-network", "--mac", "01:00:5e:00:00:01"], id="multicast mac"),
    pytest.param(["--no-network", "--uri", ""], id="empty uri"),
]


@pytest.mark.parametrize("extra", REFUSED)
def test_the_standin_refuses_what_he_launch_refuses_and_says_the_same(host: Host,
                                                                     extra: list[str]) -> None:
    real = run_he_launch(host.argv(*extra))
    standin = run_standin(host.argv(*extra))
    assert real.returncode == 2, real.stderr
    assert (standin.returncode, standin.stdout, standin.stderr) == (
        real.returncode, real.stdout, real.stderr)
    assert json.loads(standin.stdout)["ok"] is False
    assert not host.storage.exists()  # refused before it made anything


def test_a_missing_appliance_is_refused_by_both(host: Host) -> None:
    host.appliance.unlink()
    real, standin = run_he_launch(host.argv("--no-network")), run_standin(host.argv("--no-network"))
    assert real.returncode == standin.returncode == 2
    assert standin.stdout == real.stdout
    assert "--appliance" in json.loads(standin.stdout)["error"]


def test_a_command_line_he_launch_accepts_runs_the_standin(host: Host) -> None:
    done = run_standin(host.argv("--no-network", "--replace", "--keep"))
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["ok"] is True
    assert result["standin"]["fqdn"] == "engine.dc1.example.com"


def test_the_standins_result_has_only_he_launchs_fields_and_their_types(host: Host) -> None:
    result: dict[str, Any] = json.loads(run_standin(host.argv("--no-network")).stdout)
    standin_only = {"standin"}
    assert set(result) - standin_only <= result_fields()
    assert isinstance(result["exit_status"], int)
    assert all(isinstance(name, str) and isinstance(seconds, float)
               for name, seconds in result["durations"].items())
    assert Path(result["console_log"]).is_file()
    assert Path(result["transcript"]).is_file()


def test_what_the_role_reads_of_the_result_is_in_he_launchs_result_or_error(host: Host) -> None:
    reads = role_reads()
    assert {"exit_status", "console_log", "transcript", "durations", "error"} <= reads
    # A refusal's --json document, as he-launch prints it.
    error = json.loads(run_he_launch(host.argv()).stdout)
    assert reads <= result_fields() | set(error)
