"""Kill `he-build appliance --recipe debian-test` in its disk, OVA and RPM stages and while it
publishes, rerun it, and count what a crash left.

    flock /work/locks/vm.lock .venv/bin/python -m bench.kill_appliance [--points 16] [--seed 7]
        [--first-stage disk]

Every run has a private cache (HE_BUILDER_CACHE) holding, as hard links, the debootstrapped
root from the shared cache (no point re-runs debootstrap) and, for a point in a later stage,
the entries an uninterrupted reference build made for the earlier stages: the run starts at the
stage to be killed. A point kills the build at a moment of that stage, reruns it to the end,
and checks that the rerun succeeded, that no partial entry, temp file or lock file survived in
the cache or the output directory, that every cache entry's file still matches its recorded
SHA-256, and that the published disk, OVA and RPM have the reference's bytes.

Kill points: the moment the stage's partial entry (or a temp file in the output directory)
appears, plus a random part of the stage's measured length, killed only while that partial is
still there (tried again sooner when the stage ended first, so the point is in its stage); a
random time over the run; and
syscalls found in a traced run (`strace -e inject=SYSCALL:signal=KILL:when=N`, he-build's own
process only): the rename that puts the stage's entry in place, and the unlink of its lock
right after it. A disk rebuilt after a kill can only match the reference if two clean builds
of the disk match: the campaign measures that first and reports such mismatches apart.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import run_bench
from bench.killrun import KillPoint, nth_call, run_with_kill, survivors, syscall_sequence
from builder.disk.debian_standin import DebianTestBackend
from builder.disk.registry import create_backend, load_recipe
from builder.errors import IntegrityError
from builder.pipeline.stages import load_result
from builder.pipeline.store import StageCache, default_cache_root
from builder.sparse import sha256_sparse

RECIPE = "debian-test"
EPOCH = 1700000000
STAGES = ("disk", "ova", "rpm", "publish")
CACHED = ("disk", "ova", "rpm")
TRACED = ("rename", "unlink")
RUN_TIMEOUT_S = 1800.0
# Tries of a kill meant to land after a stage's partial appeared (the delay halved each time).
PARTIAL_ATTEMPTS = 4


@dataclass(frozen=True)
class Reference:
    """What an uninterrupted build made, and what is known about the stages."""

    cache: Path
    digests: dict[str, str]
    disk_reproducible: bool | None  # measured only when a point rebuilds the disk
    lengths: dict[str, float]
    traces: dict[str, list[tuple[str, str]]]
    keys: dict[str, str]


@dataclass
class Counts:
    points: int = 0
    killed: int = 0
    recovered: int = 0
    partial_entries: int = 0
    stale_files: int = 0
    byte_mismatches: int = 0
    disk_rebuilds_not_comparable: int = 0
    orphans: int = 0
    failures: list[str] = field(default_factory=list)


def he_build() -> str:
    return str(Path(sys.executable).with_name("he-build"))


def appliance_argv(out: Path) -> list[str]:
    return [he_build(), "appliance", "--recipe", RECIPE, "--out", str(out)]


def appliance_env(cache: Path) -> dict[str, str]:
    return {**os.environ, "HE_BUILDER_CACHE": str(cache), "SOURCE_DATE_EPOCH": str(EPOCH)}


def shared_rootfs() -> tuple[str, Path]:
    backend = create_backend(load_recipe(RECIPE), {})
    assert isinstance(backend, DebianTestBackend)
    key = backend.rootfs_key()
    found = StageCache(default_cache_root(os.environ)).lookup("rootfs", key)
    if found is None:
        raise RuntimeError("the debootstrapped root is not in the shared cache yet: run "
                           "`he-build appliance --recipe debian-test` once")
    return key, found


def fresh_cache(path: Path, stage: str, reference: Path | None) -> Path:
    """A cache holding the shared root and, from `reference`, the stages before `stage`."""
    shutil.rmtree(path, ignore_errors=True)
    key, rootfs = shared_rootfs()
    (path / "rootfs").mkdir(parents=True)
    subprocess.run(["cp", "-al", str(rootfs), str(path / "rootfs" / key)], check=True)
    if reference is not None:
        for earlier in CACHED[: STAGES.index(stage)]:
            subprocess.run(["cp", "-al", str(reference / earlier), str(path / earlier)],
                           check=True)
    return path


def build(cache: Path, out: Path, point: KillPoint | None = None) -> tuple[int, bool, float]:
    outcome = run_with_kill(appliance_argv(out), appliance_env(cache), point,
                            timeout_s=RUN_TIMEOUT_S)
    if point is None and outcome.returncode != 0:
        raise RuntimeError(f"he-build appliance failed ({outcome.returncode}): "
                           f"{outcome.stderr[-2000:]}")
    return outcome.returncode, outcome.killed, outcome.elapsed_s


def published_digests(out: Path) -> dict[str, str]:
    return {p.name: sha256_sparse(p) for p in sorted(out.iterdir()) if not p.name.startswith(".")}


def entry_keys(cache: Path) -> dict[str, str]:
    return {stage: next(p.name for p in (cache / stage).iterdir() if not p.name.startswith("."))
            for stage in CACHED}


def prepare_reference(work: Path, stages: Sequence[str]) -> Reference:
    """The reference build, and for each of `stages` (the last ones of STAGES) its length and
    a traced run starting at it."""
    cache = fresh_cache(work / "reference-cache", "disk", None)
    build(cache, work / "reference-out")
    digests = published_digests(work / "reference-out")
    durations: dict[str, float] = {}
    traces: dict[str, list[tuple[str, str]]] = {}
    for stage in stages:
        # Traced where the kill runs will run: the paths in the calls are theirs.
        scratch = fresh_cache(work / "cache", stage, cache)
        shutil.rmtree(work / "out", ignore_errors=True)
        start = time.monotonic()
        traces[stage] = syscall_sequence(appliance_argv(work / "out"), appliance_env(scratch),
                                         TRACED, work / f"trace-{stage}.log",
                                         timeout_s=RUN_TIMEOUT_S)
        durations[stage] = time.monotonic() - start
    lengths = {stage: durations[stage] - (durations[stages[i + 1]] if i + 1 < len(stages)
                                          else 0.0)
               for i, stage in enumerate(stages)}
    return Reference(cache, digests, None, lengths, traces, entry_keys(cache))


def disk_is_reproducible(work: Path, reference: Reference) -> bool:
    """Whether a second clean build makes the reference's disk, byte for byte."""
    twin = fresh_cache(work / "twin-cache", "disk", None)
    build(twin, work / "twin-out")
    disk = next(name for name in reference.digests if name.endswith(".raw"))
    same = sha256_sparse(work / "twin-out" / disk) == reference.digests[disk]
    shutil.rmtree(twin, ignore_errors=True)
    shutil.rmtree(work / "twin-out", ignore_errors=True)
    return same


