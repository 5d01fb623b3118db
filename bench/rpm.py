"""RPM wrapping against `cp` of the same OVA (goal: <= 2x), per payload choice.

    .venv/bin/python -m bench.rpm [--ova OVA] [--rounds N]

Without --ova the demo appliance's OVA is built (or taken from the stage cache).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from builder.appliance.build import BuildOptions, build_appliance
from builder.appliance.recipes import load_recipe
from builder.cache import default_cache_root
from builder.console import Console
from builder.rpm import build_rpm
from builder.rpm.build import PAYLOADS, PayloadChoice


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ova", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--payload", choices=("speed", "size"), action="append")
    args = parser.parse_args()
    env = dict(os.environ)
    meta = load_recipe("debian-test").meta
    quiet = Console(err=Path(os.devnull).open("w"))  # noqa: SIM115
    with tempfile.TemporaryDirectory(prefix="bench-rpm-", dir=Path.home()) as tmp:
        work = Path(tmp)
        ova = args.ova or demo_ova(env, work / "demo")
        copy = work / "copy.ova"
        ref = best_of(args.rounds, lambda: shutil.copyfile(ova, copy))
        print(f"OVA: {ova} ({ova.stat().st_size >> 20} MiB)")
        print(f"cp:  {ref:.2f} s")
        choices: list[PayloadChoice] = args.payload or ["speed"]
        for choice in choices:
            out = work / choice
            out.mkdir()
            ours = best_of(args.rounds, lambda c=choice, o=out: build_rpm(  # type: ignore[misc]
                ova, meta, o, payload=c, sign_key=None, console=quiet, env=env))
            size = next(out.glob("*.rpm")).stat().st_size >> 20
            print(f"rpm --payload {choice} ({PAYLOADS[choice]}): {ours:.2f} s, {size} MiB, "
                  f"ratio {ours / ref:.2f}x (goal <= 2x)")


if __name__ == "__main__":
    main()
