"""The stand-in engine-setup shipped in the debian-test appliance (run here with python3).

It stands in for oVirt's engine-setup, which cannot exist on this machine: it reads answer files
as otopi does and runs ovirt-engine-setup's memory check, so these tests hold it to both."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from builder.disk.debian_standin import data_file
from builder.seed.answers import check_answers, render_answers
from tests.fixtures.seeds import dhcp_site
from tests.fixtures.standin import STANDIN_PATH, standin_reads

GOOD = "[environment:default]\nOVESETUP_CONFIG/fqdn=str:engine.example.test\nA/b=bool:False\n"
# What hosted-engine's seed adds: an unattended run.
UNATTENDED = "[environment:init]\nDIALOG/autoAcceptDefault=bool:True\n"
MEMCHECK_WARNING = ("[WARNING] Warning: Not enough memory is available on the host. Minimum "
                    "requirement is 4096MB, and 16384MB is recommended.")
ABORTED = "[ ERROR ] Failed to execute stage 'Setup validation': Aborted by user"


@pytest.fixture
def standin(tmp_path: Path) -> Path:
    script = tmp_path / "engine-setup"
    script.write_bytes(data_file("engine-setup"))
    return script


def run_standin(script: Path, *answers: Path, timeout: float = 30,
                meminfo: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run it; with `meminfo`, inside a private mount namespace where that file is bind-mounted
    over /proc/meminfo, so the stand-in sees a machine of that size."""
    argv = [sys.executable, str(script), "--offline"]
    argv += [f"--config-append={a}" for a in answers]
    if meminfo is not None:
        argv = [*in_namespace_with_meminfo(meminfo), *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def in_namespace_with_meminfo(meminfo: Path) -> list[str]:
    """unshare + a bind mount, then exec of the rest of argv (no shell involved)."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) for a private mount namespace")
    mount_then_exec = ("import os, subprocess, sys; "
                       "subprocess.run(['mount', '--bind', sys.argv[1], '/proc/meminfo'], "
                       "check=True); os.execv(sys.argv[2], sys.argv[2:])")
    return [unshare, "--mount", "--propagation", "private", sys.executable, "-c",
            mount_then_exec, str(meminfo)]


def answer(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def small_machine(tmp_path: Path, mib: int) -> Path:
    """A /proc/meminfo of `mib` MiB (the real file's first lines, kB as the kernel writes)."""
    path = tmp_path / "meminfo"
    path.write_text(f"MemTotal:       {mib * 1024} kB\nMemFree:        {mib * 512} kB\n")
    return path


def test_success_prints_stages_and_exits_zero(standin: Path, tmp_path: Path) -> None:
    done = run_standin(standin, answer(tmp_path, "a.conf", GOOD),
                       answer(tmp_path, "b.conf", "[environment:override]\nX/y=int:3\n"))
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0] == "[ INFO  ] Stage: Initializing"
    assert lines[-1] == "[ INFO  ] Execution of setup completed successfully"
    assert "[ INFO  ] Engine FQDN: engine.example.test" in lines
    assert "STAND-IN" in done.stdout


def test_exit_code_key_is_honoured(standin: Path, tmp_path: Path) -> None:
    done = run_standin(standin, answer(tmp_path, "a.conf",
                                       GOOD + "OVESETUP_STANDIN/exitCode=int:7\n"))
    assert done.returncode == 7
    assert "Execution of setup failed" in done.stdout


@pytest.mark.parametrize(("line", "message"), [
    ("OVESETUP_CONFIG/fqdn=engine.example.test",
     "Cannot parse configuration file key OVESETUP_CONFIG/fqdn at section environment:default: "
     "Missing variable type"),
    ("OVESETUP_CONFIG/fqdn=float:1.5",
     "Cannot parse configuration file key OVESETUP_CONFIG/fqdn at section environment:default: "
     "'Invalid variable type float'"),
    ("OVESETUP_DB/port=int:five",
     "Cannot parse configuration file key OVESETUP_DB/port at section environment:default: "
     "invalid literal for int() with base 10: 'five'"),
])
def test_values_otopi_cannot_type_stop_it(standin: Path, tmp_path: Path, line: str,
                                          message: str) -> None:
    done = run_standin(standin, answer(tmp_path, "a.conf", f"[environment:default]\n{line}\n"))
    assert done.returncode == 1
    assert f"[ ERROR ] Failed to execute stage 'Initializing': {message}" in done.stdout


def test_unknown_sections_are_ignored_as_otopi_does(standin: Path, tmp_path: Path) -> None:
    done = run_standin(standin, answer(tmp_path, "a.conf",
                                       "[environment:other]\nOVESETUP_STANDIN/exitCode=int:9\n"))
    assert done.returncode == 0


def test_files_merge_in_order_and_a_broken_one_is_skipped() -> None:
    environment, read, skipped = standin_reads([
        "[environment:default]\nA/x=str:first\nA/y=str:kept\n",
        "no section header\n",
        "[environment:default]\nA/x=str:second\n",
    ])
    assert environment == {"A/x": "second", "A/y": "kept"}
    assert (read, skipped) == (["0.conf", "2.conf"], ["1.conf"])


def test_types_follow_otopi(standin: Path, tmp_path: Path) -> None:
    # bool is FALSE only for f/F/false/False (and the int 0): "0" is True.
    environment, _, _ = standin_reads(["[environment:default]\nA/n=none:ignored\n"
                                       "A/m=multi-str:x\n y\nA/z=bool:0\nA/f=bool:f\n"])
    assert environment == {"A/n": None, "A/m": ["x", "y"], "A/z": True, "A/f": False}


def test_hang_key_keeps_it_running(standin: Path, tmp_path: Path) -> None:
    path = answer(tmp_path, "a.conf", GOOD + "OVESETUP_STANDIN/hang=bool:True\n")
    with pytest.raises(subprocess.TimeoutExpired) as info:
        run_standin(standin, path, timeout=3)
    assert b"asked to hang" in (info.value.stdout or b"")


# ----- the memory check, on a machine made small with a bind-mounted /proc/meminfo -----


def test_small_machine_aborts_an_unattended_run(standin: Path, tmp_path: Path) -> None:
    """Below 4096 MB x 90 % the real check asks "continue?", default No: unattended, it aborts."""
    done = run_standin(standin, answer(tmp_path, "seed.conf", UNATTENDED + GOOD),
                       meminfo=small_machine(tmp_path, 1024))
    assert done.returncode == 1
    assert MEMCHECK_WARNING in done.stdout
    assert ABORTED in done.stdout
    assert "completed successfully" not in done.stdout


def test_threshold_is_ninety_percent_of_4096_mb(standin: Path, tmp_path: Path) -> None:
    seed = answer(tmp_path, "seed.conf", UNATTENDED + GOOD)
    below = run_standin(standin, seed, meminfo=small_machine(tmp_path, 3686))
    assert below.returncode == 1 and ABORTED in below.stdout
    at = run_standin(standin, seed, meminfo=small_machine(tmp_path, 3687))
    assert at.returncode == 0
    assert "[WARNING] Less than 16384MB of memory is available" in at.stdout


def test_the_appliance_answer_file_lets_a_small_machine_through(standin: Path,
                                                                tmp_path: Path) -> None:
    """As deployed: the appliance's file first, then the seed's (OVIRT.md's runcmd)."""
    appliance = answer(tmp_path, "ovirt-engine-answers",
                       data_file("ovirt-engine-answers").decode())
    seed = answer(tmp_path, "heanswers.conf", render_answers(dhcp_site(), "p%ss"))
    done = run_standin(standin, appliance, seed, meminfo=small_machine(tmp_path, 1024))
    assert done.returncode == 0, done.stdout
    assert MEMCHECK_WARNING in done.stdout
    assert "[ INFO  ] Engine FQDN: engine.dc1.example.com" in done.stdout
    assert "[ INFO  ] Execution of setup completed successfully" in done.stdout
    # Without the appliance's file the same seed aborts on the same machine.
    alone = run_standin(standin, seed, meminfo=small_machine(tmp_path, 1024))
    assert alone.returncode == 1 and ABORTED in alone.stdout


def test_a_question_answer_continues(standin: Path, tmp_path: Path) -> None:
    text = UNATTENDED + GOOD + "QUESTION/1/OVESETUP_MEMCHECK_ENABLED=str:yes\n"
    done = run_standin(standin, answer(tmp_path, "seed.conf", text),
                       meminfo=small_machine(tmp_path, 1024))
    assert done.returncode == 0, done.stdout


def test_this_machine_passes_the_check(standin: Path, tmp_path: Path) -> None:
    """Without the bind mount the real /proc/meminfo is read."""
    total_kib = int(Path("/proc/meminfo").read_text().split()[1])
    if total_kib < 4096 * 1024:
        pytest.skip("this machine itself has less than 4 GiB")
    done = run_standin(standin, answer(tmp_path, "seed.conf", UNATTENDED + GOOD))
    assert done.returncode == 0
    assert "Not enough memory" not in done.stdout


def test_the_stand_in_file_is_what_the_appliance_ships() -> None:
    assert STANDIN_PATH.read_bytes() == data_file("engine-setup")


# oVirt's appliance answer file (ovirt-appliance, engine-appliance/kiwi/root/root/
# ovirt-engine-answers, as read in January 2026): every key with oVirt's value.
OVIRT_APPLIANCE_ANSWERS = {
    "OVESETUP_CORE/engineStop": None, "OVESETUP_DIALOG/confirmSettings": True,
    "OVESETUP_DB/database": "engine", "OVESETUP_DB/fixDbViolations": None,
    "OVESETUP_DB/secured": False, "OVESETUP_DB/securedHostValidation": False,
    "OVESETUP_DB/host": "localhost", "OVESETUP_DB/user": "engine", "OVESETUP_DB/port": 5432,
    "OVESETUP_DWH_CORE/enable": True,
    "OVESETUP_DWH_CONFIG/dwhDbBackupDir": "/var/lib/ovirt-engine-dwh/backups",
    "OVESETUP_DWH_PROVISIONING/postgresProvisioningEnabled": True,
    "OVESETUP_DWH_DB/secured": False, "OVESETUP_DWH_DB/host": "localhost",
    "OVESETUP_ENGINE_CORE/enable": True, "OVESETUP_SYSTEM/nfsConfigEnabled": False,
    "OVESETUP_SYSTEM/memCheckEnabled": False, "OVESETUP_CONFIG/applicationMode": "both",
    "OVESETUP_CONFIG/firewallManager": "firewalld", "OVESETUP_CONFIG/storageType": "nfs",
    "OVESETUP_CONFIG/sanWipeAfterDelete": False, "OVESETUP_CONFIG/updateFirewall": True,
    "OVESETUP_CONFIG/websocketProxyConfig": True,
    "OVESETUP_PROVISIONING/postgresProvisioningEnabled": True,
    "OVESETUP_VMCONSOLE_PROXY_CONFIG/vmconsoleProxyConfig": True,
    "OVESETUP_APACHE/configureRootRedirection": True, "OVESETUP_APACHE/configureSsl": True,
    "OSETUP_RPMDISTRO/requireRollback": None, "OSETUP_RPMDISTRO/enableUpgrade": None,
    "QUESTION/1/OVESETUP_IGNORE_SNAPSHOTS_WITH_OLD_COMPAT_LEVEL": "yes",
}


def test_appliance_answer_file_matches_ovirts() -> None:
    """Plain otopi text engine-setup reads whole, with oVirt's keys and values (bool vs int
    compared by type too: True == 1 in Python)."""
    read = check_answers(data_file("ovirt-engine-answers").decode())
    environment = read.environment
    assert {k: (type(v), v) for k, v in environment.items()} == \
        {k: (type(v), v) for k, v in OVIRT_APPLIANCE_ANSWERS.items()}
    assert environment["OVESETUP_SYSTEM/memCheckEnabled"] is False
