#!/usr/bin/python3
"""A STAND-IN for he-launch on the fleet test's hosts: no VM is booted (no nested VMs here).

It takes he-launch's options, consumes the seed the way the appliance would (reads the ISO's
label, meta-data, user-data and its own answer file with `isoinfo`), keeps he-launch's files
(STORAGE/SITE/seed.iso while it runs, console.log, engine-setup.log) and prints he-launch's
`--json` result. engine-setup's exit status is 0 unless the site's answer file sets
OVESETUP_STANDIN/exitCode=int:N (the test's way to make one site fail through its real seed).
HE_STANDIN_SECONDS (default 0) is the time the stand-in "boots", for the fleet benchmark.
`--prune-images` runs the real he-launch ($HE_STANDIN_REAL_HE_LAUNCH) on the real storage.
Every other command line is first read by the real he-launch's own parser and option checks
(the Python of its virtualenv): one it refuses is refused here with its message, its `--json`
error and its exit status, so a deployment cannot pass an option a real host would refuse.
Runs with the hosts' /usr/bin/python3 and the standard library only (plus isoinfo).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

EXIT_CODE_KEY = re.compile(r"OVESETUP_STANDIN/exitCode=int:(-?\d+)")
PRUNE_FLAG = "--prune-images"
# The real he-launch, in its virtualenv: `--prune-images` is handed to it, and every other
# command line is checked by that virtualenv's Python first (CHECK_OPTIONS).
REAL_HE_LAUNCH = "HE_STANDIN_REAL_HE_LAUNCH"

# The real he-launch up to its option checks: the same parser, the same checks, the same
# report of a refusal (stderr, the --json error on stdout, the exit status); nothing else.
CHECK_OPTIONS = """\
import sys
from builder.cli.handler import parse_command_line, report_usage_error
from builder.cli.he_launch import PROG, build_parser, options_from_args
from builder.errors import InputError
args = parse_command_line(build_parser(), sys.argv[1:])
if isinstance(args, int):
    sys.exit(args)
try:
    options_from_args(args)
except InputError as exc:
    sys.exit(report_usage_error(PROG, exc, json_mode=bool(args.json), debug=bool(args.debug)))
"""


def real_he_launch() -> Path:
    real = os.environ.get(REAL_HE_LAUNCH)
    if not real:
        raise SystemExit(f"stand-in he-launch: {REAL_HE_LAUNCH} names no he-launch")
    return Path(real)


def check_options(argv: list[str]) -> None:
    """Exit as the real he-launch does when it refuses `argv`, before it would boot."""
    python = real_he_launch().with_name("python")
    checked = subprocess.run([str(python), "-c", CHECK_OPTIONS, *argv], check=False)
    if checked.returncode != 0:
        raise SystemExit(checked.returncode)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="he-launch (stand-in)")
    parser.add_argument("--appliance", type=Path, required=True)
    parser.add_argument("--seed", type=Path, required=True)
    parser.add_argument("--site", required=True)
    parser.add_argument("--storage", type=Path, default=Path("/var/tmp/he-launch"))
    parser.add_argument("--json", action="store_true")
    options, _ = parser.parse_known_args(argv)  # the rest: checked by check_options
    return options


def iso_text(iso: Path, *args: str) -> str:
    return subprocess.run(["isoinfo", "-i", str(iso), *args], capture_output=True, text=True,
                          check=True).stdout


def read_seed(iso: Path) -> dict[str, str]:
    """What the appliance reads: the label, meta-data, user-data and the answer file the
    guest's runner hands to engine-setup (its own file on the seed)."""
    label = re.search(r"^Volume id:\s*(\S+)", iso_text(iso, "-d"), re.MULTILINE)
    if label is None or label.group(1) != "cidata":
        raise SystemExit(f"stand-in he-launch: {iso} is not a NoCloud seed (label cidata)")
    meta = iso_text(iso, "-R", "-x", "/meta-data")
    user = iso_text(iso, "-R", "-x", "/user-data")
    instance = re.search(r"^instance-id:\s*(\S+)", meta, re.MULTILINE)
    fqdn = re.search(r"^fqdn:\s*(\S+)", user, re.MULTILINE)
    code = EXIT_CODE_KEY.search(iso_text(iso, "-R", "-x", "/heanswers.conf"))
    return {"instance_id": instance.group(1) if instance else "",
            "fqdn": fqdn.group(1) if fqdn else "",
            "exit_code": code.group(1) if code else "0",
            "user_data_first_line": user.splitlines()[0] if user else ""}


def netns() -> str:
    proc = subprocess.run(["ip", "netns", "identify", str(os.getpid())], capture_output=True,
                          text=True, check=False)
    return proc.stdout.strip()


def main(argv: list[str]) -> int:
    if PRUNE_FLAG in argv:
        # No VM, but the storage is real: the real he-launch prunes it.
        real = real_he_launch()
        os.execv(real, [str(real), *argv])
    check_options(argv)
    opts = parse_args(argv)
    started = time.monotonic()
    workdir = opts.storage / opts.site
    workdir.mkdir(parents=True, exist_ok=True)
    console_log, transcript = workdir / "console.log", workdir / "engine-setup.log"
    seed_copy = workdir / "seed.iso"
    if not opts.appliance.exists():
        raise SystemExit(f"stand-in he-launch: appliance not found: {opts.appliance}")
    shutil.copyfile(opts.seed, seed_copy)
    seed_copy.chmod(0o600)
    try:
        facts = read_seed(seed_copy)
        prepared = time.monotonic()
        time.sleep(float(os.environ.get("HE_STANDIN_SECONDS", "0")))
        booted = time.monotonic()
        status = int(facts["exit_code"])
        verdict = "SUCCESS" if status == 0 else "FAIL"
        console_log.write_text(f"stand-in he-launch: no VM; seed instance-id {facts['instance_id']}"
                               f" for {facts['fqdn']} in netns {netns()}\n")
        transcript.write_text(f"[ INFO  ] Stage: Initializing (stand-in)\n"
                              f"HE_APPLIANCE_ENGINE_SETUP_{verdict}\n"
                              f"HE_APPLIANCE_ENGINE_SETUP_RC={status}\n")
    finally:
        seed_copy.unlink(missing_ok=True)  # he-launch deletes its seed copy: it holds secrets
    ended = time.monotonic()
    result = {
        "ok": status == 0, "site": opts.site, "domain": f"he-engine-{opts.site}",
        "virt_type": "standin", "virt_reason": "stand-in he-launch: no VM booted",
        "exit_status": status, "network": [], "console_log": str(console_log),
        "transcript": str(transcript), "seed_ejected": status == 0,
        "url": f"https://{facts['fqdn']}/ovirt-engine/" if status == 0 else None,
        "durations": {"prepare": round(prepared - started, 3), "boot": round(booted - prepared, 3),
                      "setup": round(ended - booted, 3)},
        "standin": {**facts, "netns": netns(), "appliance": str(opts.appliance)},
    }
    if opts.json:
        json.dump(result, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    print(f"engine-setup exit status: {status}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
