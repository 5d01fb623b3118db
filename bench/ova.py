"""OVA packing against `tar -cSf` + `sha256sum` of the same qcow2 (goal: <= 1.1x).

The disk is converted to qcow2 once (timed separately, per compression); then the OVA writer
(OVF + manifest + PAX tar + SHA-256 in one pass) is timed against GNU tar plus sha256sum.

    .venv/bin/python -m bench.ova [--disk RAW] [--compress none|zlib|zstd] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from builder.appliance.backend import BuiltDisk
from builder.appliance.build import build_disk_cached
from builder.appliance.recipes import load_recipe
from builder.cache import default_cache_root
from builder.console import Console
from builder.ova.pack import Compression, convert_disk, write_ova


def timed(action: object) -> float:
    start = time.perf_counter()
    assert callable(action)
    action()
    return time.perf_counter() - start


def best_of(rounds: int, action: object) -> float:
    return min(timed(action) for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--disk", type=Path, help="raw disk (default: the debian-test disk)")
    parser.add_argument("--compress", choices=("none", "zlib", "zstd"), default="zstd")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    env = dict(os.environ)
    recipe = load_recipe("debian-test")
    disk = (BuiltDisk(args.disk, "raw", recipe.meta, "bench") if args.disk
            else build_disk_cached(recipe, default_cache_root(env), Console(), env)[0])
    compression: Compression = args.compress
    with tempfile.TemporaryDirectory(prefix="bench-ova-", dir=Path.home()) as tmp:
        work = Path(tmp)
        qcow2 = work / "disk.qcow2"
        convert_s = timed(lambda: convert_disk(disk, qcow2, compression))
        size = qcow2.stat().st_size
        ova = work / "a.ova"
        quiet = Console(err=Path(os.devnull).open("w"))  # noqa: SIM115
        ours = best_of(args.rounds, lambda: write_ova(recipe.meta, qcow2, ova, layout="ovirt",
                                                      console=quiet, mtime=0))
        tar = work / "b.tar"
        ref = best_of(args.rounds, lambda: (
            subprocess.run(["tar", "-cSf", str(tar), "-C", str(work), "disk.qcow2"], check=True),
            subprocess.run(["sha256sum", str(qcow2)], check=True, capture_output=True)))
    print(f"disk: {disk.path} -> qcow2 ({compression}, {size >> 20} MiB) in {convert_s:.2f} s")
    print(f"OVA write (tar + manifest + sha256, one pass): {ours:.2f} s")
    print(f"tar -cSf + sha256sum:                         {ref:.2f} s")
    print(f"ratio: {ours / ref:.2f}x (goal <= 1.1x)")


if __name__ == "__main__":
    main()
