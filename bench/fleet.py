"""The fleet playbook: every site at once (forks = sites) against one site after the other.

    flock /work/locks/vm.lock .venv/bin/python -m bench.fleet [--sites 3 10] [--seconds 5]

Each size gets that many SSH test hosts (network namespaces with their own sshd, as in
tests/fleet/test_fleet_deploy.py: nothing leaves the machine) and a STAND-IN he-launch on them
that reads its real seed and "boots" for --seconds (no VM). The same deployment runs three
times in the same run: --forks SITES; --forks 1 (one task at a time, but he-launch runs
asynchronously, so the launches still overlap); and --forks 1 with he_fleet_batch=1 (one site
after the other, as by hand). Prints the wall times and the ratios to the first.
With --prune, every successful site then prunes he-launch's images (the real he-launch,
`he_deploy_prune_images`), and each run fails unless every prune succeeded.
Needs root (namespaces).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from bench import run_bench
from tests.fleet.fleet_run import SiteSpec, playbook_argv, prepare_run
from tests.fleet.netns import ssh_fleet


def deploy_once(sites: int, forks: int, seconds: float, scratch: Path, *extra: str,
                prune: bool = False) -> float:
    with ssh_fleet(scratch / "net", sites) as fleet:
        specs = [SiteSpec(f"site{i:02d}", host.address) for i, host in
                 enumerate(fleet.hosts, start=1)]
        run = prepare_run(scratch, fleet, specs, standin_seconds=seconds)
        started = time.monotonic()
        prune_vars = ("-e", "he_deploy_prune_images=true") if prune else ()
        proc = subprocess.run(playbook_argv(fleet, run, forks, *extra, *prune_vars), env=run.env,
                              capture_output=True, text=True, check=False)
        wall = time.monotonic() - started
    summary = json.loads((run.out / "summary.json").read_text())
    failed_prunes = [row["site"] for row in summary["sites"]
                     if prune and (row["prune"] or {}).get("exit_code") != 0]
    if proc.returncode != 0 or summary["counts"] != {"ok": sites} or failed_prunes:
        raise SystemExit(f"the deployment failed ({proc.returncode}): {summary['counts']}, "
                         f"prunes failed or missing: {failed_prunes}\n"
                         f"{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="how long each stand-in he-launch runs (default 5)")
    parser.add_argument("--prune", action="store_true",
                        help="each site prunes he-launch's images after its deploy")
    args = parser.parse_args()
    print(f"stand-in he-launch: {args.seconds:g} s per site"
          f"{', then a prune' if args.prune else ''}; wall time of ansible-playbook")
    print(f"{'sites':>5}  {'forks=sites':>11}  {'forks=1':>15}  {'one by one':>15}")
    for sites in args.sites:
        runs = (("parallel", (sites,)), ("forks1", (1,)),
                ("serial", (1, "-e", "he_fleet_batch=1")))
        walls = {}
        for label, (forks, *extra) in runs:
            with tempfile.TemporaryDirectory(prefix=f"bench-fleet-{label}-") as scratch:
                walls[label] = deploy_once(sites, forks, args.seconds, Path(scratch), *extra,
                                           prune=args.prune)
        base, forks1, serial = walls["parallel"], walls["forks1"], walls["serial"]
        print(f"{sites:>5}  {base:>9.1f} s  {forks1:>7.1f} s {forks1 / base:>4.2f}x"
              f"  {serial:>7.1f} s {serial / base:>4.2f}x", flush=True)


if __name__ == "__main__":
    run_bench(main)
