"""The RPM wrap against `cp` + one `sha256sum` of the same OVA (goal: at most 3x).

The wrap is timed as the pipeline runs it: the OVA's digests come from the packing stage (kept
beside it), so the RPM stage does not read the OVA for them; rpmbuild itself reads it to hash
it and to write the payload (stored, gzip level 0: the OVA is compressed already).

    .venv/bin/python -m bench.rpm [--ova OVA] [--rounds N]

Without --ova the demo appliance's OVA is built (or taken from the stage cache).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import run_bench
from builder.console import Console
from builder.disk.registry import load_recipe
from builder.ova.digests import known_digests
from builder.pipeline.appliance import BuildOptions, build_appliance
from builder.pipeline.store import default_cache_root
from builder.rpm import RpmImage, build_rpm
from builder.rpm.rpmbuild import payload_for


def best_of(rounds: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def demo_ova(env: dict[str, str], out: Path) -> Path:
    build = build_appliance(load_recipe("debian-test"), out_dir=out, options=BuildOptions(),
                            cache_root=default_cache_root(env), console=Console(), env=env)
    return build.ova.path


def reference(ova: Path, copy: Path) -> None:
    shutil.copyfile(ova, copy)
    subprocess.run(["sha256sum", str(ova)], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ova", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    env = dict(os.environ)
    recipe = load_recipe("debian-test")
    quiet = Console(err=Path(os.devnull).open("w"))  # noqa: SIM115
    with tempfile.TemporaryDirectory(prefix="bench-rpm-", dir=Path.home()) as tmp:
        work = Path(tmp)
        ova = args.ova or demo_ova(env, work / "demo")
        image = RpmImage(ova, "ova", compressed=True, digests=known_digests(ova))
        ref = best_of(args.rounds, lambda: reference(ova, work / "copy.ova"))
        out = work / "rpm"
        out.mkdir()
        ours = best_of(args.rounds, lambda: build_rpm(
            image, recipe.meta, recipe.package, out, payload="speed", sign_key=None,
            console=quiet, env=env))
        size = next(out.glob("*.rpm")).stat().st_size
        print(f"OVA: {ova} ({ova.stat().st_size / 2**20:.1f} MiB)")
        print(f"cp + sha256sum:         {ref:.2f} s")
        print(f"rpm ({payload_for(image, 'speed')}): {ours:.2f} s, {size / 2**20:.1f} MiB, "
              f"ratio {ours / ref:.2f}x (goal <= 3x)")


if __name__ == "__main__":
    run_bench(main)