@dataclass(frozen=True)
class Plan:
    stage: str
    point: KillPoint


def plan_points(rng: random.Random, count: int, reference: Reference, cache: Path,
                out: Path) -> list[Plan]:
    """Four points a stage, stage after stage (the traced ones): its two syscall points, a
    partial-appears point, a timed point (the timed ones kill only he-build's process in every
    other stage)."""
    stages = [stage for stage in STAGES if stage in reference.lengths]
    plans: list[Plan] = []
    for index in range(count):
        stage = stages[(index // 4) % len(stages)]
        hooked = _syscall_points(stage, reference, out)
        kind = index % 4
        if kind < len(hooked) and kind < 2:
            plans.append(hooked[kind])
        else:
            plans.append(_random_point(rng, stage, reference, cache, out, timed=kind == 3,
                                       group=kind != 3 or stage in ("ova", "publish")))
    return plans


def _syscall_points(stage: str, reference: Reference, out: Path) -> list[Plan]:
    calls = reference.traces[stage]
    if stage == "publish":
        ends = [i for i, (name, args) in enumerate(calls)
                if name == "rename" and f'"{out}/' in args]
        chosen = {"publish-first-rename": ends[0] if ends else None,
                  "after-publish-last-rename": ends[-1] + 1 if ends else None}
    else:
        target = f'/{stage}/{reference.keys[stage]}") = 0'
        found = [i for i, (name, args) in enumerate(calls)
                 if name == "rename" and args.rstrip().endswith(target)]
        chosen = {f"{stage}-entry-rename": found[0] if found else None,
                  f"after-{stage}-entry-rename": found[0] + 1 if found else None}
    plans = []
    for label, index in chosen.items():
        if index is None or index >= len(calls):
            continue
        name, nth = nth_call(calls, index)
        plans.append(Plan(stage, KillPoint(label=f"{label} ({name} #{nth})", syscall=name,
                                           nth=nth)))
    return plans


def _random_point(rng: random.Random, stage: str, reference: Reference, cache: Path,
                  out: Path, *, timed: bool, group: bool) -> Plan:
    who = "group" if group else "he-build only"
    if timed:
        delay = rng.uniform(0.0, sum(length for s, length in reference.lengths.items()
                                     if STAGES.index(s) >= STAGES.index(stage)))
        return Plan(stage, KillPoint(label=f"{stage}: t={delay:.2f}s ({who})", delay_s=delay,
                                     group=group))
    # Within the first half of the stage as the reference run timed it: that run was traced,
    # and an untraced stage may end sooner than its full length after its partial appears.
    delay = rng.uniform(0.0, max(reference.lengths[stage] / 2, 0.1))
    where = f"{out}/.*.partial-*" if stage == "publish" else f"{cache}/{stage}/.*.partial-*"
    # Killed only while the stage's partial is still there: a moment after the stage has
    # ended belongs to a later stage (kill_before_the_end tries a shorter delay instead).
    return Plan(stage, KillPoint(label=f"{stage}: partial +{delay:.2f}s ({who})", delay_s=delay,
                                 glob=where, group=group, while_present=True))


def leftovers(cache: Path, out: Path) -> list[str]:
    """Partials and lock files in the stages, inside entries and in the output directory."""
    found = []
    places = [out, *(cache / s for s in (*CACHED, "rootfs"))]
    places += [entry for s in CACHED if (cache / s).is_dir() for entry in (cache / s).iterdir()
               if entry.is_dir() and not entry.name.startswith(".")]
    for place in places:
        if place.is_dir():
            found += [str(p) for p in place.iterdir()
                      if p.name.startswith(".") and (".partial-" in p.name
                                                     or p.name.endswith(".lock"))]
    return found


def unsound_entries(cache: Path) -> list[str]:
    """Cache entries whose files do not match the SHA-256 the stage table recorded for them
    (the entry's `stage.json`, written last), or that record none."""
    bad = []
    for stage in CACHED:
        for entry in sorted((cache / stage).glob("[!.]*")):
            try:
                result = load_result(stage, entry.name, entry, reused=True, seconds=0.0)
                recorded = {art.path: art.sha256 for art in result.artifacts.values()}
            except IntegrityError:
                recorded = {}
            if not recorded:
                bad.append(f"{entry} (no digest recorded)")
            bad += [str(path) for path, digest in recorded.items()
                    if not path.is_file() or sha256_sparse(path) != digest]
    return bad


def kill_and_rerun(work: Path, plan: Plan, reference: Reference, counts: Counts) -> str:
    out = work / "out"
    counts.points += 1
    cache, (rc, killed, _), point = kill_before_the_end(work, plan, reference)
    counts.killed += killed
    orphans = survivors(str(cache), grace_s=5.0)
    counts.orphans += len(orphans)
    build(cache, out)
    left = leftovers(cache, out)
    unsound = unsound_entries(cache)
    counts.stale_files += len(left)
    counts.partial_entries += len(unsound)
    digests = published_digests(out)
    mismatched = sorted(name for name in reference.digests
                        if digests.get(name) != reference.digests[name])
    disk_rebuilt = plan.stage == "disk" and reference.disk_reproducible is False
    if mismatched and disk_rebuilt:
        counts.disk_rebuilds_not_comparable += 1
    elif mismatched:
        counts.byte_mismatches += 1
    if left or unsound or (mismatched and not disk_rebuilt):
        counts.failures.append(f"{plan.point.label}: left={left} unsound={unsound} "
                               f"mismatched={mismatched}")
    else:
        counts.recovered += 1
    sooner = f" (at +{point.delay_s:.2f}s)" if point != plan.point else ""
    return (f"{plan.point.label + sooner:42s} killed={killed!s:5s} rc={rc:4d} "
            f"orphans={len(orphans)} left={len(left)} unsound={len(unsound)} "
            f"mismatched={','.join(mismatched) or '-'}")


def kill_before_the_end(work: Path, plan: Plan,
                        reference: Reference) -> tuple[Path, tuple[int, bool, float], KillPoint]:
    """The build under `plan`'s kill point, from a fresh cache. A point after a partial
    appears means a kill while that partial is still there: when the stage ended first (the
    delay comes from the stage's length in the traced reference runs, which a busy machine can
    stretch or shrink), the build runs on unkilled and is tried again with half the delay, up
    to PARTIAL_ATTEMPTS times. The cache, the outcome, the point used."""
    point = plan.point
    for _ in range(PARTIAL_ATTEMPTS):
        cache = fresh_cache(work / "cache", plan.stage, reference.cache)
        shutil.rmtree(work / "out", ignore_errors=True)
        outcome = build(cache, work / "out", point)
        if outcome[1] or point.glob is None:
            break
        point = replace(point, delay_s=point.delay_s / 2)
    return cache, outcome, point


def run_campaign(work: Path, *, points: int, seed: int, log: Any = None,
                 only: Sequence[str] = (), first: str = STAGES[0]) -> tuple[Counts, Reference]:
    """Kill points in the stages from `first` on (the earlier ones only run in the reference
    build), the labels containing one of `only` when given."""
    reference = prepare_reference(work, STAGES[STAGES.index(first):])
    plans = plan_points(random.Random(seed), points, reference, work / "cache", work / "out")
    if only:
        plans = [p for p in plans if any(label in p.point.label for label in only)]
    if any(plan.stage == "disk" for plan in plans):
        reference = replace(reference, disk_reproducible=disk_is_reproducible(work, reference))
    counts = Counts()
    for plan in plans:
        record = kill_and_rerun(work, plan, reference, counts)
        if log is not None:
            print(record, file=log, flush=True)
    return counts, reference


def report(counts: Counts, reference: Reference, lengths: Mapping[str, float]) -> None:
    stages = ", ".join(f"{s} {length:.1f} s" for s, length in lengths.items())
    twins = {None: "not measured", True: "yes", False: "no"}[reference.disk_reproducible]
    print(f"stage lengths: {stages}; two clean builds give the same disk: {twins}")
    print(f"kill points: {counts.points}, killed before the end: {counts.killed}, recovered: "
          f"{counts.recovered}, partial or unsound cache entries: {counts.partial_entries}, "
          f"stale files found after the rerun: {counts.stale_files}, byte mismatches: "
          f"{counts.byte_mismatches}, rebuilt disks not comparable (not reproducible): "
          f"{counts.disk_rebuilds_not_comparable}, surviving processes: {counts.orphans}")
    for failure in counts.failures:
        print(f"FAIL {failure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=16)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--first-stage", choices=STAGES, default=STAGES[0],
                        help="the first stage to kill in (and to trace); default: %(default)s")
    parser.add_argument("--work", type=Path, default=None,
                        help="where to work (default: a temporary directory under /var/tmp, "
                             "removed after)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="he-kill-appliance-", dir="/var/tmp"))
    start = time.monotonic()
    try:
        counts, reference = run_campaign(work, points=args.points, seed=args.seed,
                                         log=sys.stdout, first=args.first_stage)
        report(counts, reference, reference.lengths)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"seed: {args.seed}, {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    run_bench(main)
