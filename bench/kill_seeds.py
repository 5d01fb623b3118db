"""Kill `he-build seed --all --dhcp-export` at random moments over a 300-site inventory, rerun
it, and count what a crash left.

    .venv/bin/python -m bench.kill_seeds [--points 40] [--sites 300] [--seed 5] [--work DIR]

Two inventories in the bundled example's layout (defaults + sites, `file:` secrets), with
generated sites: A holds dc0001..dc0300, B drops the first 10 and adds 10 more; A is published
with one SOURCE_DATE_EPOCH and B with another, so every site's bytes differ between the two.
The runs alternate A -> B -> A ...: each kill point kills a run switching OUT to the other set,
checks that OUT holds the complete old set or the complete new set (every site's files against
its manifest.json and against an uninterrupted reference run), reruns it to the end, and checks
that nothing stale is left and that the bytes equal the reference's.

Kill points: times drawn over an uninterrupted run's duration (half of them SIGKILL the whole
process group, half only he-build's own process, so its pool workers must die with it); the
moment the staging directory appears (plus a random delay); and syscalls found in a traced run
(`strace -e inject=SYSCALL:signal=KILL:when=N`): the rename that switches `current` (killed just
before it, and on the next call just after it), the rename that names the staged generation,
the links made before and removed after the switch, the flush, and the pruning of the old set.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench import run_bench
from bench.killrun import (
    KillPoint,
    nth_call,
    run_with_kill,
    survivors,
    syscall_sequence,
)

EPOCH_A = 1700000000
EPOCH_B = 1700086400
CHANGED = 10
STATE = ".he-seeds"
KEEP_PREVIOUS = 1
TRACED = ("rename", "symlink", "unlink", "unlinkat", "mkdir", "link", "fsync", "syncfs")
RUN_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Variant:
    """One inventory and the SOURCE_DATE_EPOCH it is published with."""

    name: str
    inventory: Path
    epoch: int


@dataclass(frozen=True)
class PointResult:
    """One kill point: where OUT was after the kill, and after the rerun."""

    label: str
    before: str
    target: str
    killed: bool
    state: str
    orphans: int
    stale: tuple[str, ...]
    same_bytes: bool

    @property
    def after_kill(self) -> str:
        """"old" (the set before the run), "new" (the run's set), or what else was found."""
        return {self.before: "old", self.target: "new"}.get(self.state, self.state)

    def __str__(self) -> str:
        return (f"{self.label:48s} killed={self.killed!s:5s} left={self.after_kill:7s} "
                f"orphans={self.orphans} stale={len(self.stale)} same-bytes={self.same_bytes}")


@dataclass
class Counts:
    points: int = 0
    killed: int = 0
    recovered: int = 0
    mixed_sets: int = 0
    stale_files: int = 0
    byte_mismatches: int = 0
    orphans: int = 0
    states: dict[str, int] = field(default_factory=dict)
    results: list[PointResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def generated_site(index: int) -> tuple[str, dict[str, Any]]:
    """Like the example's dc1 (DHCP, /etc/hosts entries) or dc2 (static v4 + v6), alternately."""
    name = f"dc{index:04d}"
    domain = f"{name}.example.com"
    site: dict[str, Any] = {
        "fqdn": f"engine.{domain}",
        "root_password": f"file:secrets/{name}-root-password",
        "admin_password": f"file:secrets/{name}-admin-password",
    }
    a, b = divmod(index, 250)
    if index % 2:
        site["network"] = {
            "mode": "static",
            "ipv4": {"address": f"10.{a}.{b}.10/24", "gateway": f"10.{a}.{b}.1"},
            "ipv6": {"address": f"2001:db8:{index:x}::10/64", "gateway": f"2001:db8:{index:x}::1"},
            "dns_servers": [f"10.{a}.{b}.53"], "search_domains": [domain],
        }
        site["engine"] = {"organization": f"Example {name.upper()}"}
    else:
        site["network"] = {"mode": "dhcp"}
        site["hosts_entries"] = [{"ip": f"10.{a}.{b}.11", "names": [f"host1.{domain}", "host1"]}]
        site["timezone"] = "Europe/Paris"
    return name, site


def write_inventory(directory: Path, first: int, count: int) -> Path:
    """inventory.yaml with the example's defaults and sites dc<first>.., and their secrets."""
    example = yaml.safe_load((Path(__file__).resolve().parents[1] / "examples"
                              / "inventory.yaml").read_text())
    secrets = directory / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    sites = dict(generated_site(i) for i in range(first, first + count))
    for name in sites:
        for kind in ("root", "admin"):
            path = secrets / f"{name}-{kind}-password"
            path.write_text(f"{kind}-{name}-Secret-7\n")
            path.chmod(0o600)
    path = directory / "inventory.yaml"
    path.write_text(yaml.safe_dump({"defaults": example["defaults"], "sites": sites},
                                   sort_keys=False))
    return path


def variants(work: Path, sites: int) -> tuple[Variant, Variant]:
    first = Variant("A", write_inventory(work / "inventory-a", 1, sites), EPOCH_A)
    second = Variant("B", write_inventory(work / "inventory-b", 1 + CHANGED, sites), EPOCH_B)
    return first, second


def he_build() -> str:
    return str(Path(sys.executable).with_name("he-build"))


def seed_argv(variant: Variant, out: Path) -> list[str]:
    return [he_build(), "seed", "--all", "--dhcp-export", "--inventory", str(variant.inventory),
            "--out", str(out)]


def seed_env(variant: Variant) -> dict[str, str]:
    return {**os.environ, "SOURCE_DATE_EPOCH": str(variant.epoch)}


def publish(variant: Variant, out: Path) -> float:
    """An uninterrupted run; its duration."""
    outcome = run_with_kill(seed_argv(variant, out), seed_env(variant), None,
                            timeout_s=RUN_TIMEOUT_S)
    if outcome.returncode != 0:
        raise RuntimeError(f"he-build seed failed ({outcome.returncode}): {outcome.stderr}")
    return outcome.elapsed_s


Fingerprint = dict[str, dict[str, str]]


def fingerprint(out: Path) -> Fingerprint:
    """The SHA-256 of every file of every site (and dhcp/) OUT shows, through its links."""
    found: Fingerprint = {}
    for entry in sorted(out.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        found[entry.name] = {f.name: hashlib.sha256(f.read_bytes()).hexdigest()
                             for f in sorted(entry.iterdir()) if f.is_file()}
    return found


def manifest_problems(out: Path) -> list[str]:
    """Sites whose files do not match their own manifest.json (content, size, mode, set)."""
    problems = []
    for entry in sorted(out.iterdir()):
        if entry.name.startswith(".") or entry.name == "dhcp" or not entry.is_dir():
            continue
        try:
            manifest = json.loads((entry / "manifest.json").read_text())
        except (OSError, ValueError) as exc:
            problems.append(f"{entry.name}: manifest.json unreadable ({exc})")
            continue
        files = {f.name: f for f in entry.iterdir() if f.name != "manifest.json"}
        if set(files) != set(manifest["files"]):
            problems.append(f"{entry.name}: files {sorted(files)} != manifest")
            continue
        for name, want in manifest["files"].items():
            path = files[name]
            data = path.read_bytes()
            got = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                   "mode": f"{stat.S_IMODE(path.stat().st_mode):04o}"}
            if got != want:
                problems.append(f"{entry.name}/{name}: {got} != manifest {want}")
    return problems


def classify(out: Path, references: Mapping[str, Fingerprint]) -> str:
    """Which complete set OUT holds ("A" or "B"), else "partial" or "mixed"."""
    if manifest_problems(out):
        return "partial"
    now = fingerprint(out)
    for name, reference in references.items():
        if now == reference:
            return name
    return "mixed"


def stale_entries(out: Path) -> list[str]:
    """What a finished run should not have left: staging sets, unswitched or surplus
    generations, temp links, partials and lock files, links to sites not in the set."""
    state = out / STATE
    stale: list[str] = []
    link = state / "current"
    current = str(link.readlink()) if link.is_symlink() else None
    gens = sorted((p.name for p in state.iterdir() if p.name.startswith("gen-")), reverse=True)
    allowed = {"format", "lock", "current"}
    if current in gens:
        position = gens.index(current)
        allowed |= {current, *gens[position + 1: position + 1 + KEEP_PREVIOUS]}
    stale += [f"{STATE}/{name}" for name in sorted(p.name for p in state.iterdir())
              if name not in allowed]
    for entry in sorted(out.iterdir()):
        if entry.name == STATE:
            continue
        if entry.name.startswith("."):
            stale.append(entry.name)
        elif entry.is_symlink() and not entry.exists():
            stale.append(f"{entry.name} (a link to nowhere)")
    return stale


# The moments that matter most first: a sample of the first points hits both sides of the
# switch in both directions.
HOOK_ORDER = ("switch", "just-after-switch", "current-link", "after-name-generation",
              "drop-link", "name-generation", "prune", "first-site-link", "flush",
              "staging-mkdir", "prune-late")


def plan_points(rng: random.Random, count: int, durations: Mapping[str, float],
                traces: Mapping[str, list[tuple[str, str]]], out: Path) -> list[KillPoint]:
    """Runs alternate A->B and B->A, so point i kills a run towards `"BA"[i % 2]`. Every third
    point is timed (or staging-timed); the others are the hooked syscalls in HOOK_ORDER, until
    there are none left."""
    hooked = {target: _hooked_points(traces[target], target) for target in "BA"}
    points: list[KillPoint] = []
    while len(points) < count:
        index = len(points)
        target = "BA"[index % 2]
        if index % 3 != 2 and hooked[target]:
            points.append(hooked[target].pop(0))
        else:
            points.append(_random_point(rng, index, durations[target], out, target))
    return points


def _hooked_points(calls: list[tuple[str, str]], target: str) -> list[KillPoint]:
    switch = next(i for i, (name, args) in enumerate(calls)
                  if name == "rename" and args.rstrip().endswith(f'/{STATE}/current") = 0'))
    named = _last_before(calls, switch, "rename")
    chosen = {
        "switch": switch,
        "just-after-switch": switch + 1,
        "current-link": _last_before(calls, switch, "symlink"),
        "name-generation": named,
        "after-name-generation": None if named is None else named + 1,
        "flush": _last_before(calls, switch, "syncfs"),
        "first-site-link": _first_before(calls, switch, "symlink"),
        "drop-link": _first_after(calls, switch, "unlink"),
        "prune": _first_after(calls, switch, "unlinkat"),
        "prune-late": _last_after(calls, switch, "unlinkat"),
        "staging-mkdir": _middle_before(calls, switch, "mkdir"),
    }
    points = []
    for label in HOOK_ORDER:
        index = chosen[label]
        if index is None or index >= len(calls):
            continue
        name, nth = nth_call(calls, index)
        points.append(KillPoint(label=f"{label} ({name} #{nth}) ->{target}", syscall=name,
                                nth=nth))
    return points


def _indices(calls: Sequence[tuple[str, str]], name: str) -> list[int]:
    return [i for i, (other, _) in enumerate(calls) if other == name]


def _last_before(calls: Sequence[tuple[str, str]], limit: int, name: str) -> int | None:
    found = [i for i in _indices(calls, name) if i < limit]
    return found[-1] if found else None


def _first_before(calls: Sequence[tuple[str, str]], limit: int, name: str) -> int | None:
    found = [i for i in _indices(calls, name) if i < limit]
    return found[0] if found else None


def _middle_before(calls: Sequence[tuple[str, str]], limit: int, name: str) -> int | None:
    found = [i for i in _indices(calls, name) if i < limit]
    return found[len(found) // 2] if found else None


def _first_after(calls: Sequence[tuple[str, str]], start: int, name: str) -> int | None:
    found = [i for i in _indices(calls, name) if i > start]
    return found[0] if found else None


def _last_after(calls: Sequence[tuple[str, str]], start: int, name: str) -> int | None:
    found = [i for i in _indices(calls, name) if i > start]
    return found[-1] if found else None


def _random_point(rng: random.Random, index: int, duration: float, out: Path,
                  target: str) -> KillPoint:
    group = index % 4 < 2
    who = "group" if group else "he-build only"
    if index % 3 == 2:
        delay = rng.uniform(0.0, duration / 2)
        return KillPoint(label=f"staging +{delay:.2f}s ({who}) ->{target}", delay_s=delay,
                         glob=f"{out}/{STATE}/stage-*", group=group)
    delay = rng.uniform(0.0, duration * 1.05)
    return KillPoint(label=f"t={delay:.2f}s ({who}) ->{target}", delay_s=delay, group=group)


def traced_sequences(work: Path, first: Variant,
                     second: Variant) -> dict[str, list[tuple[str, str]]]:
    """The syscalls of an uninterrupted switch towards each variant, from a state like the
    campaign's: a current set and a previous one, which the switch then prunes."""
    scratch = work / "trace-out"
    shutil.rmtree(scratch, ignore_errors=True)
    for variant in (first, second, first):
        publish(variant, scratch)
    traces = {}
    for variant in (second, first):
        traces[variant.name] = syscall_sequence(
            seed_argv(variant, scratch), seed_env(variant), TRACED,
            work / f"trace-{variant.name}.log", timeout_s=RUN_TIMEOUT_S)
    shutil.rmtree(scratch, ignore_errors=True)
    return traces


def run_campaign(work: Path, *, points: int, sites: int, seed: int,
                 log: Any = None) -> Counts:
    """Everything the module docstring says; returns the counts."""
    first, second = variants(work, sites)
    by_name = {"A": first, "B": second}
    durations = {v.name: publish(v, work / f"reference-{v.name}") for v in (first, second)}
    references = {v.name: fingerprint(work / f"reference-{v.name}") for v in (first, second)}
    traces = traced_sequences(work, first, second)
    out = work / "out"
    publish(first, out)
    counts = Counts()
    for index, point in enumerate(plan_points(random.Random(seed), points, durations, traces,
                                              out)):
        target = by_name["BA"[index % 2]]
        before = "AB"[index % 2]
        record = kill_and_rerun(out, target, before, point, references, counts)
        if log is not None:
            print(record, file=log, flush=True)
    return counts


def kill_and_rerun(out: Path, target: Variant, before: str, point: KillPoint,
                   references: Mapping[str, Fingerprint], counts: Counts) -> PointResult:
    """One point: kill, check the set, rerun, check the result; update `counts`."""
    counts.points += 1
    outcome = run_with_kill(seed_argv(target, out), seed_env(target), point,
                            timeout_s=RUN_TIMEOUT_S)
    counts.killed += outcome.killed
    orphans = survivors(str(out))
    counts.orphans += len(orphans)
    state = classify(out, references)
    counts.states[state] = counts.states.get(state, 0) + 1
    if state not in (before, target.name):
        counts.mixed_sets += 1
        counts.failures.append(f"{point.label}: after the kill OUT holds {state}: "
                               f"{manifest_problems(out)[:3]}")
    publish(target, out)
    stale = stale_entries(out)
    counts.stale_files += len(stale)
    same = fingerprint(out) == references[target.name]
    counts.byte_mismatches += not same
    if stale or not same:
        counts.failures.append(f"{point.label}: after the rerun stale={stale} same={same}")
    else:
        counts.recovered += 1
    result = PointResult(point.label, before, target.name, outcome.killed, state, len(orphans),
                         tuple(stale), same)
    counts.results.append(result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=40)
    parser.add_argument("--sites", type=int, default=300)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--work", type=Path, default=None,
                        help="where to work (default: a temporary directory, removed after)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="he-kill-seeds-"))
    start = time.monotonic()
    try:
        counts = run_campaign(work, points=args.points, sites=args.sites, seed=args.seed,
                              log=sys.stdout)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"sites: {args.sites}, kill points: {counts.points}, killed before the end: "
          f"{counts.killed}, seed: {args.seed}, {time.monotonic() - start:.0f} s")
    sides = [r.after_kill for r in counts.results]
    print(f"after the kill: old set {sides.count('old')}, new set {sides.count('new')}, "
          f"other {len(sides) - sides.count('old') - sides.count('new')}")
    print(f"recovered: {counts.recovered}/{counts.points}, mixed or partial sets found: "
          f"{counts.mixed_sets}, stale files found after the rerun: {counts.stale_files}, "
          f"byte mismatches: {counts.byte_mismatches}, surviving processes: {counts.orphans}")
    for failure in counts.failures:
        print(f"FAIL {failure}")


if __name__ == "__main__":
    run_bench(main)
