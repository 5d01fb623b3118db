"""Time `he-build release` on the demo release file: a full run against a no-op rerun; with
--kills N, also kill N runs at random moments of the stages after the boot and rerun them.

    flock /work/locks/vm.lock .venv/bin/python -m bench.release [--file F] [--kills N] [--seed S]

The full run has a private stage store (HE_BUILDER_CACHE) holding only the disk stage's
entry, hard-linked from the shared store (the disk is `he-build appliance`'s, timed by its
own bench): every release stage after it runs, the boot smoke test included. The rerun is the
same command again, every stage reused. Both are the command as CI runs it (a subprocess, with
--json), and the rerun must publish the same files. Prints seconds and the ratio.

Kill sample: each point starts from a copy (hard links) of the full run's store without the
entries of one stage and those after it (gates, sbom, repo, provenance or publish: the boot is
not repeated), SIGKILLs the process group at a random moment of those stages' measured time,
reruns the command to the end (over the full run's release, at the same path: the .repo file
names it), and checks that the rerun succeeded, published the full run's files (same SHA-256),
and that no partial file or directory is left in the store or beside the publish directory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import run_bench
from bench.killrun import KillPoint, run_with_kill
from builder.pipeline.store import default_cache_root
from builder.resources import data_path

EPOCH = "1700000000"
# The stages after the boot, in run order, and what each one's rerun also redoes.
AFTER_BOOT = ("gates", "sbom", "repo", "provenance", "publish")
DOWNSTREAM = {"gates": AFTER_BOOT, "sbom": ("sbom", "provenance", "publish"),
              "repo": ("repo", "provenance", "publish"), "provenance": ("provenance", "publish"),
              "publish": ("publish",)}


def release(file: Path, publish: Path, env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "builder.cli.he_build", "release", "--file",
                           str(file), "--publish", str(publish), "--json"],
                          capture_output=True, text=True, check=False, env=env)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"he-build release exited {done.returncode}:\n{done.stderr}")
    data: dict[str, Any] = json.loads(done.stdout)
    return elapsed, data


def seed_disk(cache: Path, file: Path, env: dict[str, str], publish: Path) -> None:
    """The disk stage's entry of the shared store, hard-linked into `cache`."""
    done = subprocess.run([sys.executable, "-m", "builder.cli.he_build", "release", "--file",
                           str(file), "--publish", str(publish), "--plan", "--json"],
                          capture_output=True, text=True, check=True, env=env)
    disk = next(row for row in json.loads(done.stdout)["stages"] if row["stage"] == "disk")
    source = default_cache_root(os.environ) / "disk" / disk["key"]
    if disk["action"] != "reuse" or not source.is_dir():
        raise SystemExit("build the disk first: he-build appliance --recipe debian-test")
    (cache / "disk").mkdir(parents=True)
    subprocess.run(["cp", "-al", str(source), str(cache / "disk" / disk["key"])], check=True)


def release_argv(file: Path, publish: Path) -> list[str]:
    return [sys.executable, "-m", "builder.cli.he_build", "release", "--file", str(file),
            "--publish", str(publish), "--json"]


def partials(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*")
            if ".partial-" in p.name or p.name.endswith(".lock")]


def kill_sample(args: argparse.Namespace, work: Path, cache: Path, publish: Path,
                full: dict[str, Any], env: dict[str, str]) -> None:
    rng = random.Random(args.seed)
    seconds = {row["stage"]: row["seconds"] for row in full["stages"]}
    keys = {row["stage"]: row["key"] for row in full["stages"]}
    expected = full["files"]
    failures = 0
    for number in range(args.kills):
        stage = rng.choice(AFTER_BOOT)
        redo = DOWNSTREAM[stage]
        point_cache = work / f"kill-{number}" / "cache"
        point_cache.parent.mkdir()
        subprocess.run(["cp", "-al", str(cache), str(point_cache)], check=True)
        for name in redo:
            shutil.rmtree(point_cache / name / keys[name])
        target = publish  # the same path: the .repo file names it
        span = sum(seconds[name] for name in redo) + 1.0
        delay = rng.uniform(0.3, span)
        point_env = {**env, "HE_BUILDER_CACHE": str(point_cache)}
        killed = run_with_kill(release_argv(args.file, target), point_env,
                               KillPoint(f"{stage}+{delay:.1f}s", delay_s=delay),
                               timeout_s=600)
        rerun_s, data = release(args.file, target, point_env)
        left = partials(point_cache, target.parent)
        ok = data["files"] == expected and not left
        failures += not ok
        ran = ",".join(r["stage"] for r in data["stages"] if r["result"] == "ran")
        print(f"kill {number:3d}: {stage:10s} +{delay:5.1f} s killed={killed.killed!s:5s} "
              f"rerun {rerun_s:5.1f} s ran={ran} "
              f"{'OK' if ok else 'FAILED'}{'' if not left else f' left: {left[:3]}'}")
        shutil.rmtree(point_cache.parent)
    print(f"kill sample: {args.kills} points, {failures} failures")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=data_path("pipelines", "release.yaml"))
    parser.add_argument("--kills", type=int, default=0, help="kill points after the timing")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="he-bench-release-", dir="/var/tmp"))
    try:
        cache = work / "cache"
        env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, "HE_BUILDER_CACHE": str(cache)}
        publish = work / "publish"
        seed_disk(cache, args.file, {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}, publish)
        full_s, full = release(args.file, publish, env)
        noop_s, noop = release(args.file, publish, env)
        ran = [r["stage"] for r in full["stages"] if r["result"] == "ran"]
        reused = [r["stage"] for r in noop["stages"] if r["result"] == "reused"]
        if noop["files"] != full["files"] or len(reused) != len(noop["stages"]):
            raise SystemExit("the rerun did not reuse every stage or published other files")
        print(f"full run (stages run: {', '.join(ran)}): {full_s:8.2f} s")
        print(f"no-op rerun (all {len(reused)} stages reused):  {noop_s:8.2f} s")
        print(f"ratio full / no-op: {full_s / noop_s:.0f}x")
        if args.kills:
            kill_sample(args, work, cache, publish, full, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run_bench(main)
