"""The fleet playbook: every site at once (forks = sites) against one site after the other.

    flock /work/locks/vm.lock .venv/bin/python -m bench.fleet [--sites 3 10] [--seconds 5]

Each size gets that many SSH test hosts (network namespaces with their own sshd, as in
tests/fleet/test_fleet_deploy.py: nothing leaves the machine) and a STAND-IN he-launch on them
that reads its real seed and "boots" for --seconds (no VM). The same deployment runs twice,
with --forks SITES and with --forks 1, in the same run; prints both wall times and the ratio.
Needs root (namespaces).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from tests.fleet.fleet_run import SiteSpec, playbook_argv, prepare_run
from tests.fleet.netns import ssh_fleet


def deploy_once(sites: int, forks: int, seconds: float, scratch: Path) -> float:
    with ssh_fleet(scratch / "net", sites) as fleet:
        specs = [SiteSpec(f"site{i:02d}", host.address) for i, host in
                 enumerate(fleet.hosts, start=1)]
        run = prepare_run(scratch, fleet, specs, standin_seconds=seconds)
        started = time.monotonic()
        proc = subprocess.run(playbook_argv(fleet, run, forks), env=run.env,
                              capture_output=True, text=True, check=False)
        wall = time.monotonic() - started
    summary = json.loads((run.out / "summary.json").read_text())
    if proc.returncode != 0 or summary["counts"] != {"ok": sites}:
        raise SystemExit(f"the deployment failed ({proc.returncode}): {summary['counts']}\n"
                         f"{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="how long each stand-in he-launch runs (default 5)")
    args = parser.parse_args()
    print(f"stand-in he-launch: {args.seconds:g} s per site; wall time of ansible-playbook")
    print(f"{'sites':>5}  {'forks=sites':>12}  {'forks=1':>9}  {'ratio':>6}")
    for sites in args.sites:
        with tempfile.TemporaryDirectory(prefix="bench-fleet-") as parallel_dir, \
                tempfile.TemporaryDirectory(prefix="bench-fleet-") as serial_dir:
            parallel = deploy_once(sites, sites, args.seconds, Path(parallel_dir))
            serial = deploy_once(sites, 1, args.seconds, Path(serial_dir))
        print(f"{sites:>5}  {parallel:>10.1f} s  {serial:>7.1f} s  {serial / parallel:>5.2f}x",
              flush=True)


if __name__ == "__main__":
    main()
