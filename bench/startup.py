"""Import time of `he-build --help` and of `he-build seed`, against the interpreter's own start.

    .venv/bin/python -m bench.startup [--rounds 7]

Each command runs as a process under `python -X importtime` (every module the process imports,
the lazy ones included); its traced import time is the sum of the top-level entries' cumulative
times. The reference, measured in the same rounds: `python -c pass` with the same interpreter and
virtualenv (its `site` hooks and `.pth` files import modules before any command runs). The
command's own imports are the top-level modules it imports that the reference does not; a third
process imports exactly those, in the same order, without tracing (tracing itself costs time on
every import), and times them: that is the command's own import time, which the goal (under
150 ms) is judged on. `he-build seed` renders the bundled example's site dc1 from a copy of the
example (secrets mode 0600) into a new directory each round. The package's byte code is compiled
first, as pip does when it installs the wheel and Python does on a first run (unless
PYTHONDONTWRITEBYTECODE is set, when every start would compile every module again). Rounds
alternate between the commands; prints the median and best of each.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import builder
from bench import run_bench
from builder.resources import EXAMPLE_INVENTORY

GOAL_MS = 150.0
HE_BUILD = Path(sys.executable).parent / "he-build"
REFERENCE = "python -c pass (reference)"
HEADER = "import time: self [us] | cumulative | imported package"


def top_level(stderr: str) -> list[tuple[str, int]]:
    """(module, cumulative microseconds) of each top-level import, in the order reported."""
    found = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or line == HEADER:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        if not name.startswith("  "):  # one space after the bar: a top-level import
            found.append((name.strip(), int(cumulative)))
    return found


def import_ms(stderr: str) -> float:
    """The sum of the top-level imports' cumulative microseconds, in milliseconds."""
    return total_ms(top_level(stderr))


def total_ms(entries: list[tuple[str, int]]) -> float:
    return sum(micros for _, micros in entries) / 1000


def untraced_ms(modules: list[str]) -> float:
    """Milliseconds a fresh interpreter takes to import `modules` in order, without tracing."""
    script = ("import importlib, sys, time\n"
              "start = time.perf_counter()\n"
              "for name in sys.argv[1:]:\n"
              "    importlib.import_module(name)\n"
              "print(1000 * (time.perf_counter() - start))\n")
    done = subprocess.run([sys.executable, "-c", script, *modules], capture_output=True,
                          text=True, check=True)
    return float(done.stdout)


def compile_package() -> None:
    """Byte code for every module of builder/, beside its source (__pycache__)."""
    package = Path(builder.__file__).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)


def example_copy(directory: Path) -> Path:
    """The bundled example inventory and its secrets, the secrets made 0600 as a site's are."""
    target = directory / "example"
    shutil.copytree(EXAMPLE_INVENTORY.parent, target)
    for secret in (target / "secrets").glob("*-password"):
        secret.chmod(0o600)
    return target / EXAMPLE_INVENTORY.name


@dataclass(frozen=True)
class Run:
    traced_ms: float  # the sum of the top-level -X importtime entries
    wall: float  # seconds, the traced process
    modules: tuple[str, ...]  # its top-level imports, in order


def measured(argv: list[str]) -> Run:
    """One run of `argv` under -X importtime."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True,
                          text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    entries = top_level(done.stderr)
    return Run(total_ms(entries), wall, tuple(name for name, _ in entries))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rounds = max(1, args.rounds)
    compile_package()
    with tempfile.TemporaryDirectory(prefix="he-bench-startup-") as tmp:
        inventory = example_copy(Path(tmp))
        seed = [str(HE_BUILD), "seed", "--site", "dc1", "--inventory", str(inventory), "--out"]
        commands: dict[str, Callable[[int], list[str]]] = {
            REFERENCE: lambda _: ["-c", "pass"],
            "he-build --help": lambda _: [str(HE_BUILD), "--help"],
            "he-build seed --site dc1": lambda n: [*seed, os.path.join(tmp, f"out-{n}")],  # noqa: PTH118
        }
        runs: dict[str, list[Run]] = {name: [] for name in commands}
        own: dict[str, list[float]] = {name: [] for name in commands}
        for number in range(rounds):
            for name, argv in commands.items():
                runs[name].append(measured(argv(number)))
            reference = set(runs[REFERENCE][-1].modules)
            for name in commands:
                modules = [m for m in runs[name][-1].modules if m not in reference]
                own[name].append(untraced_ms(modules) if modules else 0.0)
    report(runs, own, rounds)


def report(runs: dict[str, list[Run]], own: dict[str, list[float]], rounds: int) -> None:
    print(f"rounds: {rounds}; traced = sum of the top-level -X importtime entries; own = the "
          "modules the reference does not import, imported untraced")
    for name, done in runs.items():
        traced = [run.traced_ms for run in done]
        print(f"{name:28}: traced imports median {statistics.median(traced):6.1f} ms; wall "
              f"median {1000 * statistics.median(run.wall for run in done):6.1f} ms")
    for name, times in own.items():
        if name == REFERENCE:
            continue
        median = statistics.median(times)
        verdict = "met" if median < GOAL_MS else "not met"
        print(f"{name:28}: own imports median {median:6.1f} ms, best {min(times):6.1f} ms "
              f"({len(runs[name][-1].modules)} top-level modules); {median / GOAL_MS:4.2f}x the "
              f"{GOAL_MS:.0f} ms goal: {verdict}")


if __name__ == "__main__":
    run_bench(main)
